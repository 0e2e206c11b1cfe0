package main

// Measuring helpers of this benchmark: UDP losses. Process and machine CPU,
// memory, scraping and histograms are in internal/benchutil.

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// udpErrors reads the machine's count of UDP datagrams dropped on receipt
// because a socket's receive buffer was full (RcvbufErrors in
// /proc/net/snmp). On loopback that is where "network" loss happens: a
// receiver (here, a viewer) that did not read in time.
func udpErrors() float64 {
	b, err := os.ReadFile("/proc/net/snmp")
	if err != nil {
		return 0
	}
	var names []string
	for _, l := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(l, "Udp: ")
		if !ok {
			continue
		}
		if names == nil {
			names = strings.Fields(rest)
			continue
		}
		for i, v := range strings.Fields(rest) {
			if i < len(names) && names[i] == "RcvbufErrors" {
				n, _ := strconv.ParseFloat(v, 64)
				return n
			}
		}
	}
	return 0
}

// udpSocketDrops sums the receive-buffer drops of the UDP sockets a
// process holds (the drops column of /proc/net/udp{,6}, matched to the
// process's socket inodes), so that loss can be told apart: the viewers'
// sockets (they did not read in time) or the server's (RTCP from viewers).
// Counts of sockets closed since are lost, so take both ends of a window
// while the same sockets are open.
func udpSocketDrops(pid int) float64 {
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return 0
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if inode, ok := strings.CutPrefix(target, "socket:["); ok && err == nil {
			inodes[strings.TrimSuffix(inode, "]")] = true
		}
	}
	var drops float64
	for _, table := range []string{"/proc/net/udp", "/proc/net/udp6"} {
		b, err := os.ReadFile(table)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(l)
			if len(f) >= 13 && inodes[f[9]] {
				n, _ := strconv.ParseFloat(f[12], 64)
				drops += n
			}
		}
	}
	return drops
}
