package api

import (
	"sync"
	"time"
)

// viewingWindow: a user's requests for one recording's media (one window
// of it, one action) within this long of the recorded event are one
// viewing: a seeking player's many Range requests make one custody event,
// and a viewing that goes on is recorded again each window.
const viewingWindow = 10 * time.Minute

// maxViewings bounds the viewings remembered; past it, every request is
// recorded (more events, never fewer).
const maxViewings = 20000

type viewingKey struct {
	user, recording, action, window string
}

// viewings remembers which viewings are in the custody ledger already.
type viewings struct {
	mu   sync.Mutex
	seen map[viewingKey]time.Time // when the viewing's event was recorded
}

// recorded reports whether k's viewing was recorded within the window.
func (v *viewings) recorded(k viewingKey, now time.Time) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	at, ok := v.seen[k]
	return ok && now.Sub(at) < viewingWindow
}

// remember notes that k's viewing was recorded at now.
func (v *viewings) remember(k viewingKey, now time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.seen == nil {
		v.seen = map[viewingKey]time.Time{}
	}
	if len(v.seen) >= maxViewings {
		for key, at := range v.seen {
			if now.Sub(at) >= viewingWindow {
				delete(v.seen, key)
			}
		}
		if len(v.seen) >= maxViewings {
			return
		}
	}
	v.seen[k] = now
}
