package simulate

import (
	"context"
	"os/exec"
	"syscall"
)

// ffmpegCmd runs ffmpeg with args until ctx ends; on Linux it also dies with
// the simulator however the simulator dies (a parent-death signal), so a
// killed simulator leaves no recorder publishing.
func ffmpegCmd(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "ffmpeg", args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}
