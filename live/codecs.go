package live

import (
	"fmt"
	"sort"
	"strings"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/bodycam/bodycam/media"
)

// h264Profiles are the H.264 profile-level-ids the relay can answer; an
// answer may name any profile the offer lists (decoders take any).
var h264Profiles = []string{"42e01f", "42001f", "4d001f", "64001f", "640c1f"}

func registerCodecs(me *webrtc.MediaEngine) error {
	pt := webrtc.PayloadType(96)
	for _, p := range h264Profiles {
		if err := me.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: h264Cap(p), PayloadType: pt}, webrtc.RTPCodecTypeVideo); err != nil {
			return err
		}
		pt++
	}
	for _, c := range []struct {
		cap  webrtc.RTPCodecCapability
		pt   webrtc.PayloadType
		kind webrtc.RTPCodecType
	}{
		{webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH265, ClockRate: 90000}, 116, webrtc.RTPCodecTypeVideo},
		{opusCap, 111, webrtc.RTPCodecTypeAudio},
		{webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMU, ClockRate: 8000}, 0, webrtc.RTPCodecTypeAudio},
		{webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMA, ClockRate: 8000}, 8, webrtc.RTPCodecTypeAudio},
	} {
		if err := me.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: c.cap, PayloadType: c.pt}, c.kind); err != nil {
			return err
		}
	}
	return nil
}

var opusCap = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"}

func h264Cap(profile string) webrtc.RTPCodecCapability {
	return webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
		SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=" + profile}
}

// offer is what a viewer's SDP offer can receive.
type offer struct {
	video, audio bool                // has an m= line of the kind
	codecs       map[string][]string // lower-case mime type -> fmtp lines
}

func parseOffer(text string) (offer, error) {
	var d sdp.SessionDescription
	if err := d.UnmarshalString(text); err != nil {
		return offer{}, fmt.Errorf("%w: %v", ErrBadOffer, err)
	}
	o := offer{codecs: map[string][]string{}}
	for _, m := range d.MediaDescriptions {
		kind := m.MediaName.Media
		if kind != "video" && kind != "audio" {
			continue
		}
		if kind == "video" {
			o.video = true
		} else {
			o.audio = true
		}
		for _, f := range m.MediaName.Formats {
			var pt uint8
			if _, err := fmt.Sscan(f, &pt); err != nil {
				continue
			}
			c, err := d.GetCodecForPayloadType(pt)
			if err != nil {
				continue
			}
			mime := strings.ToLower(kind + "/" + c.Name)
			o.codecs[mime] = append(o.codecs[mime], c.Fmtp)
		}
	}
	if !o.video && !o.audio {
		return o, fmt.Errorf("%w: no audio or video section", ErrBadOffer)
	}
	return o, nil
}

func (o offer) has(mime string) bool { return len(o.codecs[strings.ToLower(mime)]) > 0 }

// h264Profile picks the profile-level-id to answer with: the offered one
// of the stream's profile if there is one, else any offered with
// packetization-mode=1, or "" when the offer takes no H.264 the relay sends.
func (o offer) h264Profile(params [][]byte) string {
	want := ""
	for _, p := range params {
		if len(p) >= 4 && p[0]&0x1f == 7 { // SPS: profile_idc, constraint flags
			want = fmt.Sprintf("%02x%02x", p[1], p[2])
		}
	}
	var any string
	for _, f := range o.codecs["video/h264"] {
		kv := fmtpMap(f)
		if kv["packetization-mode"] != "1" {
			continue
		}
		plid := strings.ToLower(kv["profile-level-id"])
		if len(plid) != 6 || !known(plid) {
			continue
		}
		if want != "" && plid[:4] == want {
			return plid
		}
		if any == "" || plid[:4] == "42e0" {
			any = plid
		}
	}
	return any
}

func known(plid string) bool {
	for _, p := range h264Profiles {
		if p[:4] == plid[:4] {
			return true
		}
	}
	return false
}

func fmtpMap(line string) map[string]string {
	out := map[string]string{}
	for _, kv := range strings.Split(line, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		out[strings.ToLower(k)] = v
	}
	return out
}

// capFor is the codec the relay sends an output's units as.
func capFor(c media.Codec, h264Profile string) webrtc.RTPCodecCapability {
	switch c {
	case media.H264:
		return h264Cap(h264Profile)
	case media.H265:
		return webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH265, ClockRate: 90000}
	case media.PCMU:
		return webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMU, ClockRate: 8000}
	case media.PCMA:
		return webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMA, ClockRate: 8000}
	}
	return opusCap
}

func (o offer) describe() string {
	var names []string
	for mime := range o.codecs {
		names = append(names, mime)
	}
	sort.Strings(names)
	if len(names) == 0 {
		return "no codecs"
	}
	return strings.Join(names, ", ")
}
