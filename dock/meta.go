package dock

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"io"
	"os"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/bodycam/bodycam/evidence"
)

// fileFacts is what the dock tells the server about one file (tus
// Upload-Metadata) and checks its receipt against.
type fileFacts struct {
	Name       string // base name, as the recorder named it
	Size       int64
	SHA256     string
	Device     string
	DeviceFrom string // sidecar, device-file, file-name, flag
	Officer    string
	StartedAt  time.Time
	EndedAt    time.Time
	Important  bool
	FileType   string
	GPS        []evidence.GPSPoint
}

// required is the Upload-Metadata every upload must carry (and the file
// type, which the server takes as it is).
func (f fileFacts) required() map[string]string {
	m := map[string]string{"device": f.Device, "filename": f.Name, "sha256": f.SHA256}
	if f.FileType != "" {
		m["filetype"] = f.FileType
	}
	return m
}

// metadata is the tus Upload-Metadata of the file.
func (f fileFacts) metadata() map[string]string {
	m := f.required()
	if f.Officer != "" {
		m["officer"] = f.Officer
	}
	if !f.StartedAt.IsZero() {
		m["started_at"] = f.StartedAt.Format(time.RFC3339)
	}
	if !f.EndedAt.IsZero() {
		m["ended_at"] = f.EndedAt.Format(time.RFC3339)
	}
	if f.Important {
		m["important"] = "1"
	}
	if len(f.GPS) > 0 {
		// A track longer than a header should carry stays on the recorder's
		// sidecar; the file's own track (if any) is read by the server.
		if b, err := json.Marshal(f.GPS); err == nil && len(b) <= 32<<10 {
			m["gps"] = string(b)
		}
	}
	return m
}

// sidecar is what a recorder's sidecar file may say. Every field is
// optional; names vary between makers, so the reader matches several.
type sidecar struct {
	Device    string
	Officer   string
	Start     time.Time
	End       time.Time
	Important *bool
	GPS       []evidence.GPSPoint
}

// Sidecar extensions: read for metadata, never uploaded as media.
var sidecarExts = map[string]bool{".json": true, ".xml": true, ".gps": true}

func isSidecar(name string) bool { return sidecarExts[strings.ToLower(path.Ext(name))] }

// sidecarPaths are the sidecars a media file may have: <file>.json,
// <file>.xml, <stem>.json, <stem>.xml (first found wins).
func sidecarPaths(p string) []string {
	stem := strings.TrimSuffix(p, path.Ext(p))
	out := []string{}
	for _, base := range []string{p, stem} {
		for _, ext := range []string{".json", ".JSON", ".xml", ".XML"} {
			out = append(out, base+ext)
		}
	}
	return out
}

var (
	deviceKeys    = []string{"device", "device_id", "deviceid", "camera", "camera_id", "cameraid", "serial", "serial_number", "devicesn", "device_sn", "recorder"}
	officerKeys   = []string{"officer", "officer_id", "officerid", "user", "user_id", "userid", "police_id", "policeid", "badge"}
	startKeys     = []string{"start", "started_at", "start_time", "starttime", "begin", "begin_time"}
	endKeys       = []string{"end", "ended_at", "end_time", "endtime", "stop", "stop_time"}
	importantKeys = []string{"important", "imp", "mark", "marked", "flag", "flagged"}
)

// readSidecar reads what it can of a JSON or XML sidecar; anything odd is
// ignored (ok is false when nothing was found or the file is unreadable).
func readSidecar(p string, tz *time.Location) (sidecar, bool) {
	var s sidecar
	f, err := os.Open(p)
	if err != nil {
		return s, false
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return s, false
	}
	fields := map[string]string{}
	var gps []evidence.GPSPoint
	if ext := strings.ToLower(path.Ext(p)); ext == ".json" {
		var m map[string]any
		if json.Unmarshal(b, &m) != nil {
			return s, false
		}
		for k, v := range m {
			k = strings.ToLower(k)
			switch v := v.(type) {
			case string:
				fields[k] = v
			case float64:
				fields[k] = strconv.FormatFloat(v, 'f', -1, 64)
			case bool:
				fields[k] = strconv.FormatBool(v)
			case []any:
				if k == "gps" || k == "track" {
					gps = jsonTrack(v, tz)
				}
			}
		}
	} else {
		fields, gps = xmlFields(b, tz)
	}
	pick := func(keys []string) string {
		for _, k := range keys {
			if v := strings.TrimSpace(fields[k]); v != "" {
				return v
			}
		}
		return ""
	}
	s.Device, s.Officer = pick(deviceKeys), pick(officerKeys)
	s.Start, _ = parseTime(pick(startKeys), tz)
	s.End, _ = parseTime(pick(endKeys), tz)
	if v := pick(importantKeys); v != "" {
		imp := v == "1" || strings.EqualFold(v, "true") || strings.EqualFold(v, "yes")
		s.Important = &imp
	}
	s.GPS = gps
	return s, s.Device != "" || s.Officer != "" || !s.Start.IsZero() || s.Important != nil || len(gps) > 0
}

