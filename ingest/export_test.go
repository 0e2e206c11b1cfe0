package ingest

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
)

// FailSpool makes the spool fail once at op ("create", "open-segment" of
// segment seq, "end") of device's recording, until t ends. Calls add up.
func FailSpool(t testing.TB, op, device string, seq int64) {
	prev := spoolFault.Load()
	var fired atomic.Bool
	f := func(o, d string, s int64) error {
		if o == op && d == device && s == seq && fired.CompareAndSwap(false, true) {
			return errors.New("injected at " + op + ": too many open files")
		}
		if prev != nil {
			return (*prev)(o, d, s)
		}
		return nil
	}
	spoolFault.Store(&f)
	t.Cleanup(func() { spoolFault.Store(prev) })
}

// StallSpool makes the spool stall at the first op ("fragment", ...) of
// device's recording, as a disk that stops answering does, until release
// is called (at the latest when t ends).
func StallSpool(t testing.TB, op, device string) (release func()) {
	prev := spoolFault.Load()
	var fired atomic.Bool
	stalled := make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(stalled) }) }
	f := func(o, d string, s int64) error {
		if o == op && d == device && fired.CompareAndSwap(false, true) {
			<-stalled
		}
		if prev != nil {
			return (*prev)(o, d, s)
		}
		return nil
	}
	spoolFault.Store(&f)
	t.Cleanup(func() { release(); spoolFault.Store(prev) })
	return release
}
