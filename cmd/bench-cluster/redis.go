package main

// Reading Redis's own counters over a bare RESP connection: the bench
// counts commands, it does not coordinate anything (go-redis stays inside
// coord/).

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"
)

// redisInfo sends one INFO command (section "all": stats, cpu and
// commandstats in one reply, so the bench adds exactly one command to what
// it counts) and returns its fields.
func redisInfo(addr string) (map[string]string, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "INFO all\r\n"); err != nil {
		return nil, err
	}
	return readInfo(bufio.NewReader(c))
}

// readInfo reads INFO's reply, a bulk string of "key:value" lines.
func readInfo(r *bufio.Reader) (map[string]string, error) {
	head, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	head = strings.TrimRight(head, "\r\n")
	if !strings.HasPrefix(head, "$") {
		return nil, fmt.Errorf("INFO: %q", head)
	}
	n, err := strconv.Atoi(head[1:])
	if err != nil || n < 0 {
		return nil, fmt.Errorf("INFO: %q", head)
	}
	body := make([]byte, n+2)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, line := range strings.Split(string(body[:n]), "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && !strings.HasPrefix(line, "#") {
			out[k] = v
		}
	}
	return out, nil
}

// infoFloat reads a numeric INFO field (0 when missing).
func infoFloat(info map[string]string, key string) float64 {
	v, _ := strconv.ParseFloat(info[key], 64)
	return v
}

// commandCalls reads commandstats: command -> calls.
func commandCalls(info map[string]string) map[string]float64 {
	out := map[string]float64{}
	for k, v := range info {
		name, ok := strings.CutPrefix(k, "cmdstat_")
		if !ok {
			continue
		}
		for _, f := range strings.Split(v, ",") {
			if n, ok := strings.CutPrefix(f, "calls="); ok {
				out[name], _ = strconv.ParseFloat(n, 64)
			}
		}
	}
	return out
}

// topCommands is what each command gained from before to after, most
// first, as "name rate/s", leaving out the bench's own INFO.
func topCommands(before, after map[string]string, seconds float64, limit int) string {
	b, a := commandCalls(before), commandCalls(after)
	type kv struct {
		name string
		n    float64
	}
	var all []kv
	for name, n := range a {
		if d := n - b[name]; d > 0 {
			if name == "info" {
				d-- // the first sample's own INFO
			}
			if d > 0 {
				all = append(all, kv{name, d})
			}
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].n > all[j].n || all[i].n == all[j].n && all[i].name < all[j].name })
	var parts []string
	for i, c := range all {
		if i == limit {
			break
		}
		parts = append(parts, fmt.Sprintf("%s %.2f/s", c.name, c.n/seconds))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}