// jsonTrack reads [{"lat":..,"lon":..,"time":..}, ...].
func jsonTrack(v []any, tz *time.Location) []evidence.GPSPoint {
	var out []evidence.GPSPoint
	for _, it := range v {
		m, ok := it.(map[string]any)
		if !ok {
			continue
		}
		var p evidence.GPSPoint
		var okLat, okLon bool
		for k, x := range m {
			switch strings.ToLower(k) {
			case "lat", "latitude":
				p.Lat, okLat = x.(float64)
			case "lon", "lng", "longitude":
				p.Lon, okLon = x.(float64)
			case "at", "time", "t", "timestamp":
				if s, ok := x.(string); ok {
					p.At, _ = parseTime(s, tz)
				}
			}
		}
		if okLat && okLon {
			out = append(out, p)
		}
	}
	return out
}

// xmlFields flattens an XML document: each element with text gives
// lower-cased local name → text (first wins; attributes too), and
// elements with lat/lon attributes or children are GPS points.
func xmlFields(b []byte, tz *time.Location) (map[string]string, []evidence.GPSPoint) {
	fields := map[string]string{}
	var gps []evidence.GPSPoint
	dec := xml.NewDecoder(bytes.NewReader(b))
	dec.Strict = false
	var stack []string
	var point map[string]string
	set := func(k, v string) {
		k = strings.ToLower(k)
		if point != nil {
			point[k] = v
		}
		if _, ok := fields[k]; !ok && strings.TrimSpace(v) != "" {
			fields[k] = strings.TrimSpace(v)
		}
	}
	for {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		switch t := tok.(type) {
		case xml.StartElement:
			stack = append(stack, t.Name.Local)
			name := strings.ToLower(t.Name.Local)
			if name == "point" || name == "trkpt" || name == "fix" || name == "gpspoint" {
				point = map[string]string{}
			}
			for _, a := range t.Attr {
				set(a.Name.Local, a.Value)
			}
		case xml.CharData:
			if len(stack) > 0 {
				set(stack[len(stack)-1], string(t))
			}
		case xml.EndElement:
			name := strings.ToLower(t.Name.Local)
			if point != nil && (name == "point" || name == "trkpt" || name == "fix" || name == "gpspoint") {
				lat, e1 := strconv.ParseFloat(firstOf(point, "lat", "latitude"), 64)
				lon, e2 := strconv.ParseFloat(firstOf(point, "lon", "lng", "longitude"), 64)
				if e1 == nil && e2 == nil {
					at, _ := parseTime(firstOf(point, "time", "at", "timestamp"), tz)
					gps = append(gps, evidence.GPSPoint{At: at, Lat: lat, Lon: lon})
				}
				point = nil
			}
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
		}
	}
	return fields, gps
}

func firstOf(m map[string]string, keys ...string) string {
	for _, k := range keys {
		if v := strings.TrimSpace(m[k]); v != "" {
			return v
		}
	}
	return ""
}

// parseTime reads the times recorders write: RFC 3339, or a local time
// (in tz) as "2006-01-02 15:04:05", "2006-01-02T15:04:05",
// "2006/01/02 15:04:05" or "20060102150405"; or Unix seconds.
func parseTime(s string, tz *time.Location) (time.Time, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, false
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, true
	}
	for _, layout := range []string{"2006-01-02 15:04:05", "2006-01-02T15:04:05", "2006/01/02 15:04:05", "20060102150405", "20060102 150405"} {
		if t, err := time.ParseInLocation(layout, s, tz); err == nil {
			return t, true
		}
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil && n > 1e9 && n < 1e11 {
		return time.Unix(n, 0), true
	}
	return time.Time{}, false
}

// namePattern: <device>_<YYYYMMDDhhmmss>..., the common recorder naming
// (CAM123_20261201083000_0001.MP4). A leading "!" (important) is skipped.
var namePattern = regexp.MustCompile(`^!?([A-Za-z0-9][A-Za-z0-9.-]{0,63}?)_(\d{14})`)

// importantPattern: an "_IMP" token in the name (…_IMP.MP4, …_IMP_…,
// case-insensitive), which several recorders write for the one-key mark.
var importantPattern = regexp.MustCompile(`(?i)_IMP([_.-]|$)`)

// fromName reads the device and start from a recorder's file name.
func fromName(name string, tz *time.Location) (device string, start time.Time) {
	m := namePattern.FindStringSubmatch(name)
	if m == nil {
		return "", time.Time{}
	}
	t, err := time.ParseInLocation("20060102150405", m[2], tz)
	if err != nil {
		return "", time.Time{}
	}
	return m[1], t
}

// importantName: the name marks the one-key "important" flag.
func importantName(name string) bool {
	return strings.HasPrefix(name, "!") || importantPattern.MatchString(name)
}

// fileTypes are the media types of what recorders write (a fixed table,
// so that the agent says the same on every workstation).
var fileTypes = map[string]string{
	".mp4": "video/mp4", ".mov": "video/quicktime", ".m4v": "video/mp4", ".avi": "video/x-msvideo",
	".mkv": "video/x-matroska", ".ts": "video/mp2t", ".mts": "video/mp2t", ".3gp": "video/3gpp",
	".wav": "audio/wav", ".mp3": "audio/mpeg", ".m4a": "audio/mp4", ".aac": "audio/aac", ".amr": "audio/amr",
	".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".heic": "image/heic",
}

func fileType(name string) string { return fileTypes[strings.ToLower(path.Ext(name))] }
