package redis

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	goredis "github.com/redis/go-redis/v9"
)

// slogRedisLogger routes go-redis's own messages (dial failures while Redis is
// down, pool events) to slog at debug level instead of stderr: wsgate reports
// Redis health itself through /readyz, metrics and its own warnings.
type slogRedisLogger struct{}

func (slogRedisLogger) Printf(ctx context.Context, format string, v ...any) {
	slog.Default().DebugContext(ctx, "redis client", "msg", fmt.Sprintf(format, v...))
}

var setLoggerOnce sync.Once

// quietGoRedis installs the logger once per process (go-redis has one global logger).
func quietGoRedis() { setLoggerOnce.Do(func() { goredis.SetLogger(slogRedisLogger{}) }) }
