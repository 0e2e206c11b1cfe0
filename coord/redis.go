package coord

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// Redis coordinates the nodes sharing one Redis. Every read-then-write is
// one Lua script, so nodes racing for the same device or slot see one
// order; times come from the server (TIME), so the nodes' clocks need not
// agree. A device lease costs no command while it lasts: it lives as long
// as its node's heartbeat.
type Redis struct {
	c     *redis.Client
	opt   Options
	ttlUS string // NodeTTL in µs, for the scripts
	// readTimeout bounds a blocking read past its BLOCK time.
	readTimeout time.Duration

	closeOnce sync.Once
	closeErr  error
}

// Timeouts used unless the URL sets them (dial_timeout, read_timeout,
// write_timeout, pool_timeout): short, so that a Redis that is down or
// unreachable is noticed within seconds and callers go on alone.
const (
	redisDialTimeout = time.Second
	redisIOTimeout   = time.Second
	redisPoolTimeout = 2 * time.Second
)

// blockSlice: a blocking ReadGroup waits in slices this long, so that
// cancelling its context ends it within one.
const blockSlice = 500 * time.Millisecond

// OpenRedis returns a Redis for a redis:// or rediss:// (TLS) URL, as
// redis.ParseURL reads it (user, password, database, and options in the
// query). It does not connect: a Redis that is down makes each call return
// ErrUnavailable until it answers, and Ping tells. ctx is not used yet.
func OpenRedis(ctx context.Context, url string, o Options) (*Redis, error) {
	ro, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("coord: redis url: %w", err)
	}
	if ro.DialTimeout == 0 {
		ro.DialTimeout = redisDialTimeout
	}
	if ro.ReadTimeout == 0 {
		ro.ReadTimeout = redisIOTimeout
	}
	if ro.WriteTimeout == 0 {
		ro.WriteTimeout = redisIOTimeout
	}
	if ro.PoolTimeout == 0 {
		ro.PoolTimeout = redisPoolTimeout
	}
	// One dial per attempt, and one retry (a stale pooled connection):
	// more would only delay ErrUnavailable.
	if ro.DialerRetries == 0 {
		ro.DialerRetries = 1
	}
	if ro.MaxRetries == 0 {
		ro.MaxRetries = 1
	}
	ro.ContextTimeoutEnabled = true
	// Cluster maintenance notices are a Redis Enterprise/Cloud feature;
	// asking a plain Redis for them costs a round trip per connection.
	ro.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	o = o.withDefaults()
	return &Redis{
		c:           redis.NewClient(ro),
		opt:         o,
		ttlUS:       strconv.FormatInt(o.NodeTTL.Microseconds(), 10),
		readTimeout: ro.ReadTimeout,
	}, nil
}

// Close closes the connections; later calls return ErrUnavailable.
// Calling it again returns the first result.
func (r *Redis) Close() error {
	r.closeOnce.Do(func() { r.closeErr = r.c.Close() })
	return r.closeErr
}

func (r *Redis) key(name string) string { return r.opt.Prefix + name }

func (r *Redis) deviceKeys() []string {
	return []string{r.key("devices"), r.key("devices:info"), r.key("devices:fence"), r.key("nodes:seen"), r.key("nodes:left")}
}

// fail maps a go-redis error to the package's: the caller's context error
// as it is, ErrUnavailable (wrapping the cause) when Redis did not answer
// or cannot serve now, and any other error Redis replied with as is.
func (r *Redis) fail(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	var re redis.Error
	if errors.As(err, &re) && !redisBusy(err) {
		return fmt.Errorf("coord: redis: %w", err)
	}
	return fmt.Errorf("%w: %v", ErrUnavailable, err)
}

// redisBusy: replies of a Redis that answers but cannot serve now.
func redisBusy(err error) bool {
	for _, p := range []string{"LOADING", "READONLY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN", "BUSY ", "NOREPLICAS"} {
		if strings.HasPrefix(err.Error(), p) {
			return true
		}
	}
	return false
}

// Ping returns nil when Redis answers, ErrUnavailable when it does not.
func (r *Redis) Ping(ctx context.Context) error {
	return r.fail(ctx, r.c.Ping(ctx).Err())
}

// Heartbeat records n as seen now (server time), with State as sent
// (NodeUp when empty). A heartbeat with another StartedAt than the last one
// is a new run of the node: the leases of its previous run are dropped.
// Nodes not seen for 24 h are forgotten here.
func (r *Redis) Heartbeat(ctx context.Context, n NodeInfo) error {
	if n.ID == "" {
		return errEmptyNode
	}
	n.LastSeen = time.Time{}
	n.StartedAt = n.StartedAt.UTC() // compared as text by the script: one instant, one text
	if n.State == "" {
		n.State = NodeUp
	}
	b, err := json.Marshal(n)
	if err != nil {
		return err
	}
	keys := []string{r.key("nodes"), r.key("nodes:seen"), r.key("nodes:left"), r.key("devices"), r.key("devices:info")}
	err = heartbeatLua.Run(ctx, r.c, keys, n.ID, b, forgetAfter.Microseconds()).Err()
	return r.fail(ctx, err)
}

