package derive

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"

	"github.com/bodycam/bodycam/evidence"
)

// A stream recording's media time is what /media plays and what a player's
// clock shows: the segments' own timestamps, from 0 at the first sample.
// It is not the catalog's receive times: a publisher that lags and catches
// up, or a busy server, moves those by up to seconds. Pictures are chosen
// and listed by media time, so that a thumbnail clicked plays its moment.

// maxMoof bounds the first fragment header read of a segment; firstRead
// is what is read of it at first.
const (
	maxMoof   = 4 << 20
	firstRead = 16 << 10
)

// mediaStarts are the media segments' start times in media time: the
// decode time (tfdt) of the video track in each one's first fragment, in
// the video track's timescale from the init segment.
func (d *Deriver) mediaStarts(ctx context.Context, init evidence.Segment, media []evidence.Segment) ([]time.Duration, error) {
	if init.Size > maxMoof {
		return nil, fmt.Errorf("init segment %s: %d bytes", init.Key, init.Size)
	}
	b, err := d.readRange(ctx, init.Key, 0, init.Size)
	if err != nil {
		return nil, err
	}
	var in fmp4.Init
	if err := in.Unmarshal(bytes.NewReader(b)); err != nil {
		return nil, fmt.Errorf("init segment %s: %w", init.Key, err)
	}
	var track *fmp4.InitTrack
	for _, t := range in.Tracks {
		if t.Codec != nil && t.Codec.IsVideo() {
			track = t
			break
		}
	}
	if track == nil || track.TimeScale == 0 {
		return nil, fmt.Errorf("init segment %s: no video track", init.Key)
	}
	starts := make([]time.Duration, len(media))
	for i, s := range media {
		base, err := d.firstDecodeTime(ctx, s, track.ID)
		if err != nil {
			return nil, err
		}
		starts[i] = time.Duration(base / uint64(track.TimeScale) * uint64(time.Second))
		starts[i] += time.Duration(base % uint64(track.TimeScale) * uint64(time.Second) / uint64(track.TimeScale))
	}
	return starts, nil
}

// firstDecodeTime reads a media segment's first moof and returns the
// tfdt of the track with id trackID.
func (d *Deriver) firstDecodeTime(ctx context.Context, s evidence.Segment, trackID int) (uint64, error) {
	// One read holds the first moof of a segment as bodycam cuts them (a
	// fragment of under a second); a larger one is read again whole.
	moof, err := d.readRange(ctx, s.Key, 0, min(firstRead, s.Size))
	if err != nil {
		return 0, err
	}
	if len(moof) < 8 || string(moof[4:8]) != "moof" {
		return 0, fmt.Errorf("segment %s: does not start with a moof box", s.Key)
	}
	size := int64(binary.BigEndian.Uint32(moof))
	if size < 8 || size > min(s.Size, maxMoof) {
		return 0, fmt.Errorf("segment %s: moof of %d bytes", s.Key, size)
	}
	if size > int64(len(moof)) {
		if moof, err = d.readRange(ctx, s.Key, 0, size); err != nil {
			return 0, err
		}
	}
	moof = moof[:size]
	for _, traf := range boxes(moof[8:], "traf") {
		var id uint32
		for _, tfhd := range boxes(traf, "tfhd") {
			if len(tfhd) >= 8 {
				id = binary.BigEndian.Uint32(tfhd[4:8])
			}
		}
		if int(id) != trackID {
			continue
		}
		for _, tfdt := range boxes(traf, "tfdt") {
			switch {
			case len(tfdt) >= 12 && tfdt[0] == 1:
				return binary.BigEndian.Uint64(tfdt[4:12]), nil
			case len(tfdt) >= 8 && tfdt[0] == 0:
				return uint64(binary.BigEndian.Uint32(tfdt[4:8])), nil
			}
		}
	}
	return 0, fmt.Errorf("segment %s: no decode time of track %d in its first fragment", s.Key, trackID)
}

// boxes are the bodies of the boxes of type typ directly in b (a box's
// children), without their headers.
func boxes(b []byte, typ string) [][]byte {
	var out [][]byte
	for len(b) >= 8 {
		size := int(binary.BigEndian.Uint32(b))
		if size < 8 || size > len(b) {
			break
		}
		if string(b[4:8]) == typ {
			out = append(out, b[8:size])
		}
		b = b[size:]
	}
	return out
}

func (d *Deriver) readRange(ctx context.Context, key string, off, n int64) ([]byte, error) {
	rc, err := d.o.Store.GetRange(ctx, key, off, n)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, n))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", key, err)
	}
	return b, nil
}
