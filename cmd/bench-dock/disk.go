package main

// The disk under the bench's directory: which block device it is, its
// counters (/proc/diskstats), and what it takes when written plainly.

import (
	"bufio"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// diskStats are one block device's cumulative counters.
type diskStats struct {
	readBytes, writeBytes float64
	busyMS                float64 // time with I/O in flight (io_ticks)
}

// blockDevice names the block device (as /proc/diskstats does) holding
// path: from the file system's device number, else from the mount table
// (file systems with anonymous device numbers). "" when neither says.
func blockDevice(path string) string {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return ""
	}
	dev := uint64(st.Dev)
	major := (dev>>8)&0xfff | (dev>>32)&^0xfff
	minor := dev&0xff | (dev>>12)&^0xff
	if b, err := os.ReadFile(fmt.Sprintf("/sys/dev/block/%d:%d/uevent", major, minor)); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "DEVNAME="); ok {
				return v
			}
		}
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return ""
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	best, name := -1, ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		a, b := strings.Fields(pre), strings.Fields(post)
		if !ok || len(a) < 5 || len(b) < 2 {
			continue
		}
		mp := a[4]
		if (abs == mp || strings.HasPrefix(abs, strings.TrimSuffix(mp, "/")+"/")) && len(mp) > best {
			best, name = len(mp), ""
			if src := b[1]; strings.HasPrefix(src, "/dev/") {
				if r, err := filepath.EvalSymlinks(src); err == nil {
					src = r
				}
				name = filepath.Base(src)
			}
		}
	}
	return name
}

// readDiskStats reads a device's counters; ok false when it is not listed.
func readDiskStats(dev string) (diskStats, bool) {
	if dev == "" {
		return diskStats{}, false
	}
	b, err := os.ReadFile("/proc/diskstats")
	if err != nil {
		return diskStats{}, false
	}
	return parseDiskStats(string(b), dev)
}

// parseDiskStats finds a device's line in /proc/diskstats.
func parseDiskStats(s, dev string) (diskStats, bool) {
	for _, l := range strings.Split(s, "\n") {
		f := strings.Fields(l)
		if len(f) < 14 || f[2] != dev {
			continue
		}
		n := func(i int) float64 { v, _ := strconv.ParseFloat(f[i], 64); return v }
		// Sectors are 512 bytes here whatever the device's own.
		return diskStats{readBytes: n(5) * 512, writeBytes: n(9) * 512, busyMS: n(12)}, true
	}
	return diskStats{}, false
}

func (d diskStats) sub(e diskStats) diskStats {
	return diskStats{readBytes: d.readBytes - e.readBytes, writeBytes: d.writeBytes - e.writeBytes, busyMS: d.busyMS - e.busyMS}
}

// rawResult is the plain write of the upload's bytes.
type rawResult struct {
	bytes   int64
	elapsed time.Duration
	disk    diskStats // the device's counters over it
	diskOK  bool
}

func (r rawResult) mbps() float64 { return float64(r.bytes) / r.elapsed.Seconds() / 1e6 }

// rawWrite writes what the cameras hold to dir as dd would (writers
// streams of per bytes each, 4 MiB blocks, fdatasync at the end), times it
// until every byte is on the disk, and removes the files.
func rawWrite(ctx context.Context, dir, dev string, writers int, per int64) (rawResult, error) {
	r := rawResult{bytes: int64(writers) * per}
	names := make([]string, writers)
	defer func() {
		for _, n := range names {
			if n != "" {
				os.Remove(n)
			}
		}
		syncDir(dir)
	}()
	d0, ok0 := readDiskStats(dev)
	t0 := time.Now()
	errs := make([]error, writers)
	var wg sync.WaitGroup
	for i := range writers {
		names[i] = filepath.Join(dir, fmt.Sprintf("raw-write-%02d", i))
		wg.Go(func() { errs[i] = ddWrite(ctx, names[i], per) })
	}
	wg.Wait()
	r.elapsed = time.Since(t0)
	d1, ok1 := readDiskStats(dev)
	r.disk, r.diskOK = d1.sub(d0), ok0 && ok1
	for _, err := range errs {
		if err != nil {
			return r, fmt.Errorf("raw write: %w", err)
		}
	}
	return r, nil
}

// ddWrite writes n bytes of a random 16 MiB block, over and over, to a
// new file in 4 MiB writes and fdatasyncs it (dd bs=4M conv=fdatasync).
func ddWrite(ctx context.Context, name string, n int64) error {
	f, err := os.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	block := make([]byte, 16<<20)
	rand.Read(block)
	const bs = 4 << 20
	for off := int64(0); off < n; off += bs {
		if err := ctx.Err(); err != nil {
			return err
		}
		p := (off % int64(len(block)))
		if _, err := f.Write(block[p : p+min(bs, n-off)]); err != nil {
			return err
		}
	}
	if err := syscall.Fdatasync(int(f.Fd())); err != nil {
		return err
	}
	return f.Close()
}

// syncDir fsyncs a directory (its entries' removals).
func syncDir(dir string) {
	if f, err := os.Open(dir); err == nil {
		f.Sync()
		f.Close()
	}
}

// freeBytes is the space free to unprivileged users under dir.
func freeBytes(dir string) (float64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return float64(st.Bavail) * float64(st.Bsize), nil
}
