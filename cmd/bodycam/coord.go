package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/bodycam/bodycam/coord"
)

// coordinator is what the parts of a node agree on with the others:
// coord.Local for one node, coord.Redis for several.
type coordinator interface {
	Ping(ctx context.Context) error
	Close() error
	Heartbeat(ctx context.Context, n coord.NodeInfo) error
	Leave(ctx context.Context, node string) error
	Nodes(ctx context.Context) ([]coord.NodeInfo, error)
	AcquireDevice(ctx context.Context, l coord.DeviceLease) (coord.DeviceLease, error)
	UpdateDevice(ctx context.Context, l coord.DeviceLease) error
	ReleaseDevice(ctx context.Context, device, session string) error
	DeviceLeases(ctx context.Context) ([]coord.DeviceLease, error)
	Device(ctx context.Context, id string) (coord.DeviceLease, error)
	Acquire(ctx context.Context, name, holder string, ttl time.Duration) error
	Release(ctx context.Context, name, holder string) error
	TakeSlot(ctx context.Context, pool, id string, limit int, ttl time.Duration) error
	RenewSlots(ctx context.Context, pool string, ids []string, ttl time.Duration) error
	ReleaseSlot(ctx context.Context, pool, id string) error
	Publish(ctx context.Context, stream string, e coord.Event) error
}

// openCoord opens the coordination backend: Redis with --redis-url, else
// this process alone. A Redis that does not answer does not stop the
// start: the node records alone until it does (degraded).
func openCoord(ctx context.Context, cfg Config, log *slog.Logger) (coordinator, string, error) {
	if cfg.RedisURL == "" {
		return coord.NewLocal(coord.Options{}), "in-process (one node)", nil
	}
	coord.SetLog(log.With("component", "coord"))
	r, err := coord.OpenRedis(ctx, cfg.RedisURL, coord.Options{})
	if err != nil {
		return nil, "", fmt.Errorf("redis-url: %v", err)
	}
	desc := "redis " + redactURL(cfg.RedisURL)
	if err := r.Ping(ctx); err != nil {
		log.Error("coordination does not answer at start; recording alone until it does", "redis", redactURL(cfg.RedisURL), "err", err)
		desc += " (not answering)"
	}
	return r, desc, nil
}

// redactURL is u without its password, for the log.
func redactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(unparsable URL)"
	}
	return p.Redacted()
}
