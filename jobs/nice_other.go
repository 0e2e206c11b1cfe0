//go:build !linux

package jobs

import "log/slog"

// lowerPriority does nothing where threads have no nice value of their own.
func lowerPriority(int, *slog.Logger) {}
