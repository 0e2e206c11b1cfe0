package jobs

import (
	"log/slog"
	"runtime"
	"syscall"
)

// lowerPriority raises the nice value of the calling goroutine's thread by
// n, and keeps the goroutine on that thread: the worker's decoding (FFmpeg
// too, and the threads FFmpeg starts from it, which inherit the value) then
// yields to ingest's threads when the cores are busy. The thread ends with
// the goroutine (it is never unlocked), so no other goroutine inherits it.
func lowerPriority(n int, log *slog.Logger) {
	if n <= 0 {
		return
	}
	runtime.LockOSThread()
	tid := syscall.Gettid()
	cur, err := syscall.Getpriority(syscall.PRIO_PROCESS, tid)
	if err != nil {
		log.Debug("jobs: worker priority not read", "err", err)
		return
	}
	// getpriority(2) returns 20 - nice.
	if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, min(20-cur+n, 19)); err != nil {
		log.Debug("jobs: worker priority not lowered", "err", err)
	}
}
