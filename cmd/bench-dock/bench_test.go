package main

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mp4 "github.com/abema/go-mp4"

	"github.com/bodycam/bodycam/evidence"
)

// The cameras' files are real MP4s padded to the exact size with a free
// box: the boxes cover the file to its last byte, the movie header holds
// the creation time the name says, and the SHA-256 the bench keeps is the
// file's.
func TestCameraFiles(t *testing.T) {
	o := options{cameras: 2, files: 2, size: 3<<20 + 17}
	files, err := makeCameras(context.Background(), o, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 4 {
		t.Fatalf("%d files, want 4", len(files))
	}
	seen := map[string]bool{}
	for _, f := range files {
		p := filepath.Join(f.dir, f.name)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(b)) != o.size {
			t.Errorf("%s: %d bytes, want %d", f.name, len(b), o.size)
		}
		if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != f.sha256 {
			t.Errorf("%s: the bench's SHA-256 is not the file's", f.name)
		}
		if seen[f.sha256] {
			t.Errorf("%s: the same bytes as another file", f.name)
		}
		seen[f.sha256] = true
		if want := f.device + "_" + f.recorded.Format("20060102150405") + "_"; !strings.HasPrefix(f.name, want) || filepath.Base(f.dir) != f.camera {
			t.Errorf("%s in %s: want a name starting %s in the camera's folder %s", f.name, f.dir, want, f.camera)
		}
		var types []string
		var end uint64
		for off := uint64(0); off < uint64(len(b)); {
			size := uint64(binary.BigEndian.Uint32(b[off:]))
			if size == 1 {
				size = binary.BigEndian.Uint64(b[off+8:])
			}
			types = append(types, string(b[off+4:off+8]))
			off += size
			end = off
		}
		if end != uint64(len(b)) || types[0] != "ftyp" || types[1] != "moov" || types[len(types)-1] != "free" {
			t.Errorf("%s: top-level boxes %v end at %d of %d bytes", f.name, types, end, len(b))
		}
		fh, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		boxes, err := mp4.ExtractBoxWithPayload(fh, nil, mp4.BoxPath{mp4.BoxTypeMoov(), mp4.BoxTypeMvhd()})
		fh.Close()
		if err != nil || len(boxes) != 1 {
			t.Fatalf("%s: mvhd: %v", f.name, err)
		}
		mvhd := boxes[0].Payload.(*mp4.Mvhd)
		created := uint64(mvhd.CreationTimeV0)
		if mvhd.GetVersion() == 1 {
			created = mvhd.CreationTimeV1
		}
		if at := time.Date(1904, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(created) * time.Second); !at.Equal(f.recorded) {
			t.Errorf("%s: the movie header says %v, want %v", f.name, at, f.recorded)
		}
	}
}

func TestFreeBoxHeader(t *testing.T) {
	h := freeBoxHeader(1000)
	if len(h) != 8 || binary.BigEndian.Uint32(h) != 1000 || string(h[4:]) != "free" {
		t.Errorf("small box: % x", h)
	}
	h = freeBoxHeader(5 << 30)
	if len(h) != 16 || binary.BigEndian.Uint32(h) != 1 || string(h[4:8]) != "free" || binary.BigEndian.Uint64(h[8:]) != 5<<30 {
		t.Errorf("large box: % x", h)
	}
}

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{"1GiB": 1 << 30, "64MiB": 64 << 20, "500MB": 500e6, "4096": 4096, "1.5GiB": 3 << 29} {
		if got, err := parseBytes(in); err != nil || got != want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "1 parsec", "GiB"} {
		if _, err := parseBytes(in); err == nil {
			t.Errorf("parseBytes(%q): no error", in)
		}
	}
}

