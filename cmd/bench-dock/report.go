package main

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/bodycam/bodycam/internal/benchutil"
)

// measured is what the samples say, over the upload.
type measured struct {
	window           time.Duration // the upload: first upload created → last receipt verified
	endToEnd         time.Duration // the dock's start → its exit (its hashing included)
	aggMBps, e2eMBps float64

	// CPU seconds over the dock's whole run, and % of one core over the
	// upload window.
	serverCPU, dockCPU, minioCPU float64
	serverPct, dockPct, minioPct float64
	machineCores, othersCores    float64 // busy cores (all processes; those not the bench's three)
	cpus                         int

	baseRSS, peakRSS, dockRSS, minioRSS float64

	diskOK                                bool
	diskWriteMBps, diskReadMBps           float64 // the device, over the upload window
	diskBusy                              float64 // share of the window the device had I/O in flight
	serverWritten, minioWritten           float64 // bytes the processes wrote to storage (net of cancelled), whole run
	procWriteMBps                         float64 // the server's and MinIO's storage writes over the upload window
	serverWritePerByte, minioWritePerByte float64
}

// at is the last sample at or before t (before: the first sample after
// it, when none is before).
func (r *run) at(t time.Time, before bool) sample {
	i := sort.Search(len(r.samples), func(i int) bool { return r.samples[i].at.After(t) })
	if before {
		return r.samples[max(i-1, 0)]
	}
	return r.samples[min(i, len(r.samples)-1)]
}

func (r *run) measure() measured {
	var m measured
	total := float64(r.o.total())
	m.endToEnd = r.dockEnd.Sub(r.dockStart)
	from, to := r.events.first, r.events.last
	if from.IsZero() || !to.After(from) {
		from, to = r.dockStart, r.dockEnd
	}
	m.window = to.Sub(from)
	m.aggMBps = total / 1e6 / m.window.Seconds()
	m.e2eMBps = total / 1e6 / m.endToEnd.Seconds()

	first, last := r.samples[0], r.samples[len(r.samples)-1]
	m.serverCPU, m.dockCPU, m.minioCPU = last.server-first.server, last.dock-first.dock, last.minio-first.minio
	a, b := r.at(from, true), r.at(to, false)
	secs := b.at.Sub(a.at).Seconds()
	m.serverPct = (b.server - a.server) / secs * 100
	m.dockPct = (b.dock - a.dock) / secs * 100
	m.minioPct = (b.minio - a.minio) / secs * 100
	if a.dock == 0 { // the window starts before the dock's first sample
		m.dockPct = (b.dock - first.dock) / secs * 100
	}
	_, _, m.cpus = benchutil.MachineBusy()
	if dt := b.total - a.total; dt > 0 {
		m.machineCores = (b.busy - a.busy) / dt * float64(m.cpus)
	}
	m.othersCores = max(m.machineCores-(m.serverPct+m.dockPct+m.minioPct)/100, 0)

	m.baseRSS = r.baseRSS
	for _, s := range r.samples {
		m.peakRSS, m.dockRSS, m.minioRSS = max(m.peakRSS, s.serverRSS), max(m.dockRSS, s.dockRSS), max(m.minioRSS, s.mio)
	}

	m.diskOK = a.diskOK && b.diskOK
	if m.diskOK {
		d := b.disk.sub(a.disk)
		m.diskWriteMBps, m.diskReadMBps = d.writeBytes/1e6/secs, d.readBytes/1e6/secs
		m.diskBusy = d.busyMS / 1000 / secs
	}
	net := func(s sample, minio bool) float64 {
		if minio {
			return s.minioIO.WriteBytes - s.minioIO.CancelledWrite
		}
		return s.serverIO.WriteBytes - s.serverIO.CancelledWrite
	}
	m.procWriteMBps = (net(b, false) - net(a, false) + net(b, true) - net(a, true)) / 1e6 / secs
	m.serverWritten, m.minioWritten = net(last, false)-net(first, false), net(last, true)-net(first, true)
	m.serverWritePerByte, m.minioWritePerByte = m.serverWritten/total, m.minioWritten/total
	return m
}

