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
	top    string // go tool pprof -top
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
	p.shares, p.total = classify(parseTraces(bytes.NewReader(traces)))
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
		switch {
		case any("Fsync", "Fdatasync", "(*File).Sync"):
			return "system calls: fsync"
		case any("copy_file_range", "splice", "sendfile", "(*File).ReadFrom", "(*File).WriteTo", "(*TCPConn).ReadFrom"):
			return "system calls: kernel copies (copy_file_range, splice, sendfile)"
		case any("net.(*conn).Read", "net.(*netFD).Read"):
			return "system calls: network reads"
		case any("net.(*conn).Write", "net.(*netFD).Write", "net.(*Buffers)", "writev"):
			return "system calls: network writes"
		case any("os.(*File).Read", "os.(*File).pread", "os.(*File).ReadAt"):
			return "system calls: file reads"
		case any("os.(*File).Write", "os.(*File).pwrite", "os.(*File).WriteAt"):
			return "system calls: file writes"
		case any("runtime.futex", "runtime.usleep", "runtime.epoll", "runtime.netpoll"):
			return "Go runtime: scheduler (futex, netpoll)"
		}
		return "system calls: other (open, stat, rename, …)"
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
