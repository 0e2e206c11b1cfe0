package s3

import "testing"

// Parts stay at the configured size until an object would need more than
// S3's 10,000, then grow in whole MiB so that it fits.
func TestPartSizeFor(t *testing.T) {
	s := &Store{partSize: DefaultPartSize}
	for _, tc := range []struct{ size, want int64 }{
		{65 << 20, DefaultPartSize},
		{4 << 30, DefaultPartSize}, // a recorder's 4 GiB file: 256 parts
		{DefaultPartSize * maxParts, DefaultPartSize},
		{DefaultPartSize*maxParts + 1, DefaultPartSize + 1<<20},
		{5 << 40, 525 << 20}, // S3's largest object
	} {
		got := s.partSizeFor(tc.size)
		if got != tc.want {
			t.Errorf("partSizeFor(%d) = %d, want %d", tc.size, got, tc.want)
		}
		if parts := (tc.size + got - 1) / got; parts > maxParts || got%(1<<20) != 0 {
			t.Errorf("partSizeFor(%d) = %d: %d parts", tc.size, got, parts)
		}
	}
}