// verdictIn is what the verdict weighs.
type verdictIn struct {
	diskOK              bool
	diskBusy            float64 // share of the window with I/O in flight
	diskMBps, rawMBps   float64 // written during the upload; the raw write's rate (0: not measured)
	cpus                int
	machine             float64 // busy cores, everything
	server, dock, minio float64 // cores
	others              float64
	store               string
	serverWPB, minioWPB float64 // bytes written per byte uploaded
	cpuPerGB            float64 // CPU seconds per GB of the server, the dock and MinIO together
}

// ceilingMBps is the rate at which the CPU cost per GB would take every
// core: what the CPU alone allows, were nothing else running.
func (v verdictIn) ceilingMBps() float64 {
	if v.cpuPerGB <= 0 {
		return 0
	}
	return float64(v.cpus) / v.cpuPerGB * 1e3
}

// verdict says what limited the upload: the disk when it was busy nearly
// all the time or wrote nearly as fast as a plain write does; else the CPU
// when the machine's cores were nearly all busy, named after its largest
// user (bodycam serve, bodycam dock, MinIO; or other processes, when the
// machine is shared and they took the most); when neither was saturated,
// the one nearer its limit, and it says so.
func verdict(v verdictIn) (string, string) {
	diskFill := -1.0 // how near the disk was to its limit
	if v.diskOK {
		diskFill = v.diskBusy
		if v.rawMBps > 0 {
			diskFill = max(diskFill, v.diskMBps/v.rawMBps)
		}
	}
	cpuFill := v.machine / float64(max(v.cpus, 1))
	diskSat, cpuSat := diskFill >= 0.8, cpuFill >= 0.85
	cpuName, cpuCores := "bodycam CPU", v.server
	if v.dock > cpuCores {
		cpuName, cpuCores = "dock CPU", v.dock
	}
	if v.store == "s3" && v.minio > cpuCores {
		cpuName, cpuCores = "MinIO", v.minio
	}
	if v.others > cpuCores {
		cpuName = "other processes' CPU (a shared machine)"
	}
	var disk string
	switch {
	case !v.diskOK:
		disk = "The disk's counters could not be read (no block device under the directory)"
	case v.rawMBps > 0:
		disk = fmt.Sprintf("The disk wrote %.0f MB/s during the upload, %.0f %% of what a plain write of the same bytes reached (%.0f MB/s), and had I/O in flight %.0f %% of the time",
			v.diskMBps, v.diskMBps/v.rawMBps*100, v.rawMBps, v.diskBusy*100)
	default:
		disk = fmt.Sprintf("The disk wrote %.0f MB/s during the upload and had I/O in flight %.0f %% of the time (no raw write to compare: -raw=false)", v.diskMBps, v.diskBusy*100)
	}
	minio := ""
	if v.store == "s3" {
		minio = fmt.Sprintf(", MinIO %.0f %%", v.minio*100)
	}
	cpu := fmt.Sprintf("the machine's CPU was %.0f %% of %d00 %% (bodycam serve %.0f %%, bodycam dock %.0f %%%s, other processes %.0f %%)",
		v.machine*100, v.cpus, v.server*100, v.dock*100, minio, v.others*100)
	amp := ""
	if v.serverWPB > 0 || v.minioWPB > 0 {
		amp = fmt.Sprintf("; each byte uploaded was written %.2f× by the server", v.serverWPB)
		if v.store == "s3" {
			amp += fmt.Sprintf(" and %.2f× by MinIO", v.minioWPB)
		}
	}
	why := disk + "; " + cpu + amp + "."
	nearer := func() string {
		if diskFill >= cpuFill {
			return "disk"
		}
		return cpuName
	}
	name := nearer()
	switch {
	case diskSat && !cpuSat:
		name = "disk"
	case cpuSat && !diskSat:
		name = cpuName
	case diskSat && cpuSat:
		why += fmt.Sprintf(" Both were near their limits (disk %.0f %%, CPU %.0f %%); the %s the nearer.", diskFill*100, cpuFill*100, name)
	default:
		why += fmt.Sprintf(" Neither was saturated (disk %.0f %%, CPU %.0f %% of its limit): the upload waited on round trips and hand-offs more than on either; the %s is the nearer.",
			max(diskFill, 0)*100, cpuFill*100, name)
	}
	if c := v.ceilingMBps(); c > 0 {
		what := "bodycam serve and dock"
		if v.store == "s3" {
			what = "bodycam serve, dock and MinIO"
		}
		why += fmt.Sprintf(" At the CPU this upload cost (%.1f s per GB for %s together), the machine's %d cores alone would carry about %.0f MB/s",
			v.cpuPerGB, what, v.cpus, c)
		if v.diskOK && v.rawMBps > 0 {
			why += fmt.Sprintf("; the disk's plain write reached %.0f MB/s", v.rawMBps)
		}
		why += "."
	}
	return name, why
}

