package coord

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/redis/go-redis/v9"
)

// SetLog sends go-redis's own messages (a failed dial, a bad connection
// dropped from its pool) to log at debug level instead of stderr: while
// Redis is down it would repeat them at every attempt, and the node says
// once, at error level, that it runs degraded. go-redis keeps one logger
// per process.
func SetLog(log *slog.Logger) { redis.SetLogger(redisLog{log}) }

type redisLog struct{ log *slog.Logger }

func (l redisLog) Printf(ctx context.Context, format string, v ...any) {
	l.log.Debug(fmt.Sprintf(format, v...))
}
