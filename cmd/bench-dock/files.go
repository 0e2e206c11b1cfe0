package main

// The docked cameras' files: what a recorder writes, made fast. The server
// takes any bytes as an original (it checks the metadata and the SHA-256,
// never the content) and reads only an MP4's movie header (mvhd: when it
// was recorded, how long); so each file is a real short MP4 made by ffmpeg
// with its own creation time, followed by one top-level `free` box of
// random bytes up to the size. Players and the server's probe skip a free
// box; every byte still goes through the whole upload path (hashed by the
// dock, sent, checksummed, spooled, hashed whole, stored, verified). Random,
// and different in every file: nothing on the way (the disk, MinIO) gets
// an easier time from repeated or compressible bytes.

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"
)

// minSize is the smallest -size: the clip (a few hundred kB) and a box.
const minSize = 1 << 20

// cameraFile is one file of one docked camera, as generated.
type cameraFile struct {
	camera, device string
	dir, name      string // the camera's folder, the file's name in it
	size           int64
	sha256         string
	recorded       time.Time // the MP4's creation time (and the name's)
}

// deviceID is camera i's device (from 1).
func deviceID(i int) string { return fmt.Sprintf("dockbench-%02d", i) }

// cameraName is camera i's folder name, which the dock names it after.
func cameraName(i int) string { return fmt.Sprintf("cam%02d", i) }

// makeClip encodes the short MP4 every file starts with: 2 s of 640x360
// H.264 and AAC, its movie header first (faststart).
func makeClip(ctx context.Context, dir string) (string, error) {
	p := filepath.Join(dir, "clip.mp4")
	cmd := exec.CommandContext(ctx, "ffmpeg", "-v", "error", "-nostdin", "-y",
		"-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30", "-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=48000",
		"-t", "2", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "30",
		"-c:a", "aac", "-b:a", "64k", "-movflags", "+faststart", p)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("ffmpeg (the cameras' clip): %v: %s", err, out)
	}
	return p, nil
}

// stamped is the clip remuxed (stream copy) with its creation time set to
// at: each file says when it was recorded, as a recorder's does.
func stamped(ctx context.Context, clip, dir string, at time.Time) ([]byte, error) {
	f, err := os.CreateTemp(dir, "stamped-*.mp4")
	if err != nil {
		return nil, err
	}
	f.Close()
	defer os.Remove(f.Name())
	cmd := exec.CommandContext(ctx, "ffmpeg", "-v", "error", "-nostdin", "-y", "-i", clip, "-map", "0", "-c", "copy",
		"-metadata", "creation_time="+at.UTC().Format("2006-01-02T15:04:05.000000Z"), "-movflags", "+faststart", "-f", "mp4", f.Name())
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ffmpeg (stamping the clip): %v: %s", err, out)
	}
	return os.ReadFile(f.Name())
}

// freeBoxHeader is the header of a top-level `free` box of n bytes in all
// (header included): a 32-bit size, or size 1 and a 64-bit one above 4 GiB.
func freeBoxHeader(n int64) []byte {
	if n < 1<<32 {
		h := make([]byte, 8)
		binary.BigEndian.PutUint32(h, uint32(n))
		copy(h[4:], "free")
		return h
	}
	h := make([]byte, 16)
	binary.BigEndian.PutUint32(h, 1)
	copy(h[4:], "free")
	binary.BigEndian.PutUint64(h[8:], uint64(n))
	return h
}

// makeCameras writes every camera's folder and files under root and
// returns the files with their SHA-256 (computed as they are written: the
// bench's own idea of each file, checked against the receipts). Files are
// fsync'd, so that their write-back is not measured as the upload's.
func makeCameras(ctx context.Context, o options, root string) ([]cameraFile, error) {
	clip, err := makeClip(ctx, root)
	if err != nil {
		return nil, err
	}
	defer os.Remove(clip)
	base := time.Now().UTC().Add(-24 * time.Hour).Truncate(time.Hour)
	var files []cameraFile
	var heads [][]byte
	for i := 1; i <= o.cameras; i++ {
		dir := filepath.Join(root, cameraName(i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		for j := range o.files {
			at := base.Add(time.Duration(i)*time.Minute + time.Duration(j)*10*time.Minute)
			head, err := stamped(ctx, clip, root, at)
			if err != nil {
				return nil, err
			}
			if int64(len(head))+16 > o.size {
				return nil, fmt.Errorf("-size %d is smaller than the clip (%d bytes) and its padding box", o.size, len(head))
			}
			files = append(files, cameraFile{camera: cameraName(i), device: deviceID(i), dir: dir, size: o.size, recorded: at,
				name: fmt.Sprintf("%s_%s_%04d.MP4", deviceID(i), at.Format("20060102150405"), j+1)})
			heads = append(heads, head)
		}
	}
	// A few writers at once: the disk is the limit, and the machine has
	// other work.
	sem := make(chan struct{}, 4)
	errs := make([]error, len(files))
	var wg sync.WaitGroup
	for k := range files {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			files[k].sha256, errs[k] = writeCameraFile(ctx, filepath.Join(files[k].dir, files[k].name), heads[k], files[k].size)
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return files, nil
}

// writeCameraFile writes head, then a free box of random bytes up to size,
// fsyncs the file and returns its SHA-256.
func writeCameraFile(ctx context.Context, path string, head []byte, size int64) (string, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	w := func(b []byte) error {
		h.Write(b)
		_, err := f.Write(b)
		return err
	}
	box := freeBoxHeader(size - int64(len(head)))
	if err := w(head); err != nil {
		return "", err
	}
	if err := w(box); err != nil {
		return "", err
	}
	if err := writeRandom(ctx, w, size-int64(len(head))-int64(len(box))); err != nil {
		return "", err
	}
	if err := f.Sync(); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), f.Close()
}

// writeRandom hands n pseudo-random bytes (ChaCha8, seeded from the
// system's generator: different in every call) to w in 4 MiB blocks.
func writeRandom(ctx context.Context, w func([]byte) error, n int64) error {
	var seed [32]byte
	rand.Read(seed[:])
	src := mrand.NewChaCha8(seed)
	buf := make([]byte, 4<<20)
	for n > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		b := buf[:min(int64(len(buf)), n)]
		src.Read(b)
		if err := w(b); err != nil {
			return err
		}
		n -= int64(len(b))
	}
	return nil
}
