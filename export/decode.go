package export

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
)

// JSON that is small on disk can be large in memory: `{},` repeated is
// three bytes per element of a slice of structs that each take hundreds of
// bytes once decoded (8 MiB of it as custody.json became 2 GB). So before
// json.Unmarshal, decodeBounded walks the JSON against the Go type it will
// fill and adds up what decoding would allocate: each slice element's
// struct, each pointer's target, each string's bytes. JSON that bodycam
// writes decodes to less than its own size (its keys, quotes and
// indentation are not kept); anything that would take more than
// maxDecodeRatio times its size, plus a little, is refused before a byte of
// it is decoded.
const (
	maxDecodeRatio = 2
	decodeSlack    = 64 << 10
)

// errTooBig marks a refusal by decodeBounded (as opposed to bad JSON).
var errTooBig = errors.New("too large once decoded")

// decodeBounded unmarshals b into v (a pointer) if decoding it stays within
// maxDecodeRatio times len(b) plus decodeSlack.
func decodeBounded(b []byte, v any) error {
	if _, err := decodeCost(b, v); err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// decodeCost estimates what json.Unmarshal(b, v) would allocate, stopping
// with errTooBig as soon as that passes the limit.
func decodeCost(b []byte, v any) (int64, error) {
	est := &estimator{dec: json.NewDecoder(bytes.NewReader(b)), size: int64(len(b)), budget: int64(len(b))*maxDecodeRatio + decodeSlack}
	err := est.value(reflect.TypeOf(v).Elem())
	return est.cost, err
}

type estimator struct {
	dec    *json.Decoder
	size   int64 // of the JSON
	cost   int64
	budget int64
	depth  int
}

// maxDepth bounds how deeply objects and arrays may nest: an export's JSON
// nests a few levels, and a walk (this one, and json.Unmarshal's) takes
// stack for each.
const maxDepth = 64

// nest enters one level of nesting, refusing past maxDepth.
func (e *estimator) nest() error {
	if e.depth++; e.depth > maxDepth {
		return fmt.Errorf("%w: objects and arrays nested more than %d deep (JSON written by bodycam nests a few levels)", errTooBig, maxDepth)
	}
	return nil
}

func (e *estimator) add(n int64) error {
	e.cost += n
	if e.cost > e.budget {
		return fmt.Errorf("%w: decoding its %d bytes would take more than %d bytes of memory (the limit: %d times its size plus %d KiB; JSON written by bodycam takes less than its size)",
			errTooBig, e.size, e.budget, maxDecodeRatio, decodeSlack>>10)
	}
	return nil
}

// value walks one JSON value that json.Unmarshal would store in a t (nil:
// a value it skips) and counts what that allocates.
func (e *estimator) value(t reflect.Type) error {
	start := e.dec.InputOffset()
	tok, err := e.dec.Token()
	if err != nil {
		return err
	}
	if tok == nil { // null
		return nil
	}
	for t != nil && t.Kind() == reflect.Pointer {
		if err := e.add(int64(t.Elem().Size())); err != nil {
			return err
		}
		t = t.Elem()
	}
	switch tok := tok.(type) {
	case json.Delim:
		if t != nil && t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8 {
			// json.RawMessage (or a []byte fed an object): kept as written.
			if err := e.skip(tok); err != nil {
				return err
			}
			return e.add(e.dec.InputOffset() - start)
		}
		if tok == '{' {
			return e.object(t)
		}
		return e.array(t)
	case string:
		switch {
		case t == nil:
		case t.Kind() == reflect.String:
			return e.add(int64(len(tok)))
		case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8:
			return e.add(int64(len(tok)))
		case t.Kind() == reflect.Interface:
			return e.add(int64(len(tok)) + 16)
		}
	default: // number, bool
		if t != nil && t.Kind() == reflect.Interface {
			return e.add(8)
		}
	}
	return nil
}

// mapEntry is a rough cost of one map entry besides its key and value.
const mapEntry = 48

func (e *estimator) object(t reflect.Type) error {
	if err := e.nest(); err != nil {
		return err
	}
	defer func() { e.depth-- }()
	for e.dec.More() {
		tok, err := e.dec.Token()
		if err != nil {
			return err
		}
		key, _ := tok.(string)
		var ft reflect.Type
		switch {
		case t == nil:
		case t.Kind() == reflect.Struct:
			ft = fieldType(t, key)
		case t.Kind() == reflect.Map:
			ft = t.Elem()
			if err := e.add(int64(len(key)) + int64(t.Key().Size()+t.Elem().Size()) + mapEntry); err != nil {
				return err
			}
		case t.Kind() == reflect.Interface: // map[string]any
			ft = t
			if err := e.add(int64(len(key)) + 32 + mapEntry); err != nil {
				return err
			}
		}
		if err := e.value(ft); err != nil {
			return err
		}
	}
	_, err := e.dec.Token() // '}'
	return err
}

func (e *estimator) array(t reflect.Type) error {
	var et reflect.Type
	var each int64
	switch {
	case t == nil:
	case t.Kind() == reflect.Slice:
		et, each = t.Elem(), int64(t.Elem().Size())
	case t.Kind() == reflect.Array:
		et = t.Elem() // held in place
	case t.Kind() == reflect.Interface: // []any
		et, each = t, 16
	}
	if err := e.nest(); err != nil {
		return err
	}
	defer func() { e.depth-- }()
	for e.dec.More() {
		if err := e.add(each); err != nil {
			return err
		}
		if err := e.value(et); err != nil {
			return err
		}
	}
	_, err := e.dec.Token() // ']'
	return err
}

// skip walks past the rest of an object or array whose opening delimiter
// was just read.
func (e *estimator) skip(open json.Delim) error {
	if open == '{' {
		return e.object(nil)
	}
	return e.array(nil)
}

var fieldsCache sync.Map // reflect.Type -> map[string]reflect.Type

// fieldType is the type of the field of struct t that JSON key name fills,
// as encoding/json matches it (the tag name, or the field name, exactly or
// else case-insensitively; promoted fields of embedded structs; the
// shallower field wins), or nil.
func fieldType(t reflect.Type, name string) reflect.Type {
	var fields map[string]reflect.Type
	if f, ok := fieldsCache.Load(t); ok {
		fields = f.(map[string]reflect.Type)
	} else {
		fields = map[string]reflect.Type{}
		depth := map[string]int{}
		for _, f := range reflect.VisibleFields(t) {
			if !f.IsExported() {
				continue
			}
			tag := f.Tag.Get("json")
			if tag == "-" {
				continue
			}
			n, _, _ := strings.Cut(tag, ",")
			if f.Anonymous && n == "" && f.Type.Kind() == reflect.Struct {
				continue // its fields are promoted
			}
			if n == "" {
				n = f.Name
			}
			if d, ok := depth[n]; !ok || len(f.Index) < d {
				fields[n], depth[n] = f.Type, len(f.Index)
			}
		}
		fieldsCache.Store(t, fields)
	}
	if ft, ok := fields[name]; ok {
		return ft
	}
	for n, ft := range fields {
		if strings.EqualFold(n, name) {
			return ft
		}
	}
	return nil
}
