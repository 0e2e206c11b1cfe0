package main

// When each camera's files went up, from the dock's own log (slog text,
// --log-level info): "upload created" once a file is hashed and the server
// has not got it, "receipt verified" once it is stored and its receipt
// checked.

import (
	"bufio"
	"os"
	"regexp"
	"time"
)

// cameraSpan is one camera's upload: its first file's creation to its last
// file's verified receipt.
type cameraSpan struct {
	first, last time.Time
	created     int
	receipts    int
}

// dockEvents is the dock's log, read for times.
type dockEvents struct {
	cameras     map[string]*cameraSpan
	first, last time.Time // over every camera
}

var dockLine = regexp.MustCompile(`^time=(\S+) level=INFO msg="(upload created|receipt verified)".* camera=(\S+) `)

// parseDockLog reads the dock's log.
func parseDockLog(p string) (dockEvents, error) {
	f, err := os.Open(p)
	if err != nil {
		return dockEvents{}, err
	}
	defer f.Close()
	ev := dockEvents{cameras: map[string]*cameraSpan{}}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		ev.add(sc.Text())
	}
	return ev, sc.Err()
}

func (ev *dockEvents) add(line string) {
	m := dockLine.FindStringSubmatch(line)
	if m == nil {
		return
	}
	at, err := time.Parse(time.RFC3339Nano, m[1])
	if err != nil {
		return
	}
	c := ev.cameras[m[3]]
	if c == nil {
		c = &cameraSpan{}
		ev.cameras[m[3]] = c
	}
	switch m[2] {
	case "upload created":
		c.created++
		if c.first.IsZero() || at.Before(c.first) {
			c.first = at
		}
		if ev.first.IsZero() || at.Before(ev.first) {
			ev.first = at
		}
	case "receipt verified":
		c.receipts++
		if at.After(c.last) {
			c.last = at
		}
		if at.After(ev.last) {
			ev.last = at
		}
	}
}
