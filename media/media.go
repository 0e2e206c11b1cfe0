// Package media holds the few types that carry live media between the parts
// that produce it (ingest) and the parts that consume it (live, transcode):
// a track's description and one access unit. Standard library only.
package media

import "time"

// Codec names a track's codec.
type Codec string

const (
	H264 Codec = "H264"
	H265 Codec = "H265"
	AAC  Codec = "AAC"
	PCMU Codec = "PCMU" // G.711 µ-law
	PCMA Codec = "PCMA" // G.711 A-law
	Opus Codec = "Opus"
)

// Video reports whether c is a video codec.
func (c Codec) Video() bool { return c == H264 || c == H265 }

// Track describes one elementary stream.
type Track struct {
	Codec     Codec
	ClockRate int // units of Unit.PTS and Unit.DTS per second
	Channels  int // audio
	// Params are the video parameter sets known when the track started
	// (H.264: SPS, PPS; H.265: VPS, SPS, PPS), possibly empty; in-band ones
	// travel inside the units.
	Params [][]byte
	// Config is the AAC AudioSpecificConfig.
	Config []byte
	// Width and Height of video, when the parameter sets tell.
	Width, Height int
}

// Unit is one access unit: a video frame (its NAL units, without start
// codes or length prefixes) or one audio frame (Data).
type Unit struct {
	PTS, DTS int64 // in the track's clock rate; DTS differs from PTS with B-frames
	Keyframe bool
	NALUs    [][]byte
	Data     []byte
	// Recv is when ingest received the unit's last packet.
	Recv time.Time
}
