// Package benchutil holds what the load benchmarks (cmd/bench-ingest,
// cmd/bench-live, cmd/bench-cluster, cmd/bench-soak, cmd/bench-dock) measure
// with: a process's CPU time, resident memory and storage I/O, the
// machine's CPU, and the server's Prometheus metrics.
package benchutil

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// CPUSeconds reads a process's user+system CPU time.
func CPUSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b)[strings.LastIndex(string(b), ")")+2:])
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ
}

// RSS reads a process's resident set size in bytes.
func RSS(pid int) float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb * 1024
		}
	}
	return 0
}

// MachineBusy reads the machine's busy and total CPU time (in ticks) and
// its number of CPUs.
func MachineBusy() (busy, total float64, cpus int) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 1, 1
	}
	lines := strings.Split(string(b), "\n")
	for _, l := range lines[1:] {
		if len(l) > 3 && strings.HasPrefix(l, "cpu") && l[3] >= '0' && l[3] <= '9' {
			cpus++
		}
	}
	f := strings.Fields(lines[0])[1:]
	if len(f) > 8 {
		f = f[:8] // guest and guest_nice are already counted in user and nice
	}
	var idle float64
	for i, v := range f {
		x, _ := strconv.ParseFloat(v, 64)
		total += x
		if i == 3 || i == 4 { // idle, iowait
			idle += x
		}
	}
	return total - idle, total, max(cpus, 1)
}

var client = &http.Client{Timeout: 10 * time.Second}

// Scrape reads a Prometheus text page into name{labels} -> value.
func Scrape(url string) (map[string]float64, error) {
	resp, err := client.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndex(line, " ")
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			out[line[:i]] = v
		}
	}
	return out, sc.Err()
}

// IO is a process's storage counters from /proc/<pid>/io: bytes it read
// from and wrote to the storage layer (page-cache hits are not reads;
// writes count when dirtied, and CancelledWrite is what was truncated or
// deleted before it reached the disk).
type IO struct {
	ReadBytes, WriteBytes, CancelledWrite float64
}

// ProcIO reads a process's storage counters (zero when they cannot be read).
func ProcIO(pid int) IO {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return IO{}
	}
	var io IO
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
		switch k {
		case "read_bytes":
			io.ReadBytes = n
		case "write_bytes":
			io.WriteBytes = n
		case "cancelled_write_bytes":
			io.CancelledWrite = n
		}
	}
	return io
}
