package api

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// maxRanges is the most byte ranges one request is served (after merging);
// a request for more gets the whole object (RFC 9110 §14.2 lets a server
// ignore such a Range). Players ask for one; a few tools for a handful.
const maxRanges = 16

// byteRange is [start, end] (inclusive), as HTTP counts.
type byteRange struct{ start, end int64 }

// normalizeRange rewrites an HTTP Range header for an object of size bytes
// so that serving it costs no more than its answer: each range resolved
// (suffix and open ranges made absolute), clipped to the object, sorted, and
// overlapping or touching ranges merged (§14.6 allows coalescing). It
// returns the header to serve with: "" to serve the whole object (no
// Range, or more than maxRanges ranges after merging), or the header as
// given when it is not a byte range set it understands, so that the HTTP
// library answers it as before (416 for a bad one); ok reports a rewrite,
// and rs the ranges it serves (nil: the whole object).
func normalizeRange(h string, size int64) (rs []byteRange, out string, ok bool) {
	if h == "" {
		return nil, "", false
	}
	unit, spec, found := strings.Cut(h, "=")
	if !found || strings.TrimSpace(unit) != "bytes" {
		return nil, h, false
	}
	for _, part := range strings.Split(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue // RFC 9110 allows empty list elements
		}
		first, last, found := strings.Cut(part, "-")
		if !found {
			return nil, h, false
		}
		first, last = strings.TrimSpace(first), strings.TrimSpace(last)
		var r byteRange
		switch {
		case first == "":
			n, err := strconv.ParseInt(last, 10, 64)
			if err != nil || n < 0 {
				return nil, h, false
			}
			if n == 0 || size == 0 {
				continue // unsatisfiable
			}
			r = byteRange{max(size-n, 0), size - 1}
		default:
			a, err := strconv.ParseInt(first, 10, 64)
			if err != nil || a < 0 {
				return nil, h, false
			}
			b := size - 1
			if last != "" {
				if b, err = strconv.ParseInt(last, 10, 64); err != nil || b < a {
					return nil, h, false
				}
				b = min(b, size-1)
			}
			if a >= size {
				continue // unsatisfiable
			}
			r = byteRange{a, b}
		}
		rs = append(rs, r)
	}
	if len(rs) == 0 {
		return nil, h, false // none satisfiable: the library answers 416
	}
	slices.SortFunc(rs, func(x, y byteRange) int { return cmp.Compare(x.start, y.start) })
	merged := rs[:1]
	for _, r := range rs[1:] {
		last := &merged[len(merged)-1]
		if r.start <= last.end+1 {
			last.end = max(last.end, r.end)
			continue
		}
		merged = append(merged, r)
	}
	if len(merged) > maxRanges {
		return nil, "", true
	}
	var b strings.Builder
	b.WriteString("bytes=")
	for i, r := range merged {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%d-%d", r.start, r.end)
	}
	return merged, b.String(), true
}
