package coord_test

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bodycam/bodycam/coord"
	"github.com/bodycam/bodycam/coord/coordtest"
)

var (
	_ coordtest.Backend = (*coord.Local)(nil)
	_ coordtest.Backend = (*coord.Redis)(nil)
)

const redisURL = "redis://127.0.0.1:6379/0"

func openLocal(t *testing.T, o coord.Options) coordtest.Backend { return coord.NewLocal(o) }

func TestLocal(t *testing.T) {
	coordtest.Run(t, openLocal)
	t.Run("Leaks", func(t *testing.T) { coordtest.Leaks(t, openLocal) })
}

// TestRedis runs the suite on the Redis at 127.0.0.1:6379, each subtest
// under a key prefix of its own, deleted after it.
func TestRedis(t *testing.T) {
	admin := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	t.Cleanup(func() { admin.Close() })
	if err := admin.Ping(t.Context()).Err(); err != nil {
		t.Fatalf("Redis at 127.0.0.1:6379: %v", err)
	}
	open := func(t *testing.T, o coord.Options) coordtest.Backend {
		r, err := coord.OpenRedis(t.Context(), redisURL, o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			r.Close()
			deletePrefix(t, admin, o.Prefix)
		})
		return r
	}
	coordtest.Run(t, open)
	t.Run("Leaks", func(t *testing.T) { coordtest.Leaks(t, open) })
}

// deletePrefix deletes the keys under prefix (random hex: no glob
// characters), and only those: the Redis is shared.
func deletePrefix(t *testing.T, c *redis.Client, prefix string) {
	ctx := context.Background()
	iter := c.Scan(ctx, 0, prefix+"*", 100).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Errorf("scan %s*: %v", prefix, err)
		return
	}
	if len(keys) > 0 {
		if err := c.Del(ctx, keys...).Err(); err != nil {
			t.Errorf("delete %s*: %v", prefix, err)
		}
	}
}

// TestRedisUnavailable: with nothing listening, every method returns
// ErrUnavailable, within seconds.
func TestRedisUnavailable(t *testing.T) {
	r, err := coord.OpenRedis(t.Context(), "redis://127.0.0.1:1/0", coord.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for name, call := range coordtest.Calls() {
		start := time.Now()
		err := call(t.Context(), r)
		if !errors.Is(err, coord.ErrUnavailable) {
			t.Errorf("%s: %v, want ErrUnavailable", name, err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("%s took %v", name, d)
		}
	}
	// A blocking read, too, and a cancelled context stays itself.
	if _, err := r.ReadGroup(t.Context(), "events", "g", "c", 1, 5*time.Second); !errors.Is(err, coord.ErrUnavailable) {
		t.Errorf("blocking ReadGroup: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := r.Ping(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Ping, cancelled: %v", err)
	}
}

// TestRedisNotAnswering: a Redis that takes connections and never replies
// (hung, or a black hole on the way) is ErrUnavailable within seconds too.
func TestRedisNotAnswering(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-accepted
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})

	r, err := coord.OpenRedis(t.Context(), "redis://"+ln.Addr().String()+"/0", coord.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var wg sync.WaitGroup
	for name, call := range coordtest.Calls() {
		wg.Go(func() {
			start := time.Now()
			err := call(t.Context(), r)
			if !errors.Is(err, coord.ErrUnavailable) {
				t.Errorf("%s: %v, want ErrUnavailable", name, err)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("%s took %v", name, d)
			}
		})
	}
	wg.Wait()
}

func TestOpenRedisURL(t *testing.T) {
	for _, u := range []string{"redis://user:pw@127.0.0.1:6379/2?dial_timeout=3s", "rediss://redis.example:6380/0"} {
		r, err := coord.OpenRedis(t.Context(), u, coord.Options{})
		if err != nil {
			t.Errorf("%s: %v", u, err)
			continue
		}
		r.Close()
	}
	for _, u := range []string{"http://127.0.0.1:6379", "redis://127.0.0.1:6379/notadb", "::"} {
		if r, err := coord.OpenRedis(t.Context(), u, coord.Options{}); err == nil {
			r.Close()
			t.Errorf("%s: no error", u)
		}
	}
}
