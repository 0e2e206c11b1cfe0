package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bodycam/bodycam/internal/testsvc"
)

// makeRun is `make run` (the README's first command) on free loopback
// ports and a data directory of its own, its output collected.
type makeRun struct {
	t   *testing.T
	cmd *exec.Cmd
	// marks are in the command line of whatever it starts: the data
	// directory (server, simulator) and the RTSP address (ffmpeg).
	marks []string
	mu    sync.Mutex
	out   strings.Builder
	done  chan error
}

// evenUDPPort is a free even UDP port whose next one is free too (RTP and
// RTCP).
func evenUDPPort(t *testing.T) int {
	t.Helper()
	for range 100 {
		a, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := a.LocalAddr().(*net.UDPAddr).Port
		a.Close()
		if p%2 != 0 || p >= 65535 {
			continue
		}
		b, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(p+1))
		if err == nil {
			b.Close()
			return p
		}
	}
	t.Fatal("no free even UDP port")
	return 0
}

func startMakeRun(t *testing.T, env ...string) *makeRun {
	t.Helper()
	port := func() string {
		p, err := testsvc.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		return "127.0.0.1:" + strconv.Itoa(p)
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("make", "--no-print-directory", "-C", root, "run")
	data, rtsp := t.TempDir(), port()
	cmd.Env = append(os.Environ(), "BODYCAM_DATA_DIR="+data, "BODYCAM_HTTP_ADDR="+port(), "BODYCAM_RTSP_ADDR="+rtsp,
		"BODYCAM_RTSP_UDP_ADDR=127.0.0.1:"+strconv.Itoa(evenUDPPort(t)), "BODYCAM_WEBRTC_UDP_ADDR="+port(),
		"BODYCAM_WEBRTC_TCP_ADDR="+port(), "BODYCAM_SPOOL_MIN_FREE=1MiB")
	cmd.Env = append(cmd.Env, env...)
	m := &makeRun{t: t, cmd: cmd, done: make(chan error, 1), marks: []string{data, rtsp}}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			m.mu.Lock()
			m.out.WriteString(sc.Text() + "\n")
			m.mu.Unlock()
		}
	}()
	go func() { m.done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		for _, p := range m.leftovers() {
			syscall.Kill(p.pid, syscall.SIGKILL)
		}
	})
	return m
}

func (m *makeRun) output() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.out.String()
}

// waitFor waits until the output holds s, failing if make ends first.
func (m *makeRun) waitFor(s string, within time.Duration) {
	m.t.Helper()
	deadline := time.Now().Add(within)
	for !strings.Contains(m.output(), s) {
		select {
		case err := <-m.done:
			m.t.Fatalf("make run ended (%v) before %q:\n%s", err, s, m.output())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("no %q within %v:\n%s", s, within, m.output())
		}
	}
}

type proc struct {
	pid     int
	cmdline string
}

// leftovers lists the running processes (not zombies) whose command line
// holds one of the run's marks: what it started, wherever they were
// reparented.
func (m *makeRun) leftovers() []proc {
	var out []proc
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(stat) // pid (comm) state ...: comm may hold spaces and parentheses
		if f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:]); len(f) == 0 || f[0] == "Z" {
			continue
		}
		b, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		cmdline := strings.ReplaceAll(string(b), "\x00", " ")
		for _, mark := range m.marks {
			if strings.Contains(cmdline, mark) {
				out = append(out, proc{pid, cmdline})
				break
			}
		}
	}
	return out
}

func (m *makeRun) describe(ps []proc) string {
	var lines []string
	for _, p := range ps {
		lines = append(lines, fmt.Sprintf("%d %s", p.pid, p.cmdline))
	}
	return strings.Join(lines, "\n")
}

// `make run` stopped by a signal (a service manager, a CI job, `kill`, the
// OOM killer), not Ctrl-C in a terminal, stops everything it started: the
// server, the simulator and its ffmpeg (issue 12: they were left running as
// orphans). SIGTERM while it is still starting, and SIGKILL to make (which
// cannot pass anything on) once it records.
func TestMakeRunStopsWhatItStarted(t *testing.T) {
	for _, c := range []struct {
		name  string
		after string
		sig   syscall.Signal
		want  []string
	}{
		{"SIGTERM while starting", "bodycam serving", syscall.SIGTERM, []string{"bodycam serve"}},
		{"SIGKILL once recording", "bodycam is recording", syscall.SIGKILL, []string{"bodycam serve", "bodycam simulate", "ffmpeg"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := startMakeRun(t)
			m.waitFor(c.after, 3*time.Minute)
			all := m.describe(m.leftovers())
			for _, want := range c.want {
				if !strings.Contains(all, want) {
					t.Fatalf("no %s under make run:\n%s", want, all)
				}
			}
			m.cmd.Process.Signal(c.sig) // to make alone
			deadline := time.Now().Add(45 * time.Second)
			for len(m.leftovers()) > 0 && time.Now().Before(deadline) {
				time.Sleep(200 * time.Millisecond)
			}
			if left := m.leftovers(); len(left) > 0 {
				t.Fatalf("left running after make was sent %v:\n%s\n%s", c.sig, m.describe(left), m.output())
			}
			if !strings.Contains(m.output(), "bodycam stopped") {
				t.Fatalf("the server did not stop in order:\n%s", m.output())
			}
		})
	}
}

// When the server cannot start, `make run` says why with the server's own
// error and stops at once: no simulator, no "recording" (issue 12: it
// started the simulator anyway and said it was recording).
func TestMakeRunFailsFast(t *testing.T) {
	busy, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	m := startMakeRun(t, "BODYCAM_WEBRTC_UDP_ADDR="+busy.LocalAddr().String())
	select {
	case err := <-m.done:
		out := m.output()
		if err == nil || !strings.Contains(out, "webrtc-udp-addr") || !strings.Contains(out, "address already in use") ||
			!strings.Contains(out, "bodycam serve exited with code 1") || strings.Contains(out, "is recording") || strings.Contains(out, "publishing") {
			t.Fatalf("make run with the WebRTC port taken: %v\n%s", err, out)
		}
	case <-time.After(2 * time.Minute):
		t.Fatalf("make run did not stop when the server could not start:\n%s", m.output())
	}
	if left := m.leftovers(); len(left) > 0 {
		t.Fatalf("left running:\n%s", m.describe(left))
	}
}
