package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bodycam/bodycam/dock"
	"github.com/bodycam/bodycam/evidence"
	"github.com/bodycam/bodycam/internal/benchutil"
	"github.com/bodycam/bodycam/internal/testsvc"
)

// run is one benchmark: its directories, children, and what it saw.
type run struct {
	o                  options
	root               string // the working directory (under -dir)
	cams, data, state  string
	dev                string // the block device under root
	files              []cameraFile
	minio              *testsvc.MinIO
	srv, dock          *benchutil.Child
	admin, auditor     api
	version            string
	started            time.Time
	loadBefore         string
	raw                rawResult
	rawErr             error
	baseRSS            float64 // the server's, before the upload
	samples            []sample
	dockStart, dockEnd time.Time
	events             dockEvents
	verify             verifyResult
	profile            profileResult
	checks             []check
}

// sample is every counter the bench reads, at one moment.
type sample struct {
	at                      time.Time
	server, dock, minio     float64 // CPU seconds (user+system)
	busy, total             float64 // the machine's CPU ticks
	disk                    diskStats
	diskOK                  bool
	serverIO, minioIO       benchutil.IO
	serverRSS, dockRSS, mio float64
}

// check is one thing that must hold.
type check struct {
	name   string
	ok     bool
	detail string
}

// bench runs the benchmark and writes its summary; failed is whether a
// check failed, err whether it could not run at all.
func bench(ctx context.Context, o options) (failed bool, err error) {
	r := &run{o: o, started: time.Now()}
	if r.root, err = os.MkdirTemp(o.dir, "bench-dock-*"); err != nil {
		return false, err
	}
	r.cams, r.data, r.state = filepath.Join(r.root, "cameras"), filepath.Join(r.root, "data"), filepath.Join(r.root, "dock-state")
	defer func() {
		if o.keep {
			fmt.Fprintf(os.Stderr, "bench-dock: kept %s\n", r.root)
			return
		}
		// The files are big and useless afterwards; the logs explain a
		// failure.
		os.RemoveAll(r.cams)
		os.RemoveAll(r.data)
		if err != nil || failed {
			fmt.Fprintf(os.Stderr, "bench-dock: the logs are kept in %s\n", r.root)
		} else {
			os.RemoveAll(r.root)
		}
	}()
	if err := r.checkTools(); err != nil {
		return false, err
	}
	r.dev = blockDevice(r.root)
	if err := r.checkDisk(); err != nil {
		return false, err
	}
	progress("generating %d cameras × %d file(s) × %s in %s", o.cameras, o.files, humanBytes(o.size), r.cams)
	if err := os.MkdirAll(r.cams, 0o755); err != nil {
		return false, err
	}
	if r.files, err = makeCameras(ctx, o, r.cams); err != nil {
		return false, err
	}
	if o.raw {
		if err := os.MkdirAll(r.data, 0o700); err != nil {
			return false, err
		}
		progress("raw write: %s by %d writers to %s (fdatasync), the rate the disk allows", humanBytes(o.total()), o.cameras, r.data)
		r.raw, r.rawErr = rawWrite(ctx, r.data, r.dev, o.cameras, o.total()/int64(o.cameras))
		if r.rawErr != nil {
			return false, r.rawErr
		}
		progress("raw write: %.0f MB/s", r.raw.mbps())
		// What the raw write left dirty (its files' metadata) settles
		// before the upload starts.
		if err := sleep(ctx, 2*time.Second); err != nil {
			return false, err
		}
	}
	if o.store == "s3" {
		parent := o.minioDir
		if parent == "" {
			parent = r.root
		}
		if r.minio, err = testsvc.StartMinIOIn(parent); err != nil {
			return false, err
		}
		defer r.minio.Close()
	}
	if err := r.startServer(ctx); err != nil {
		return false, err
	}
	defer r.srv.Stop(time.Minute)
	if err := r.setUp(ctx); err != nil {
		return false, err
	}
	if err := r.upload(ctx); err != nil {
		return false, err
	}
	r.checkAll(ctx)
	sum := r.summary()
	fmt.Print(sum)
	if o.out != "" {
		if err := os.WriteFile(o.out, []byte(sum), 0o644); err != nil {
			return false, err
		}
		progress("summary written to %s", o.out)
	}
	for _, c := range r.checks {
		if !c.ok {
			failed = true
		}
	}
	return failed, nil
}

