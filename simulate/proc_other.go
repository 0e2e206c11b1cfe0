//go:build !linux

package simulate

import (
	"context"
	"os/exec"
)

// ffmpegCmd runs ffmpeg with args until ctx ends.
func ffmpegCmd(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ffmpeg", args...)
}
