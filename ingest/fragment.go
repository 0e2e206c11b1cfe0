package ingest

import (
	"encoding/binary"
	"sync"
)

// fragSample is one sample of a fragment. Its bytes are payload or, for
// H.264 and H.265, the access unit's NAL units, which are written
// length-prefixed (AVCC) straight into the fragment instead of being copied
// into an AVCC buffer first.
type fragSample struct {
	duration  uint32
	ptsOffset int32
	nonSync   bool
	payload   []byte
	nalus     [][]byte
}

// size is the sample's length in the mdat.
func (s *fragSample) size() int {
	if s.nalus == nil {
		return len(s.payload)
	}
	n := 0
	for _, nalu := range s.nalus {
		n += 4 + len(nalu)
	}
	return n
}

func (s *fragSample) appendTo(b []byte) []byte {
	if s.nalus == nil {
		return append(b, s.payload...)
	}
	for _, nalu := range s.nalus {
		b = binary.BigEndian.AppendUint32(b, uint32(len(nalu)))
		b = append(b, nalu...)
	}
	return b
}

// fragTrack is one track's run of samples in a fragment.
type fragTrack struct {
	id      int
	base    uint64 // decode time of the first sample
	samples []fragSample
}

// appendFragment appends one fMP4 fragment (moof with an mfhd and a traf per
// track, then the mdat) to b. It is byte for byte what mediacommon's
// fmp4.Part.Marshal writes, without its reflective box marshalling, which
// was about a tenth of the server's CPU (a test keeps the two equal).
func appendFragment(b []byte, seq uint32, tracks []fragTrack) []byte {
	const (
		trunDataOffset = 0x01
		trunDuration   = 0x100
		trunSize       = 0x200
		trunFlags      = 0x400
		trunCTO        = 0x800
		nonSync        = 1 << 16
	)
	var flagsBuf [4]uint32
	flagsOf := flagsBuf[:0]
	moofSize := 8 + 16 // moof header, mfhd
	dataSize := 0
	for _, t := range tracks {
		f := uint32(trunDataOffset | trunDuration | trunSize)
		for i := range t.samples {
			s := &t.samples[i]
			if s.nonSync {
				f |= trunFlags
			}
			if s.ptsOffset != 0 {
				f |= trunCTO
			}
			dataSize += s.size()
		}
		flagsOf = append(flagsOf, f)
		moofSize += 8 + 16 + 20 + trunLen(f, len(t.samples))
	}
	if need := len(b) + moofSize + 8 + dataSize; need > cap(b) {
		b = append(make([]byte, 0, need), b...)
	}
	u32 := func(v uint32) { b = binary.BigEndian.AppendUint32(b, v) }
	box := func(size int, typ string) { u32(uint32(size)); b = append(b, typ...) }

	box(moofSize, "moof")
	box(16, "mfhd")
	u32(0) // version, flags
	u32(seq)
	dataOffset := moofSize + 8 // the first sample's bytes, from the start of the moof
	for i, t := range tracks {
		f := flagsOf[i]
		tl := trunLen(f, len(t.samples))
		box(8+16+20+tl, "traf")
		box(16, "tfhd")
		u32(0x020000) // version 0, default-base-is-moof
		u32(uint32(t.id))
		box(20, "tfdt")
		u32(0x01000000) // version 1
		b = binary.BigEndian.AppendUint64(b, t.base)
		box(tl, "trun")
		u32(0x01000000 | f) // version 1 (signed composition offsets), flags
		u32(uint32(len(t.samples)))
		u32(uint32(int32(dataOffset)))
		for j := range t.samples {
			s := &t.samples[j]
			size := s.size()
			u32(s.duration)
			u32(uint32(size))
			if f&trunFlags != 0 {
				var sf uint32
				if s.nonSync {
					sf = nonSync
				}
				u32(sf)
			}
			if f&trunCTO != 0 {
				u32(uint32(s.ptsOffset))
			}
			dataOffset += size
		}
	}
	box(8+dataSize, "mdat")
	for _, t := range tracks {
		for j := range t.samples {
			b = t.samples[j].appendTo(b)
		}
	}
	return b
}

// trunLen is the size of a trun box with flags f and n samples.
func trunLen(f uint32, n int) int {
	per := 8 // duration, size
	if f&0x400 != 0 {
		per += 4
	}
	if f&0x800 != 0 {
		per += 4
	}
	return 8 + 4 + 4 + 4 + n*per // header, version+flags, count, data offset, entries
}

// fragmentBuffers hold fragments while they are written to the spool. A
// fragment (about 0.5 MB at 4 Mbit/s) is written and hashed, then its
// buffer serves the next fragment of any recording: recordings flush at
// different moments, so a few buffers serve them all.
var fragmentBuffers = sync.Pool{New: func() any { return new([]byte) }}