// checkTools makes sure of what the bench runs before it writes gigabytes.
func (r *run) checkTools() error {
	if _, err := os.Stat(r.o.bin); err != nil {
		return fmt.Errorf("bodycam binary: %v (run make build, or pass -bodycam)", err)
	}
	out, err := exec.Command(r.o.bin, "version").Output()
	if err != nil {
		return fmt.Errorf("%s version: %v", r.o.bin, err)
	}
	r.version = strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		return errors.New("ffmpeg not found: it makes the cameras' clip (scripts/deps.sh installs it)")
	}
	if r.o.store == "s3" {
		if _, err := testsvc.MinIOBinary(); err != nil {
			return err
		}
	}
	return nil
}

// checkDisk refuses a run whose bytes would not fit: the cameras' files,
// and either the raw write or the server's copy (with MinIO's too on s3).
func (r *run) checkDisk() error {
	free, err := freeBytes(r.root)
	if err != nil {
		return fmt.Errorf("free space of %s: %v", r.root, err)
	}
	copies := 2.0
	if r.o.store == "s3" && r.o.minioDir == "" {
		copies = 3
	}
	need := float64(r.o.total())*copies*1.05 + 1<<30
	if need > free {
		return fmt.Errorf("the run needs about %.1f GB in %s, which has %.1f GB free: fewer or smaller files, or another -dir", need/1e9, r.root, free/1e9)
	}
	progress("disk: %s under %s (about %.1f GB needed, %.1f GB free)", orDash(r.dev), r.root, need/1e9, free/1e9)
	return nil
}

// startServer starts `bodycam serve` on loopback ports and waits until it
// answers /healthz.
func (r *run) startServer(ctx context.Context) error {
	httpPort, err := testsvc.FreePort()
	if err != nil {
		return err
	}
	rtspPort, err := testsvc.FreePort()
	if err != nil {
		return err
	}
	token := hex.EncodeToString(randBytes(24))
	tokenFile := filepath.Join(r.root, "admin-token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		return err
	}
	r.admin = api{base: fmt.Sprintf("http://127.0.0.1:%d", httpPort), token: token}
	args := []string{r.o.bin, "serve", "--data-dir", r.data,
		"--http-addr", fmt.Sprintf("127.0.0.1:%d", httpPort), "--rtsp-addr", fmt.Sprintf("127.0.0.1:%d", rtspPort), "--rtsp-udp-addr", "",
		"--webrtc-udp-addr", "127.0.0.1:0", "--webrtc-tcp-addr", "127.0.0.1:0",
		"--log-level", r.o.logLevel, "--shutdown-delay", "0", "--admin-token-file", tokenFile}
	if spool := r.o.total() + r.o.size; spool > 256<<30 {
		args = append(args, "--upload-spool-max", fmt.Sprintf("%dGiB", spool>>30+1))
	}
	if r.minio != nil {
		args = append(args, "--s3-endpoint", r.minio.Endpoint, "--s3-access-key", r.minio.AccessKey,
			"--s3-secret-key", r.minio.SecretKey, "--s3-bucket", "bench-dock")
	}
	if r.srv, err = benchutil.StartChild("bodycam serve", filepath.Join(r.root, "serve.log"), args...); err != nil {
		return err
	}
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
		if r.srv.Exited() {
			return r.srv.Failure()
		}
		if resp, err := client.Get(r.admin.base + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
	return fmt.Errorf("the server is not healthy within a minute; the end of its log:\n%s", r.srv.Tail(20))
}

// dockUser is the workstation's account.
const dockUser = "bench-workstation"

// setUp registers the cameras' devices, makes the workstation's dock user
// with its token file, and an auditor to verify with.
func (r *run) setUp(ctx context.Context) error {
	for i := 1; i <= r.o.cameras; i++ {
		if err := registerDevice(ctx, r.admin, deviceID(i)); err != nil {
			return err
		}
	}
	tok, err := dockToken(ctx, r.admin, dockUser)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(r.root, "dock.token"), []byte(tok+"\n"), 0o600); err != nil {
		return err
	}
	// Admins read no evidence: an auditor verifies.
	aud, err := userToken(ctx, r.admin, "bench-auditor", "auditor")
	if err != nil {
		return err
	}
	r.auditor = r.admin.as(aud)
	r.auditor.hc = verifyClient
	return nil
}

