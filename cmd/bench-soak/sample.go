package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/bodycam/bodycam/internal/benchutil"
)

// sample is the state at one sampling instant; rates and CPU are over the
// interval that ends at it.
type sample struct {
	at       time.Duration // since the soak's start (every recorder live, every viewer with a picture)
	interval float64       // seconds since the previous sample

	rss, heap  float64 // the server's VmRSS; go_memstats_heap_inuse_bytes
	goroutines float64 // go_goroutines
	openFiles  float64 // entries of /proc/<pid>/fd
	spoolBytes float64 // allocated on disk (du) by the spool directory, mean over the interval
	spoolMax   float64 // the most in the interval
	spoolFiles float64 // files in the spool, the most in the interval
	cpu        float64 // the server's, % of one core
	segments   float64 // bodycam_segments_stored_total
	segRate    float64 // segments stored per minute
	publishers float64 // bodycam_ingest_publishers
	listed     int     // viewing sessions the server lists
	connected  int     // of them connected
	catalog    float64 // the SQLite catalog's files (0 with PostgreSQL)

	fps, audio []float64 // per viewer: complete video frames/s, audio packets/s

	machine, load1 float64 // machine CPU (% of one core, of 100 × cores); load average
	minio, bench   float64 // MinIO's and this process's (recorders and viewers) CPU, % of one core
}

// counters are the cumulative readings a sample's rates come from.
type counters struct {
	at                   time.Time
	server, minio, bench float64 // CPU seconds
	busy, total          float64 // machine ticks
	cpus                 int
	segments             float64
	frames, audio        []int
}

func readCounters(serverPID, minioPID int, segments float64, st []viewerStats) counters {
	c := counters{at: time.Now(), server: benchutil.CPUSeconds(serverPID), minio: benchutil.CPUSeconds(minioPID),
		bench: benchutil.CPUSeconds(os.Getpid()), segments: segments}
	c.busy, c.total, c.cpus = benchutil.MachineBusy()
	for _, s := range st {
		c.frames, c.audio = append(c.frames, s.frames), append(c.audio, s.audio)
	}
	return c
}

// viewerStats is what one viewer has received so far.
type viewerStats struct{ frames, audio int }

// rates fills s's per-interval fields from two readings.
func (s *sample) rates(a, b counters) {
	s.interval = b.at.Sub(a.at).Seconds()
	if s.interval <= 0 {
		return
	}
	per := func(x, y float64) float64 { return (y - x) / s.interval * 100 }
	s.cpu, s.minio, s.bench = per(a.server, b.server), per(a.minio, b.minio), per(a.bench, b.bench)
	if b.total > a.total {
		s.machine = (b.busy - a.busy) / (b.total - a.total) * float64(b.cpus) * 100
	}
	s.segRate = (b.segments - a.segments) / s.interval * 60
	s.fps, s.audio = make([]float64, len(b.frames)), make([]float64, len(b.frames))
	for i := range b.frames {
		s.fps[i] = float64(b.frames[i]-a.frames[i]) / s.interval
		s.audio[i] = float64(b.audio[i]-a.audio[i]) / s.interval
	}
}

// openFiles counts a process's open file descriptors.
func openFiles(pid int) float64 {
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		return 0
	}
	return float64(len(ents))
}

// du is what `du` says of dir: the blocks its files take on disk, in bytes,
// and how many regular files it holds. Files that vanish while it walks
// (the uploader removes them) are skipped.
func du(dir string) (bytes, files float64) {
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			bytes += float64(st.Blocks) * 512
		}
		if info.Mode().IsRegular() {
			files++
		}
		return nil
	})
	return bytes, files
}

// spoolReading is the spool's size read every second over an interval.
type spoolReading struct {
	n, sum, maxBytes, maxFiles float64
}

func (r *spoolReading) read(dir string) {
	b, f := du(dir)
	r.n++
	r.sum += b
	r.maxBytes, r.maxFiles = max(r.maxBytes, b), max(r.maxFiles, f)
}

func (r *spoolReading) mean() float64 {
	if r.n == 0 {
		return 0
	}
	return r.sum / r.n
}

// sqliteBytes is the size on disk of the SQLite catalog (the database and
// its WAL) in the data directory.
func sqliteBytes(dataDir string) float64 {
	ents, _ := os.ReadDir(dataDir)
	var n float64
	for _, e := range ents {
		if e.Type().IsRegular() && strings.Contains(e.Name(), ".db") {
			if info, err := e.Info(); err == nil {
				if st, ok := info.Sys().(*syscall.Stat_t); ok {
					n += float64(st.Blocks) * 512
				}
			}
		}
	}
	return n
}

// loadAvg is the machine's 1-minute load average.
func loadAvg() float64 {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}