// Nodes lists every node seen within 24 h by ID, LastSeen its last
// heartbeat, State NodeDown when it expired or left.
func (r *Redis) Nodes(ctx context.Context) ([]NodeInfo, error) {
	keys := []string{r.key("nodes"), r.key("nodes:seen"), r.key("nodes:left")}
	res, err := nodesLua.Run(ctx, r.c, keys, r.ttlUS, forgetAfter.Microseconds()).Slice()
	if err != nil {
		return nil, r.fail(ctx, err)
	}
	out := make([]NodeInfo, 0, len(res)/4)
	for i := 0; i+3 < len(res); i += 4 {
		id, js, seen := fieldString(res[i]), fieldString(res[i+1]), fieldString(res[i+2])
		var n NodeInfo
		if err := json.Unmarshal([]byte(js), &n); err != nil {
			return nil, fmt.Errorf("coord: node %s: %w", id, err)
		}
		us, err := strconv.ParseInt(seen, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("coord: node %s: last seen: %w", id, err)
		}
		n.LastSeen = time.UnixMicro(us)
		if up, _ := res[i+3].(int64); up == 0 {
			n.State = NodeDown
		}
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b NodeInfo) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// Leave marks a node down at once (a clean stop) and frees its devices.
// Its next Heartbeat brings it up again. Leaving an unknown node is nil.
func (r *Redis) Leave(ctx context.Context, node string) error {
	keys := []string{r.key("nodes"), r.key("nodes:left"), r.key("devices"), r.key("devices:info")}
	return r.fail(ctx, leaveLua.Run(ctx, r.c, keys, node).Err())
}

// What Redis keeps of a lease, apart from its fence: who holds it (set at
// the grant) and what the holder publishes (set at the grant and by
// UpdateDevice). Both decode into a DeviceLease.
type leaseHolder struct {
	Device  string `json:"device"`
	Node    string `json:"node"`
	Session string `json:"session"`
}

type leaseInfo struct {
	Recording  string    `json:"recording,omitempty"`
	Since      time.Time `json:"since"`
	RemoteAddr string    `json:"remote_addr,omitempty"`
	Codecs     []string  `json:"codecs,omitempty"`
}

func infoJSON(d DeviceLease) ([]byte, error) {
	return json.Marshal(leaseInfo{Recording: d.Recording, Since: d.Since, RemoteAddr: d.RemoteAddr, Codecs: d.Codecs})
}

// decodeLease reads a lease from a script's reply: holder JSON, info JSON
// (maybe empty) and fence.
func decodeLease(holder, info, fence any) (DeviceLease, error) {
	var d DeviceLease
	h, _ := holder.(string)
	if err := json.Unmarshal([]byte(h), &d); err != nil {
		return DeviceLease{}, fmt.Errorf("coord: device lease: %w", err)
	}
	if i, _ := info.(string); i != "" {
		if err := json.Unmarshal([]byte(i), &d); err != nil {
			return DeviceLease{}, fmt.Errorf("coord: device lease %s: %w", d.Device, err)
		}
	}
	f, _ := fence.(string)
	var err error
	if d.Fence, err = strconv.ParseInt(f, 10, 64); err != nil {
		return DeviceLease{}, fmt.Errorf("coord: device lease %s: fence: %w", d.Device, err)
	}
	return d, nil
}

// AcquireDevice grants d.Device to (d.Node, d.Session) with a new Fence,
// keeping d's Recording, Since, RemoteAddr and Codecs, unless another
// session holds it on a node up or draining: then it returns that lease
// and ErrHeld. The same session again gets its lease unchanged. The node
// must heartbeat first: a lease on a node never seen is free at once.
func (r *Redis) AcquireDevice(ctx context.Context, d DeviceLease) (DeviceLease, error) {
	if err := checkLease(d); err != nil {
		return DeviceLease{}, err
	}
	holder, err := json.Marshal(leaseHolder{Device: d.Device, Node: d.Node, Session: d.Session})
	if err != nil {
		return DeviceLease{}, err
	}
	info, err := infoJSON(d)
	if err != nil {
		return DeviceLease{}, err
	}
	res, err := acquireDeviceLua.Run(ctx, r.c, r.deviceKeys(), d.Device, d.Session, holder, info, r.ttlUS).Slice()
	if err != nil {
		return DeviceLease{}, r.fail(ctx, err)
	}
	if len(res) != 4 {
		return DeviceLease{}, fmt.Errorf("coord: device lease: unexpected reply %v", res)
	}
	got, err := decodeLease(res[0], res[1], res[2])
	if err != nil {
		return DeviceLease{}, err
	}
	if held, _ := res[3].(int64); held == 1 {
		return got, ErrHeld
	}
	return got, nil
}

// UpdateDevice sets Recording, Since, RemoteAddr and Codecs of the lease
// d.Session holds on d.Device; the rest stays. ErrHeld when another session
// holds it, ErrNotHeld when none does.
func (r *Redis) UpdateDevice(ctx context.Context, d DeviceLease) error {
	info, err := infoJSON(d)
	if err != nil {
		return err
	}
	keys := []string{r.key("devices"), r.key("devices:info"), r.key("nodes:seen"), r.key("nodes:left")}
	res, err := updateDeviceLua.Run(ctx, r.c, keys, d.Device, d.Session, info, r.ttlUS).Text()
	switch {
	case err != nil:
		return r.fail(ctx, err)
	case res == "held":
		return ErrHeld
	case res == "free":
		return ErrNotHeld
	}
	return nil
}

// ReleaseDevice frees the device if session holds it; otherwise it does
// nothing and returns nil.
func (r *Redis) ReleaseDevice(ctx context.Context, device, session string) error {
	keys := []string{r.key("devices"), r.key("devices:info")}
	return r.fail(ctx, releaseDeviceLua.Run(ctx, r.c, keys, device, session).Err())
}

func (r *Redis) leases(ctx context.Context, device string) ([]DeviceLease, error) {
	res, err := deviceLeasesLua.Run(ctx, r.c, r.deviceKeys(), r.ttlUS, device).Slice()
	if err != nil {
		return nil, r.fail(ctx, err)
	}
	out := make([]DeviceLease, 0, len(res)/3)
	for i := 0; i+2 < len(res); i += 3 {
		d, err := decodeLease(res[i], res[i+1], res[i+2])
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b DeviceLease) int { return cmp.Compare(a.Device, b.Device) })
	return out, nil
}

