package ingest

import (
	"errors"
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