// summary is the run's markdown.
func (r *run) summary() string {
	m := r.measure()
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	total := float64(r.o.total())
	gb := total / 1e9
	passed := true
	for _, c := range r.checks {
		passed = passed && c.ok
	}
	p("# Dock upload: %d cameras × %d × %s, store %s\n\n", r.o.cameras, r.o.files, humanBytes(r.o.size), r.o.store)
	load := ""
	if bl, err := os.ReadFile("/proc/loadavg"); err == nil {
		load = strings.Join(strings.Fields(string(bl))[:3], " ")
	}
	p("%s, %s, %d CPUs, disk %s; load average %s before the upload, %s after.  \n", r.started.Format("2006-01-02 15:04 MST"), r.version, m.cpus, orDash(r.dev), r.loadBefore, load)
	p("`%s`\n\n", strings.Join(r.o.args, " "))
	if passed {
		p("**PASSED**: %d files, %.2f GB, every one with a signed receipt that verifies and a recording that verifies.\n\n", len(r.files), gb)
	} else {
		p("**FAILED**: see the checks below.\n\n")
	}
	vin := verdictIn{diskOK: m.diskOK, diskBusy: m.diskBusy, diskMBps: m.diskWriteMBps, cpus: m.cpus, machine: m.machineCores,
		server: m.serverPct / 100, dock: m.dockPct / 100, minio: m.minioPct / 100, others: m.othersCores, store: r.o.store,
		serverWPB: m.serverWritePerByte, minioWPB: m.minioWritePerByte, cpuPerGB: (m.serverCPU + m.dockCPU + m.minioCPU) / gb}
	if r.o.raw {
		vin.rawMBps = r.raw.mbps()
	}
	name, why := verdict(vin)
	p("**Limited by: %s.** %s\n\n", name, why)

	p("| | |\n|---|---|\n")
	p("| aggregate upload rate | **%.0f MB/s** (%.2f GB from the first upload created to the last receipt verified, %.1f s) |\n", m.aggMBps, gb, m.window.Seconds())
	p("| end to end | %.0f MB/s (the dock's start to its exit, %.1f s: it hashes each file before sending it) |\n", m.e2eMBps, m.endToEnd.Seconds())
	if r.o.raw {
		p("| raw write of the same bytes, same disk | %.0f MB/s (%d writers, 4 MiB writes, fdatasync; %.1f s) |\n", r.raw.mbps(), r.o.cameras, r.raw.elapsed.Seconds())
	}
	p("| server CPU | **%.2f s per GB**, %.0f %% of a core during the upload (%.2f %% of a core per MB/s) |\n", m.serverCPU/gb, m.serverPct, m.serverPct/max(m.aggMBps, 1e-9))
	p("| dock CPU | %.2f s per GB, %.0f %% of a core |\n", m.dockCPU/gb, m.dockPct)
	if r.o.store == "s3" {
		p("| MinIO CPU | %.2f s per GB, %.0f %% of a core |\n", m.minioCPU/gb, m.minioPct)
	}
	p("| machine CPU | %.0f %% of %d00 %% (other processes: %.0f %%) |\n", m.machineCores*100, m.cpus, m.othersCores*100)
	p("| server RSS | %.0f MiB before, peak %.0f MiB: **growth %.0f MiB** |\n", m.baseRSS/(1<<20), m.peakRSS/(1<<20), (m.peakRSS-m.baseRSS)/(1<<20))
	p("| dock RSS peak | %.0f MiB |\n", m.dockRSS/(1<<20))
	if r.o.store == "s3" {
		p("| MinIO RSS peak | %.0f MiB |\n", m.minioRSS/(1<<20))
	}
	if m.diskOK {
		p("| disk (%s) during the upload | writes %.0f MB/s (the server's and MinIO's own: %.0f MB/s), reads %.0f MB/s, I/O in flight %.0f %% of the time |\n",
			r.dev, m.diskWriteMBps, m.procWriteMBps, m.diskReadMBps, m.diskBusy*100)
	}
	if r.o.raw && r.raw.diskOK {
		p("| disk during the raw write | writes %.0f MB/s, I/O in flight %.0f %% of the time |\n",
			r.raw.disk.writeBytes/1e6/r.raw.elapsed.Seconds(), r.raw.disk.busyMS/10/r.raw.elapsed.Seconds())
	}
	p("| written to storage per byte uploaded | server %.2f×", m.serverWritePerByte)
	if r.o.store == "s3" {
		p(", MinIO %.2f×", m.minioWritePerByte)
	}
	p(" (`/proc/<pid>/io` write_bytes − cancelled_write_bytes, whole run) |\n")
	if r.verify.ok > 0 {
		p("| verification afterwards | %d recordings, %.2f GB re-read and re-hashed in %.1f s (%.0f MB/s, two at a time), server CPU %.2f s per GB |\n",
			r.verify.ok, float64(r.verify.bytes)/1e9, r.verify.elapsed.Seconds(), float64(r.verify.bytes)/1e6/r.verify.elapsed.Seconds(),
			r.verify.serverCPU/(float64(r.verify.bytes)/1e9))
	}
	p("\n## Per camera\n\n")
	p("| camera | device | files | bytes | first upload created | last receipt verified | MB/s |\n|---|---|---|---|---|---|---|\n")
	names := make([]string, 0, r.o.cameras)
	for i := 1; i <= r.o.cameras; i++ {
		names = append(names, cameraName(i))
	}
	for i, n := range names {
		c := r.events.cameras[n]
		bytes := float64(r.o.size) * float64(r.o.files)
		if c == nil || c.first.IsZero() || !c.last.After(c.first) {
			p("| %s | %s | %d | %s | — | — | — |\n", n, deviceID(i+1), r.o.files, humanBytes(int64(bytes)))
			continue
		}
		p("| %s | %s | %d | %s | %.1f s | %.1f s | %.0f |\n", n, deviceID(i+1), r.o.files, humanBytes(int64(bytes)),
			c.first.Sub(r.dockStart).Seconds(), c.last.Sub(r.dockStart).Seconds(), bytes/1e6/c.last.Sub(c.first).Seconds())
	}
	p("\nTimes from the dock's start. A camera's rate is its bytes over its own first creation to last receipt.\n")

	if r.o.cpuProfile != "" {
		p("\n## Where the server's CPU went\n\n")
		if r.profile.path != "" {
			p("Profile: `%s` (`go tool pprof -top %s %s`), %s of samples over the upload.\n\n", r.profile.path, r.o.bin, r.profile.path, r.profile.total)
			p("| what | CPU | share |\n|---|---|---|\n")
			for _, s := range r.profile.shares {
				p("| %s | %.2f s | %.0f %% |\n", s.name, s.d.Seconds(), float64(s.d)/float64(max(r.profile.total, 1))*100)
			}
			if len(r.profile.sha256) > 0 {
				p("\nSHA-256, by the function that hashed (each is a pass over the bytes):\n\n| function | CPU |\n|---|---|\n")
				for _, s := range r.profile.sha256 {
					p("| `%s` | %.2f s |\n", s.name, s.d.Seconds())
				}
			}
			if r.profile.top != "" {
				p("\n```\n%s\n```\n", r.profile.top)
			}
		}
		if r.profile.note != "" {
			p("\n%s\n", r.profile.note)
		}
	}

	p("\n## Checks\n\n")
	for _, c := range r.checks {
		mark := "ok"
		if !c.ok {
			mark = "**FAILED**"
		}
		p("- %s: %s", mark, c.name)
		if c.detail != "" {
			p(" — %s", strings.ReplaceAll(c.detail, "\n", " / "))
		}
		p("\n")
	}
	return b.String()
}