func TestParseDiskStats(t *testing.T) {
	const s = ` 254       0 vda 91135 11313 3318610 26129 75828 116148 13699360 74201 0 30004 110775 20419 27 3303152 5685 12899 4759
 254       1 vda1 10 0 80 1 20 0 160 2 0 3 4 0 0 0 0 0 0
`
	d, ok := parseDiskStats(s, "vda")
	if !ok || d.readBytes != 3318610*512 || d.writeBytes != 13699360*512 || d.busyMS != 30004 {
		t.Errorf("vda: %+v %v", d, ok)
	}
	if d, ok := parseDiskStats(s, "vda1"); !ok || d.writeBytes != 160*512 {
		t.Errorf("vda1: %+v %v", d, ok)
	}
	if _, ok := parseDiskStats(s, "sda"); ok {
		t.Error("sda: found in a table without it")
	}
}

func TestDockEvents(t *testing.T) {
	var ev dockEvents
	ev.cameras = map[string]*cameraSpan{}
	for _, l := range []string{
		`time=2026-12-02T01:28:46.100Z level=INFO msg="upload created" component=dock camera=cam01 file=a.MP4 url=http://x/1 device=d1 size=8`,
		`time=2026-12-02T01:28:46.300Z level=INFO msg="upload created" component=dock camera=cam02 file=b.MP4 url=http://x/2 device=d2 size=8`,
		`time=2026-12-02T01:28:47.000Z level=WARN msg="retrying" component=dock camera=cam02 file=b.MP4 err=x in=1s`,
		`time=2026-12-02T01:28:47.500Z level=INFO msg="receipt verified" component=dock camera=cam02 file=b.MP4 state=uploaded`,
		`time=2026-12-02T01:28:47.800Z level=INFO msg="receipt verified" component=dock camera=cam01 file=a.MP4 state=uploaded`,
		`cam01 a.MP4: uploaded recording r1`,
	} {
		ev.add(l)
	}
	at := func(s string) time.Time { t, _ := time.Parse(time.RFC3339Nano, s); return t }
	if !ev.first.Equal(at("2026-12-02T01:28:46.1Z")) || !ev.last.Equal(at("2026-12-02T01:28:47.8Z")) {
		t.Errorf("span %v → %v", ev.first, ev.last)
	}
	c := ev.cameras["cam02"]
	if c == nil || c.created != 1 || c.receipts != 1 || c.last.Sub(c.first) != 1200*time.Millisecond {
		t.Errorf("cam02: %+v", c)
	}
}