// sampleEvery is the sampling period during the upload: small runs last
// seconds.
const sampleEvery = 200 * time.Millisecond

func (r *run) sample() sample {
	s := sample{at: time.Now(), server: benchutil.CPUSeconds(r.srv.Pid()), serverIO: benchutil.ProcIO(r.srv.Pid()),
		serverRSS: benchutil.RSS(r.srv.Pid())}
	if r.dock != nil && !r.dock.Exited() {
		s.dock, s.dockRSS = benchutil.CPUSeconds(r.dock.Pid()), benchutil.RSS(r.dock.Pid())
	}
	if r.minio != nil {
		p := r.minio.Pid()
		s.minio, s.minioIO, s.mio = benchutil.CPUSeconds(p), benchutil.ProcIO(p), benchutil.RSS(p)
	}
	s.busy, s.total, _ = benchutil.MachineBusy()
	s.disk, s.diskOK = readDiskStats(r.dev)
	return s
}

// upload runs one `bodycam dock` process over every camera's folder until
// it exits, sampling every counter meanwhile (and profiling the server
// with -cpuprofile).
func (r *run) upload(ctx context.Context) error {
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		r.loadBefore = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	r.baseRSS = benchutil.RSS(r.srv.Pid())
	var dirs []string
	for i := 1; i <= r.o.cameras; i++ {
		dirs = append(dirs, filepath.Join(r.cams, cameraName(i)))
	}
	args := append([]string{r.o.bin, "dock", "--server", r.admin.base, "--token-file", filepath.Join(r.root, "dock.token"),
		"--state-dir", r.state, "--once", "--settle", "100ms", "--parallel", strconv.Itoa(r.o.parallel), "--chunk", r.o.chunk,
		"--timezone", "UTC", "--progress-every", "5s", "--log-level", "info"}, dirs...)
	progress("upload: one bodycam dock, %d camera folders, --parallel %d --chunk %s, to %s (store %s)",
		r.o.cameras, r.o.parallel, r.o.chunk, r.admin.base, r.o.store)
	// The child's /proc counters of the dock are read while it runs; its
	// CPU at the end comes from the last sample before it exited, so
	// sample often.
	var err error
	first := r.sample()
	r.samples = append(r.samples, first)
	r.dockStart = time.Now()
	if r.dock, err = benchutil.StartChild("bodycam dock", filepath.Join(r.root, "dock.log"), args...); err != nil {
		return err
	}
	pctx, stopProfile := context.WithCancel(ctx)
	defer stopProfile()
	var profiled sync.WaitGroup
	if r.o.cpuProfile != "" {
		profiled.Go(func() { r.profile = r.profileServer(pctx) })
	}
	lastTick := time.Now()
	for !r.dock.Exited() {
		if r.srv.Exited() {
			r.dock.Stop(10 * time.Second)
			return r.srv.Failure()
		}
		if err := sleep(ctx, sampleEvery); err != nil {
			r.dock.Stop(10 * time.Second)
			return err
		}
		s := r.sample()
		// A process's CPU only grows: a read as it exits (a zombie's
		// counters, or none) keeps the last one.
		s.dock = max(s.dock, r.samples[len(r.samples)-1].dock)
		r.samples = append(r.samples, s)
		if time.Since(lastTick) >= 10*time.Second {
			lastTick = time.Now()
			progress("  server %.0f%% of a core, dock %.0f%%, RSS %.0f MiB", r.cpuPct(func(x sample) float64 { return x.server }, 10*time.Second),
				r.cpuPct(func(x sample) float64 { return x.dock }, 10*time.Second), s.serverRSS/(1<<20))
		}
	}
	r.dockEnd = time.Now()
	// The dock's counters are gone with it: its exit status has its CPU
	// time, to the end.
	last := r.sample()
	last.dock = max(r.dock.CPUSeconds(), r.samples[len(r.samples)-1].dock)
	r.samples = append(r.samples, last)
	stopProfile()
	profiled.Wait()
	if r.o.cpuProfile != "" {
		r.profile.summarize(r.o.bin, r.o.cpuProfile)
	}
	ev, err := parseDockLog(filepath.Join(r.root, "dock.log"))
	if err != nil {
		return err
	}
	r.events = ev
	progress("upload: the dock exited (%v) after %.1f s", orOK(r.dock.Err()), r.dockEnd.Sub(r.dockStart).Seconds())
	return nil
}

