package api

import "testing"

func TestNormalizeRange(t *testing.T) {
	for _, c := range []struct {
		in   string
		want string
		ok   bool
	}{
		{"", "", false},
		{"bytes=0-", "bytes=0-999", true},
		{"bytes= 0-", "bytes=0-999", true},
		{"bytes=-999999999", "bytes=0-999", true},
		{"bytes=-10", "bytes=990-999", true},
		{"bytes=1-,0-", "bytes=0-999", true},
		{"bytes=500-600,0-100,90-200", "bytes=0-200,500-600", true},
		{"bytes=0-9,10-19", "bytes=0-19", true}, // touching
		{"bytes=5-5000", "bytes=5-999", true},
		{"bytes=0-0,2-2,4-4,6-6,8-8,10-10,12-12,14-14,16-16,18-18,20-20,22-22,24-24,26-26,28-28,30-30,32-32", "", true},
		{"bytes=2000-", "bytes=2000-", false},  // unsatisfiable: 416 from the library
		{"bytes=abc", "bytes=abc", false},      // invalid: as before
		{"bytes=9-3", "bytes=9-3", false},      // invalid
		{"items=0-9", "items=0-9", false},      // another unit: ignored by the library
		{"bytes=0-9,,", "bytes=0-9", true},     // empty list elements
		{"bytes=2000-,0-9", "bytes=0-9", true}, // the unsatisfiable part dropped
	} {
		_, got, ok := normalizeRange(c.in, 1000)
		if got != c.want || ok != c.ok {
			t.Errorf("%q: %q %v, want %q %v", c.in, got, ok, c.want, c.ok)
		}
	}
}