// A stack is counted once, under the first rule it matches.
func TestProfileCategories(t *testing.T) {
	const traces = `File: bodycam
Type: cpu
Duration: 5s, Total samples = 210ms ( 4.20%)
-----------+-------------------------------------------------------
      30ms   crypto/internal/fips140/sha256.blockSHANI
             crypto/internal/fips140/sha256.block
             crypto/internal/fips140/sha256.(*Digest).Write
             github.com/bodycam/bodycam/upload.hashFile
-----------+-------------------------------------------------------
      20ms   internal/runtime/syscall/linux.Syscall6
             syscall.Syscall
             syscall.write
             os.(*File).Write
             github.com/tus/tusd/v2/pkg/filestore.(*fileUpload).WriteChunk
-----------+-------------------------------------------------------
      10ms   internal/runtime/syscall/linux.Syscall6
             syscall.Syscall
             syscall.Fsync
             os.(*File).Sync
-----------+-------------------------------------------------------
      1.5s   runtime.memmove
             io.copyBuffer
-----------+-------------------------------------------------------
      10ms   internal/runtime/syscall/linux.Syscall6
             syscall.Syscall
             syscall.read
             internal/poll.(*FD).Read
             net.(*netFD).Read
             net.(*conn).Read
             bytes:[16384]
-----------+-------------------------------------------------------
      40ms   internal/runtime/syscall/linux.Syscall6
             syscall.RawSyscall6
             syscall.Syscall
             syscall.write
             internal/poll.(*FD).Write
             net.(*netFD).Write
             net.(*conn).Write
             io.copyBuffer
             net.genericReadFrom
             net.(*TCPConn).ReadFrom
             os.(*File).Read
-----------+-------------------------------------------------------
      20ms   internal/runtime/syscall/linux.Syscall6
             syscall.Syscall
             syscall.unlinkat
             os.Remove
-----------+-------------------------------------------------------
      10ms   runtime.futex
             runtime.notesleep
-----------+-------------------------------------------------------
      10ms   runtime.scanobject
             runtime.gcDrain
             runtime.gcBgMarkWorker
-----------+-------------------------------------------------------
      10ms   strings.Cut
`
	shares, total := classify(parseTraces(strings.NewReader(traces)))
	if total != 1660*time.Millisecond {
		t.Errorf("total %v", total)
	}
	got := map[string]time.Duration{}
	for _, s := range shares {
		got[s.name] = s.d
	}
	want := map[string]time.Duration{
		"SHA-256": 30 * time.Millisecond, "system calls: file writes": 20 * time.Millisecond, "system calls: fsync": 10 * time.Millisecond,
		"memory copies (memmove, memclr)": 1500 * time.Millisecond, "system calls: network reads": 10 * time.Millisecond,
		"Go runtime: garbage collection": 10 * time.Millisecond, "other": 10 * time.Millisecond,
		"system calls: network writes": 40 * time.Millisecond, "system calls: other (open, stat, rename, unlink, …)": 20 * time.Millisecond,
		"Go runtime: scheduler (futex, netpoll)": 10 * time.Millisecond,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
	if len(got) != len(want) || shares[0].name != "memory copies (memmove, memclr)" {
		t.Errorf("shares %v", shares)
	}
	if by := hashCallers(parseTraces(strings.NewReader(traces))); len(by) != 1 || by[0].name != "upload.hashFile" || by[0].d != 30*time.Millisecond {
		t.Errorf("SHA-256 by caller: %v", by)
	}
}

func TestVerdict(t *testing.T) {
	quiet := verdictIn{diskOK: true, cpus: 2, store: "dir"}
	for _, c := range []struct {
		name string
		in   func(v verdictIn) verdictIn
		want string
		says string
	}{
		{"disk busy, CPU free", func(v verdictIn) verdictIn {
			v.diskBusy, v.diskMBps, v.rawMBps, v.machine, v.server, v.dock = 0.95, 300, 320, 0.9, 0.5, 0.3
			return v
		}, "disk", "94 % of what a plain write"},
		{"as fast as the raw write though rarely busy", func(v verdictIn) verdictIn {
			v.diskBusy, v.diskMBps, v.rawMBps, v.machine = 0.3, 290, 300, 1.0
			return v
		}, "disk", ""},
		{"server saturates the CPU", func(v verdictIn) verdictIn {
			v.diskBusy, v.diskMBps, v.rawMBps, v.machine, v.server, v.dock = 0.4, 100, 300, 1.95, 1.2, 0.6
			return v
		}, "bodycam CPU", ""},
		{"the dock takes the most", func(v verdictIn) verdictIn {
			v.diskBusy, v.diskMBps, v.rawMBps, v.machine, v.server, v.dock = 0.4, 100, 300, 1.9, 0.6, 1.2
			return v
		}, "dock CPU", ""},
		{"MinIO takes the most", func(v verdictIn) verdictIn {
			v.store, v.diskBusy, v.diskMBps, v.rawMBps, v.machine, v.server, v.dock, v.minio = "s3", 0.4, 100, 300, 1.9, 0.5, 0.4, 0.9
			return v
		}, "MinIO", "MinIO 90 %"},
		{"MinIO is not counted with a directory store", func(v verdictIn) verdictIn {
			v.diskBusy, v.diskMBps, v.rawMBps, v.machine, v.server, v.dock, v.minio = 0.4, 100, 300, 1.9, 0.5, 0.4, 0.9
			return v
		}, "bodycam CPU", ""},
		{"a shared machine", func(v verdictIn) verdictIn {
			v.diskBusy, v.diskMBps, v.rawMBps, v.machine, v.server, v.dock, v.others = 0.2, 50, 300, 2, 0.3, 0.3, 1.4
			return v
		}, "other processes' CPU (a shared machine)", "other processes 140 %"},
		{"neither saturated", func(v verdictIn) verdictIn {
			v.diskBusy, v.diskMBps, v.rawMBps, v.machine, v.server, v.dock = 0.3, 90, 300, 1.2, 0.7, 0.4
			return v
		}, "bodycam CPU", "Neither was saturated"},
		{"no disk counters", func(v verdictIn) verdictIn {
			v.diskOK, v.machine, v.server, v.dock = false, 1.9, 1.0, 0.8
			return v
		}, "bodycam CPU", "could not be read"},
		{"what the CPU alone would carry", func(v verdictIn) verdictIn {
			v.diskBusy, v.diskMBps, v.rawMBps, v.machine, v.server, v.dock, v.others, v.cpuPerGB = 0.4, 60, 120, 2, 0.4, 0.2, 1.4, 10
			return v
		}, "other processes' CPU (a shared machine)", "2 cores alone would carry about 200 MB/s; the disk's plain write reached 120 MB/s"},
	} {
		name, why := verdict(c.in(quiet))
		if name != c.want || !strings.Contains(why, c.says) {
			t.Errorf("%s: %q (%s); want %q saying %q", c.name, name, why, c.want, c.says)
		}
	}
}

// A kept receipt passes only when its signature is the published key's
// over its exact bytes and it names the file the bench wrote.
func TestCheckReceiptFile(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	f := cameraFile{device: "dockbench-01", name: "dockbench-01_20261201010100_0001.MP4", size: 1 << 20,
		sha256: strings.Repeat("ab", 32)}
	dir := t.TempDir()
	write := func(rc evidence.Receipt, tamper bool) string {
		body := rc.Marshal()
		sig := ed25519.Sign(priv, body)
		if tamper {
			body = []byte(strings.Replace(string(body), `"size": 1048576`, `"size": 1048577`, 1))
		}
		p := filepath.Join(dir, rc.RecordingID+".receipt.json")
		if err := os.WriteFile(p, body, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p+".sig", sig, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := evidence.Receipt{Version: 1, RecordingID: "rec-1", DeviceID: f.device, FileName: f.name, Size: f.size, SHA256: f.sha256, SigningKeyID: "k1"}
	keys := map[string]ed25519.PublicKey{"k1": pub}
	if err := checkReceiptFile(write(good, false), keys, f, "rec-1"); err != nil {
		t.Errorf("a good receipt: %v", err)
	}
	for name, c := range map[string]struct {
		rc       func(evidence.Receipt) evidence.Receipt
		tamper   bool
		keys     map[string]ed25519.PublicKey
		rec, say string
	}{
		"a byte changed after signing": {rc: func(r evidence.Receipt) evidence.Receipt { r.RecordingID = "rec-2"; return r }, tamper: true, keys: keys, rec: "rec-2", say: "signature"},
		"another file's hash": {rc: func(r evidence.Receipt) evidence.Receipt {
			r.RecordingID, r.SHA256 = "rec-3", strings.Repeat("cd", 32)
			return r
		}, keys: keys, rec: "rec-3", say: "is for"},
		"another recording":                 {rc: func(r evidence.Receipt) evidence.Receipt { r.RecordingID = "rec-4"; return r }, keys: keys, rec: "rec-5", say: "is for"},
		"a key the server does not publish": {rc: func(r evidence.Receipt) evidence.Receipt { r.RecordingID = "rec-6"; return r }, keys: map[string]ed25519.PublicKey{"k2": pub}, rec: "rec-6", say: "does not publish"},
	} {
		err := checkReceiptFile(write(c.rc(good), c.tamper), c.keys, f, c.rec)
		if err == nil || !strings.Contains(err.Error(), c.say) {
			t.Errorf("%s: %v, want an error saying %q", name, err, c.say)
		}
	}
	if err := checkReceiptFile("", keys, f, "rec-1"); err == nil {
		t.Error("no receipt kept: no error")
	}
}