// cpuPct is a process's CPU over the last d of the samples, in % of one
// core.
func (r *run) cpuPct(f func(sample) float64, d time.Duration) float64 {
	if len(r.samples) < 2 {
		return 0
	}
	b := r.samples[len(r.samples)-1]
	a := b
	for i := len(r.samples) - 1; i >= 0 && f(r.samples[i]) > 0; i-- { // 0: before the process ran
		a = r.samples[i]
		if b.at.Sub(a.at) >= d {
			break
		}
	}
	if b.at.Sub(a.at) <= 0 {
		return 0
	}
	return (f(b) - f(a)) / b.at.Sub(a.at).Seconds() * 100
}

// checkAll checks what every upload must end with: the dock done with
// every file, each receipt verified (by the dock, and here again with the
// server's published keys), one recording per file, each verifying.
func (r *run) checkAll(ctx context.Context) {
	add := func(name string, ok bool, detail string) { r.checks = append(r.checks, check{name, ok, detail}) }
	add("the server ran throughout", !r.srv.Exited(), "")
	dockErr := r.dock.Err()
	add("the dock finished every file and exited 0", dockErr == nil, errText(dockErr, r.dock))

	keys, kerr := publicKeys(ctx, r.admin)
	var bad []string
	recs := map[string]cameraFile{}
	for _, f := range r.files {
		rep, err := readReport(filepath.Join(r.state, "reports", f.camera+".json"))
		if err != nil {
			bad = append(bad, fmt.Sprintf("%s: report: %v", f.camera, err))
			continue
		}
		fr, ok := rep[f.name]
		switch {
		case !ok:
			bad = append(bad, fmt.Sprintf("%s/%s: not in the dock's report", f.camera, f.name))
			continue
		case fr.State != dock.StateUploaded || !fr.Verified:
			bad = append(bad, fmt.Sprintf("%s/%s: %s (receipt verified: %v) %s", f.camera, f.name, fr.State, fr.Verified, fr.Reason))
			continue
		case fr.SHA256 != f.sha256 || fr.Size != f.size || fr.Device != f.device:
			bad = append(bad, fmt.Sprintf("%s/%s: the dock says %s %d bytes device %s; the bench wrote %s %d bytes for %s",
				f.camera, f.name, fr.SHA256, fr.Size, fr.Device, f.sha256, f.size, f.device))
			continue
		}
		if kerr != nil {
			bad = append(bad, "public keys: "+kerr.Error())
			continue
		}
		if err := checkReceiptFile(fr.Receipt, keys, f, fr.RecordingID); err != nil {
			bad = append(bad, fmt.Sprintf("%s/%s: %v", f.camera, f.name, err))
			continue
		}
		if prev, dup := recs[fr.RecordingID]; dup {
			bad = append(bad, fmt.Sprintf("%s/%s and %s/%s: one recording %s", prev.camera, prev.name, f.camera, f.name, fr.RecordingID))
			continue
		}
		recs[fr.RecordingID] = f
	}
	add(fmt.Sprintf("every file (%d) uploaded with a signed receipt the dock verified, for the bench's SHA-256, and that verifies here with the server's published key", len(r.files)),
		len(bad) == 0 && len(recs) == len(r.files), strings.Join(bad, "; "))

	progress("verifying %d recordings as an auditor", len(recs))
	r.verify = r.verifyAll(ctx, recs)
	add(fmt.Sprintf("every recording (%d) is an upload of its file, timed from its MP4 header, and verifies (POST /api/v1/recordings/{id}/verify as an auditor)", len(recs)),
		len(r.verify.failures) == 0 && r.verify.ok == len(recs) && len(recs) == len(r.files), strings.Join(r.verify.failures, "; "))
}

// readReport reads a camera's report, by file name.
func readReport(p string) (map[string]dock.FileReport, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	var rep dock.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		return nil, err
	}
	out := map[string]dock.FileReport{}
	for _, f := range rep.Files {
		out[filepath.Base(f.Path)] = f
	}
	return out, nil
}

