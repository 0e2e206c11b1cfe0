package coord

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"
)

// TestRedisForgetsAfterADay checks by its keys what the suite cannot wait
// for: a node not seen for 24 h leaves Nodes, and the next heartbeat of any
// node forgets it and frees its devices.
func TestRedisForgetsAfterADay(t *testing.T) {
	ctx := t.Context()
	prefix := "coordtest:forget:" + strconv.FormatInt(time.Now().UnixNano(), 36) + ":"
	r, err := OpenRedis(ctx, "redis://127.0.0.1:6379/0", Options{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		bg := context.Background()
		var keys []string
		for it := r.c.Scan(bg, 0, prefix+"*", 100).Iterator(); it.Next(bg); {
			keys = append(keys, it.Val())
		}
		if len(keys) > 0 {
			r.c.Del(bg, keys...)
		}
		r.Close()
	})
	if err := r.Ping(ctx); err != nil {
		t.Fatalf("Redis at 127.0.0.1:6379: %v", err)
	}
	for _, id := range []string{"old", "new"} {
		if err := r.Heartbeat(ctx, NodeInfo{ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.AcquireDevice(ctx, DeviceLease{Device: "cam-1", Node: "old", Session: "s1"}); err != nil {
		t.Fatal(err)
	}
	dayAgo := time.Now().Add(-forgetAfter - time.Minute).UnixMicro()
	if err := r.c.HSet(ctx, prefix+"nodes:seen", "old", dayAgo).Err(); err != nil {
		t.Fatal(err)
	}
	nodes, err := r.Nodes(ctx)
	if err != nil || len(nodes) != 1 || nodes[0].ID != "new" {
		t.Fatalf("Nodes = %+v, %v; want new only", nodes, err)
	}
	if err := r.Heartbeat(ctx, NodeInfo{ID: "new"}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"nodes", "nodes:seen"} {
		if n, err := r.c.HExists(ctx, prefix+k, "old").Result(); err != nil || n {
			t.Fatalf("%s still has old (%v)", k, err)
		}
	}
	if n, err := r.c.HExists(ctx, prefix+"devices", "cam-1").Result(); err != nil || n {
		t.Fatalf("old's device lease kept (%v)", err)
	}
	if f, err := r.c.HGet(ctx, prefix+"devices:fence", "cam-1").Int64(); err != nil || f <= 0 {
		t.Fatalf("the device's last fence went with the lease: %d, %v", f, err)
	}
	if _, err := r.Device(ctx, "cam-1"); !errors.Is(err, ErrNotHeld) {
		t.Fatalf("Device: %v", err)
	}
}
