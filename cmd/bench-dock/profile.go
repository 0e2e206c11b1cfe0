package main

// Where the server's CPU goes during the upload: its CPU profile, taken
// from its pprof endpoint (admin only) in windows back to back while the
// dock runs, merged into one file, and read by `go tool pprof` into shares
// (SHA-256, system calls by kind, memory copies, GC, ...).

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// profileWindow is one profile request's length: short, as a small run
// lasts seconds, and the last window outlives the upload by at most this.
const profileWindow = 5 * time.Second

// profileResult is the server's CPU profile over the upload.
type profileResult struct {
	parts  []string // the windows' profiles
	err    error    // taking them
	path   string   // the merged profile (-cpuprofile)
	note   string   // what could not be done, and what to run instead
	total  time.Duration
	shares []share
	sha256 []share // SHA-256 by the bodycam function that asked for it
	top    string  // go tool pprof -top
}

type share struct {
	name string
	d    time.Duration
}

// profileServer takes the server's CPU profile in windows until ctx ends
// (the dock exited). A window in progress is let finish: the upload's last
// moments (the last files hashed whole and stored) are in it.
func (r *run) profileServer(ctx context.Context) profileResult {
	var p profileResult
	hc := &http.Client{Timeout: profileWindow + time.Minute}
	for i := 1; ctx.Err() == nil; i++ {
		part := filepath.Join(r.root, fmt.Sprintf("cpu-%03d.pprof", i))
		if err := fetchProfile(hc, r.admin, part); err != nil {
			p.err = err
			break
		}
		p.parts = append(p.parts, part)
	}
	return p
}

// fetchProfile saves one window of the server's CPU profile.
func fetchProfile(hc *http.Client, admin api, path string) error {
	req, _ := http.NewRequest("GET", fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", admin.base, int(profileWindow.Seconds())), nil)
	req.Header.Set("Authorization", "Bearer "+admin.token)
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("GET /debug/pprof/profile: %s: %s", resp.Status, bytes.TrimSpace(b))
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// goTool finds the go command, which reads profiles.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/local/go/bin/go"); err == nil {
		return "/usr/local/go/bin/go"
	}
	return ""
}

// summarize merges the windows into out and reads the shares.
func (p *profileResult) summarize(bin, out string) {
	if p.err != nil && len(p.parts) == 0 {
		p.note = "no profile: " + p.err.Error()
		return
	}
	gt := goTool()
	if gt == "" {
		// Without Go, the windows are kept as they are: go tool pprof
		// merges them when given all.
		for i, part := range p.parts {
			os.Rename(part, fmt.Sprintf("%s.%d", out, i+1))
		}
		p.note = fmt.Sprintf("Go is not installed here: the %d windows are %s.1 … .%d (`go tool pprof -top %s %s.*` merges them)", len(p.parts), out, len(p.parts), bin, out)
		return
	}
	merged, err := exec.Command(gt, append([]string{"tool", "pprof", "-proto"}, p.parts...)...).Output()
	if err != nil {
		p.note = "merging the profiles: " + exitText(err)
		return
	}
	if err := os.WriteFile(out, merged, 0o644); err != nil {
		p.note = err.Error()
		return
	}
	p.path = out
	traces, err := exec.Command(gt, "tool", "pprof", "-traces", bin, out).Output()
	if err != nil {
		p.note = "reading the profile: " + exitText(err)
		return
	}
	ts := parseTraces(bytes.NewReader(traces))
	p.shares, p.total = classify(ts)
	p.sha256 = hashCallers(ts)
	if top, err := exec.Command(gt, "tool", "pprof", "-top", "-nodecount", "15", bin, out).Output(); err == nil {
		p.top = topLines(string(top))
	}
}

func exitText(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return fmt.Sprintf("%v: %s", err, bytes.TrimSpace(ee.Stderr))
	}
	return err.Error()
}

// topLines keeps pprof -top's table (and its "Showing nodes" line).
func topLines(s string) string {
	var keep []string
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		if strings.HasPrefix(l, "File:") || strings.HasPrefix(l, "Build ID:") || strings.HasPrefix(l, "Type:") || strings.HasPrefix(l, "Time:") {
			continue
		}
		keep = append(keep, l)
	}
	return strings.Join(keep, "\n")
}

// trace is one stack of the profile (leaf first) and its CPU time.
type trace struct {
	d      time.Duration
	frames []string
}

var traceValue = regexp.MustCompile(`^\s*([0-9.]+(?:ns|us|µs|ms|s|m|h))\s+(\S.*)$`)

// parseTraces reads `go tool pprof -traces`: blocks between dashed lines,
// the first line of each with the time and the leaf, then its callers.
func parseTraces(r io.Reader) []trace {
	var out []trace
	var cur *trace
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "-----------+") {
			cur = nil
			continue
		}
		if cur == nil {
			m := traceValue.FindStringSubmatch(l)
			if m == nil {
				continue
			}
			d, err := time.ParseDuration(m[1])
			if err != nil {
				continue
			}
			out = append(out, trace{d: d, frames: []string{fn(m[2])}})
			cur = &out[len(out)-1]
			continue
		}
		if f := strings.TrimSpace(l); f != "" && !strings.Contains(f, ":[") { // label lines are key:[values]
			cur.frames = append(cur.frames, fn(f))
		}
	}
	return out
}