// checkReceiptFile checks a receipt the dock kept (receipt.json and its
// .sig) as anyone with the server's public keys can: its signature, and
// that it is about the file the bench wrote.
func checkReceiptFile(p string, keys map[string]ed25519.PublicKey, f cameraFile, recording string) error {
	if p == "" {
		return errors.New("no receipt kept")
	}
	body, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	sig, err := os.ReadFile(p + ".sig")
	if err != nil {
		return err
	}
	var unverified evidence.Receipt
	if err := json.Unmarshal(body, &unverified); err != nil {
		return fmt.Errorf("receipt %s: %v", p, err)
	}
	pub, ok := keys[unverified.SigningKeyID]
	if !ok {
		return fmt.Errorf("receipt %s: signed with key %q, which the server does not publish", p, unverified.SigningKeyID)
	}
	rc, err := evidence.VerifyReceipt(pub, body, sig)
	if err != nil {
		return fmt.Errorf("receipt %s: %v", p, err)
	}
	if rc.DeviceID != f.device || rc.FileName != f.name || rc.Size != f.size || rc.SHA256 != f.sha256 || rc.RecordingID != recording {
		return fmt.Errorf("receipt %s is for %s %s %d bytes %s recording %s", p, rc.DeviceID, rc.FileName, rc.Size, rc.SHA256, rc.RecordingID)
	}
	return nil
}

// verifyResult is the verification of every recording after the upload.
type verifyResult struct {
	ok        int
	failures  []string
	elapsed   time.Duration
	serverCPU float64 // seconds
	bytes     int64
}

// verifyAll verifies every recording as the auditor, two at a time (the
// server re-reads and re-hashes each whole file), timing it and the
// server's CPU.
func (r *run) verifyAll(ctx context.Context, recs map[string]cameraFile) verifyResult {
	var v verifyResult
	var mu sync.Mutex
	ids := make([]string, 0, len(recs))
	for id := range recs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	c0, t0 := benchutil.CPUSeconds(r.srv.Pid()), time.Now()
	sem := make(chan struct{}, 2)
	var wg sync.WaitGroup
	for _, id := range ids {
		f := recs[id]
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			err := r.verifyOne(ctx, id, f)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				v.failures = append(v.failures, fmt.Sprintf("%s (%s/%s): %v", id, f.camera, f.name, err))
				return
			}
			v.ok++
			v.bytes += f.size
		})
	}
	wg.Wait()
	v.elapsed, v.serverCPU = time.Since(t0), benchutil.CPUSeconds(r.srv.Pid())-c0
	sort.Strings(v.failures)
	return v
}

func (r *run) verifyOne(ctx context.Context, id string, f cameraFile) error {
	var rec recordingInfo
	if err := r.auditor.do(ctx, "GET", "/api/v1/recordings/"+id, "", http.StatusOK, &rec); err != nil {
		return err
	}
	switch {
	case rec.Kind != "upload" || rec.DeviceID != f.device || rec.State != "complete":
		return fmt.Errorf("recording is %s of %s, %s", rec.Kind, rec.DeviceID, rec.State)
	case rec.Origin == nil || rec.Origin.SHA256 != f.sha256 || rec.Origin.Size != f.size || rec.Origin.FileName != f.name:
		return fmt.Errorf("its origin is not the file: %+v", rec.Origin)
	case rec.Origin.TimeSource != "file" || !rec.StartedAt.Equal(f.recorded):
		// The server read the MP4's movie header: the file is what a
		// recorder writes, not just bytes.
		return fmt.Errorf("started %v (time from %s), the file's movie header says %v", rec.StartedAt, rec.Origin.TimeSource, f.recorded)
	}
	var v verification
	if err := r.auditor.do(ctx, "POST", "/api/v1/recordings/"+id+"/verify", "", http.StatusOK, &v); err != nil {
		return err
	}
	if !v.OK {
		return fmt.Errorf("does not verify: %s", v.Reason)
	}
	return nil
}

func errText(err error, c *benchutil.Child) string {
	if err == nil {
		return ""
	}
	return fmt.Sprintf("%v; the end of its log:\n%s", err, c.Tail(15))
}

func orOK(err error) string {
	if err == nil {
		return "exit 0"
	}
	return err.Error()
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}