// DeviceLeases lists the leases held by nodes up or draining, by device.
func (r *Redis) DeviceLeases(ctx context.Context) ([]DeviceLease, error) {
	return r.leases(ctx, "")
}

// Device returns the lease of a device held by a node up or draining;
// ErrNotHeld when it is free.
func (r *Redis) Device(ctx context.Context, id string) (DeviceLease, error) {
	if id == "" {
		return DeviceLease{}, ErrNotHeld
	}
	l, err := r.leases(ctx, id)
	if err != nil {
		return DeviceLease{}, err
	}
	if len(l) == 0 {
		return DeviceLease{}, ErrNotHeld
	}
	return l[0], nil
}

// ceilMs is d in whole milliseconds, rounded up.
func ceilMs(d time.Duration) int64 { return int64((d + time.Millisecond - 1) / time.Millisecond) }

// Acquire takes the named lease for holder for ttl, or renews it when
// holder has it; ErrHeld while another holder's has not expired.
func (r *Redis) Acquire(ctx context.Context, name, holder string, ttl time.Duration) error {
	if ttl <= 0 {
		return errTTL
	}
	ok, err := acquireLua.Run(ctx, r.c, []string{r.key("lease:" + name)}, holder, ceilMs(ttl)).Int()
	switch {
	case err != nil:
		return r.fail(ctx, err)
	case ok == 0:
		return ErrHeld
	}
	return nil
}

// Release ends the named lease if holder has it; otherwise nil.
func (r *Redis) Release(ctx context.Context, name, holder string) error {
	return r.fail(ctx, releaseLua.Run(ctx, r.c, []string{r.key("lease:" + name)}, holder).Err())
}

// TakeSlot takes the slot id in pool for ttl; ErrFull when limit slots
// are taken. Taking a slot id already has renews it, even at the limit.
// Expired slots do not count.
func (r *Redis) TakeSlot(ctx context.Context, pool, id string, limit int, ttl time.Duration) error {
	if ttl <= 0 {
		return errTTL
	}
	ok, err := takeSlotLua.Run(ctx, r.c, []string{r.key("slots:" + pool)}, id, limit, ttl.Microseconds()).Int()
	switch {
	case err != nil:
		return r.fail(ctx, err)
	case ok == 0:
		return ErrFull
	}
	return nil
}

