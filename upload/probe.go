package upload

import (
	"bytes"
	"io"
	"os"
	"time"

	mp4 "github.com/abema/go-mp4"
)

// fileTimes is what an uploaded file says of when it was recorded: an
// MP4 or QuickTime file's movie header (mvhd) holds its creation time and
// its length. Zero fields: the file does not say (or says nonsense).
type fileTimes struct {
	Created  time.Time
	Duration time.Duration
}

// mp4Epoch is the ISO base media file format's time zero.
var mp4Epoch = time.Date(1904, 1, 1, 0, 0, 0, 0, time.UTC)

// probeTimes reads the movie header of an MP4/MOV file; any other file, or
// one whose header cannot be read, says nothing. Only the mvhd box's
// payload is decoded (a few dozen bytes): the rest is skipped by its box
// sizes, so a file of any size costs a few reads.
func probeTimes(path string, now time.Time) fileTimes {
	f, err := os.Open(path)
	if err != nil {
		return fileTimes{}
	}
	defer f.Close()
	head := make([]byte, 12)
	if _, err := io.ReadFull(f, head); err != nil || !isISOBMFF(head) {
		return fileTimes{}
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fileTimes{}
	}
	boxes, err := mp4.ExtractBoxWithPayload(f, nil, mp4.BoxPath{mp4.BoxTypeMoov(), mp4.BoxTypeMvhd()})
	if err != nil || len(boxes) == 0 {
		return fileTimes{}
	}
	mvhd, ok := boxes[0].Payload.(*mp4.Mvhd)
	if !ok {
		return fileTimes{}
	}
	var ft fileTimes
	created, duration := uint64(mvhd.CreationTimeV0), uint64(mvhd.DurationV0)
	if mvhd.GetVersion() == 1 {
		created, duration = mvhd.CreationTimeV1, mvhd.DurationV1
	}
	// A recorder without a set clock writes 0 (1904) or 1970; a time
	// ahead of the server's is no better. Neither is trusted.
	if created > 0 && created < 1<<40 {
		at := mp4Epoch.Add(time.Duration(created) * time.Second)
		if at.Year() >= 2000 && !at.After(now.Add(24*time.Hour)) {
			ft.Created = at
		}
	}
	if mvhd.Timescale > 0 && duration > 0 && duration != 1<<32-1 && duration != 1<<64-1 {
		d := time.Duration(float64(duration) / float64(mvhd.Timescale) * float64(time.Second))
		if d > 0 && d <= 7*24*time.Hour {
			ft.Duration = d
		}
	}
	return ft
}

// isISOBMFF reports whether a file starts like an MP4/MOV: a box of a
// type such files start with.
func isISOBMFF(head []byte) bool {
	t := head[4:8]
	for _, k := range [][]byte{[]byte("ftyp"), []byte("moov"), []byte("mdat"), []byte("wide"), []byte("free"), []byte("skip")} {
		if bytes.Equal(t, k) {
			return true
		}
	}
	return false
}