func fn(s string) string { return strings.TrimSuffix(strings.TrimSpace(s), " (inline)") }

// classify sums the traces into what the CPU did, largest first.
func classify(ts []trace) ([]share, time.Duration) {
	sums := map[string]time.Duration{}
	var total time.Duration
	for _, t := range ts {
		sums[category(t.frames)] += t.d
		total += t.d
	}
	var out []share
	for k, v := range sums {
		out = append(out, share{k, v})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].d != out[j].d {
			return out[i].d > out[j].d
		}
		return out[i].name < out[j].name
	})
	return out, total
}

// hashCallers sums the SHA-256 stacks by the nearest bodycam function
// (or the tus library's) that hashed: which passes over the bytes the
// server makes.
func hashCallers(ts []trace) []share {
	sums := map[string]time.Duration{}
	for _, t := range ts {
		if category(t.frames) != "SHA-256" {
			continue
		}
		by := "elsewhere"
		for _, f := range t.frames {
			if strings.HasPrefix(f, "github.com/bodycam/bodycam/") || strings.HasPrefix(f, "github.com/tus/") {
				by = strings.TrimPrefix(f, "github.com/bodycam/bodycam/")
				break
			}
		}
		sums[by] += t.d
	}
	var out []share
	for k, v := range sums {
		out = append(out, share{k, v})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].d != out[j].d {
			return out[i].d > out[j].d
		}
		return out[i].name < out[j].name
	})
	return out
}

// category names what a stack (leaf first) spent its time on. The first
// rule that matches wins: the profiler's own work, hashing wherever it is
// called from, the garbage collector, the catalog, then system calls by
// what made them, then copies.
func category(frames []string) string {
	any := func(subs ...string) bool {
		for _, f := range frames {
			for _, s := range subs {
				if strings.Contains(f, s) {
					return true
				}
			}
		}
		return false
	}
	leaf := ""
	if len(frames) > 0 {
		leaf = frames[0]
	}
	switch {
	case any("runtime/pprof."):
		return "the profiler itself"
	case any("crypto/sha256", "crypto/internal/fips140/sha256"):
		return "SHA-256"
	case any("crypto/md5", "hash/crc32", "crypto/sha1", "crypto/internal/fips140/sha1", "hash/crc64"):
		return "other hashes (MD5, SHA-1, CRC)"
	case any("runtime.gcBgMarkWorker", "runtime.gcDrain", "runtime.markroot", "runtime.scanobject", "runtime.bgsweep", "runtime.bgscavenge"):
		return "Go runtime: garbage collection"
	case any("modernc.org/sqlite", "github.com/jackc/pgx"):
		return "catalog (SQL)"
	case isSyscall(frames):
		return syscallCategory(frames)
	case strings.HasPrefix(leaf, "runtime.memmove") || strings.HasPrefix(leaf, "runtime.memclr"):
		return "memory copies (memmove, memclr)"
	case strings.HasPrefix(leaf, "runtime.") && any("runtime.mallocgc"):
		return "Go runtime: allocation"
	case strings.HasPrefix(leaf, "runtime."):
		return "Go runtime: scheduler and other"
	}
	return "other"
}

// isSyscall: the stack is in a system call (its CPU is the kernel's work
// for it: copying, file system, TCP).
func isSyscall(frames []string) bool {
	for i, f := range frames {
		if i > 3 {
			break
		}
		if strings.HasPrefix(f, "syscall.") || strings.HasPrefix(f, "internal/runtime/syscall.") || strings.HasPrefix(f, "internal/syscall/unix.") ||
			strings.HasPrefix(f, "runtime.futex") || strings.HasPrefix(f, "runtime.epollwait") || strings.HasPrefix(f, "runtime.usleep") {
			return true
		}
	}
	return false
}

// syscallCategory names a system call by what it was (the first syscall
// frame from the leaf) and on what (the nearest os.File or network
// connection above it): a spooled file read to be sent to MinIO is a file
// read, its send a network write.
func syscallCategory(frames []string) string {
	op := ""
	for _, f := range frames {
		switch {
		case strings.HasPrefix(f, "runtime.futex") || strings.HasPrefix(f, "runtime.usleep") || strings.HasPrefix(f, "runtime.epollwait"):
			return "Go runtime: scheduler (futex, netpoll)"
		case f == "syscall.read" || f == "syscall.Read" || f == "syscall.pread" || f == "syscall.Pread" || f == "syscall.readv":
			op = "reads"
		case f == "syscall.write" || f == "syscall.Write" || f == "syscall.pwrite" || f == "syscall.Pwrite" || f == "syscall.writev":
			op = "writes"
		case f == "syscall.Fsync" || f == "syscall.Fdatasync":
			return "system calls: fsync"
		case strings.Contains(f, "copy_file_range") || strings.Contains(f, "sendfile") || strings.Contains(f, "splice"):
			return "system calls: in-kernel copies (copy_file_range, sendfile, splice)"
		}
		if op != "" {
			break
		}
	}
	if op == "" {
		return "system calls: other (open, stat, rename, unlink, …)"
	}
	for _, f := range frames {
		switch {
		case strings.HasPrefix(f, "os.(*File)."):
			return "system calls: file " + op
		case strings.HasPrefix(f, "net.(*netFD).") || strings.HasPrefix(f, "net.(*conn)."):
			return "system calls: network " + op
		}
	}
	return "system calls: other " + op
}