// RenewSlots extends the slots ids hold in pool to ttl from now, in one
// round trip. An id whose slot expired or was released is not taken again:
// ErrNotHeld when there was one, after renewing the others.
func (r *Redis) RenewSlots(ctx context.Context, pool string, ids []string, ttl time.Duration) error {
	if ttl <= 0 {
		return errTTL
	}
	if len(ids) == 0 {
		return nil
	}
	args := make([]any, 0, 1+len(ids))
	args = append(args, ttl.Microseconds())
	for _, id := range ids {
		args = append(args, id)
	}
	missing, err := renewSlotsLua.Run(ctx, r.c, []string{r.key("slots:" + pool)}, args...).Int()
	switch {
	case err != nil:
		return r.fail(ctx, err)
	case missing > 0:
		return fmt.Errorf("%w: %d of %d slots", ErrNotHeld, missing, len(ids))
	}
	return nil
}

// ReleaseSlot frees id's slot in pool; nil when it has none.
func (r *Redis) ReleaseSlot(ctx context.Context, pool, id string) error {
	return r.fail(ctx, r.c.ZRem(ctx, r.key("slots:"+pool), id).Err())
}

// Publish appends e to the Redis stream <Prefix>stream:<stream> (fields
// id, device, kind, payload), trimming it to about 1,000,000 entries.
func (r *Redis) Publish(ctx context.Context, stream string, e Event) error {
	err := r.c.XAdd(ctx, &redis.XAddArgs{
		Stream: r.key("stream:" + stream),
		MaxLen: streamMaxLen,
		Approx: true,
		Values: []any{"id", e.ID, "device", e.Device, "kind", e.Kind, "payload", e.Payload},
	}).Err()
	return r.fail(ctx, err)
}

// ReadGroup reads stream as consumer of group (created at the stream's
// start when missing). It returns first the consumer's messages delivered
// before and not acknowledged, so a consumer that restarts gets them again;
// when it has none, up to count new messages (count <= 0: all), waiting up
// to block for one when there is none (block <= 0: not waiting). No
// message and no error when block passes. Messages pending on a consumer
// that never comes back stay pending: nobody claims them.
func (r *Redis) ReadGroup(ctx context.Context, stream, group, consumer string, count int, block time.Duration) ([]Message, error) {
	key := r.key("stream:" + stream)
	msgs, err := r.readGroup(ctx, key, group, consumer, count, "0", -1)
	if err != nil || len(msgs) > 0 {
		return msgs, err
	}
	deadline := time.Now().Add(block)
	for {
		wait := min(time.Until(deadline), blockSlice)
		if wait < time.Millisecond { // BLOCK 0 would wait for ever
			wait = -1
		}
		msgs, err := r.readGroup(ctx, key, group, consumer, count, ">", wait)
		if err != nil || len(msgs) > 0 || wait < 0 {
			return msgs, err
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
}

// readGroup is one XREADGROUP from id ("0": the consumer's pending, ">":
// new), blocking up to block when it is not negative. It creates the group
// when Redis says there is none.
func (r *Redis) readGroup(ctx context.Context, key, group, consumer string, count int, id string, block time.Duration) ([]Message, error) {
	rctx := ctx
	if block > 0 {
		// go-redis waits BLOCK + 10 s for the reply; a Redis gone quiet
		// should be noticed sooner.
		var cancel context.CancelFunc
		rctx, cancel = context.WithTimeout(ctx, block+r.readTimeout)
		defer cancel()
	}
	args := &redis.XReadGroupArgs{Group: group, Consumer: consumer, Streams: []string{key, id}, Count: int64(max(count, 0)), Block: block}
	res, err := r.c.XReadGroup(rctx, args).Result()
	if err != nil && strings.HasPrefix(err.Error(), "NOGROUP") {
		err = r.c.XGroupCreateMkStream(ctx, key, group, "0").Err()
		if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
			return nil, r.fail(ctx, err)
		}
		res, err = r.c.XReadGroup(rctx, args).Result()
	}
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, r.fail(ctx, err)
	}
	var out []Message
	var gone []string
	for _, s := range res {
		for _, m := range s.Messages {
			if m.Values == nil { // trimmed while pending: it cannot come again
				gone = append(gone, m.ID)
				continue
			}
			out = append(out, Message{StreamID: m.ID, Event: Event{
				ID:      fieldString(m.Values["id"]),
				Device:  fieldString(m.Values["device"]),
				Kind:    fieldString(m.Values["kind"]),
				Payload: []byte(fieldString(m.Values["payload"])),
			}})
		}
	}
	if len(gone) > 0 {
		if err := r.c.XAck(ctx, key, group, gone...).Err(); err != nil {
			return nil, r.fail(ctx, err)
		}
	}
	return out, nil
}

func fieldString(v any) string {
	s, _ := v.(string)
	return s
}

// Ack marks messages of group as processed: they are not delivered again.
// Unknown ids are ignored.
func (r *Redis) Ack(ctx context.Context, stream, group string, ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	err := r.c.XAck(ctx, r.key("stream:"+stream), group, ids...).Err()
	if err != nil && strings.HasPrefix(err.Error(), "NOGROUP") {
		return nil
	}
	return r.fail(ctx, err)
}
