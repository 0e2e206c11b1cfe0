package coord

import "github.com/redis/go-redis/v9"

// The Lua scripts Redis runs where a read and the write it decides must be
// one step. Times are the server's (TIME) in Unix microseconds; numbers go
// to Redis through int(), as Lua's own formatting would write 1.7e+15.
//
// Keys (after Options.Prefix):
//
//	nodes          hash node -> NodeInfo JSON as last sent
//	nodes:seen     hash node -> last heartbeat (µs)
//	nodes:left     hash node -> when it left (µs), until its next heartbeat
//	devices        hash device -> {"device","node","session"} JSON of the last grant
//	devices:info   hash device -> {"recording","since","remote_addr","codecs"} JSON
//	devices:fence  hash device -> last fence; never deleted, so fences only grow
//	lease:<name>   string holder, PX ttl
//	slots:<pool>   sorted set id -> expiry (µs)
//	stream:<name>  stream
const luaPrelude = `
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

local function int(n)
  return string.format('%.0f', n)
end

-- up: the node's last heartbeat is at most ttl µs old and it has not left.
local function up(seen, left, node, now, ttl)
  if redis.call('HEXISTS', left, node) == 1 then
    return false
  end
  local s = tonumber(redis.call('HGET', seen, node))
  return s ~= nil and now - s <= ttl
end

-- drop_leases frees every device a node holds.
local function drop_leases(devices, info, node)
  local all = redis.call('HGETALL', devices)
  for i = 1, #all, 2 do
    if cjson.decode(all[i + 1]).node == node then
      redis.call('HDEL', devices, all[i])
      redis.call('HDEL', info, all[i])
    end
  end
end

-- keep makes a key outlive its newest member (ttl µs from now).
local function keep(key, ttl)
  local ms = math.ceil(ttl / 1000) + 1
  if redis.call('PTTL', key) < ms then
    redis.call('PEXPIRE', key, int(ms))
  end
end
`

func script(body string) *redis.Script { return redis.NewScript(luaPrelude + body) }

// KEYS nodes, nodes:seen, nodes:left, devices, devices:info
// ARGV id, info JSON, forget after (µs)
var heartbeatLua = script(`
local now = now_us()
local id = ARGV[1]
local old = redis.call('HGET', KEYS[1], id)
if old and cjson.decode(old).started_at ~= cjson.decode(ARGV[2]).started_at then
  drop_leases(KEYS[4], KEYS[5], id)
end
redis.call('HSET', KEYS[1], id, ARGV[2])
redis.call('HSET', KEYS[2], id, int(now))
redis.call('HDEL', KEYS[3], id)
local seen = redis.call('HGETALL', KEYS[2])
for i = 1, #seen, 2 do
  if now - tonumber(seen[i + 1]) > tonumber(ARGV[3]) then
    redis.call('HDEL', KEYS[1], seen[i])
    redis.call('HDEL', KEYS[2], seen[i])
    redis.call('HDEL', KEYS[3], seen[i])
    drop_leases(KEYS[4], KEYS[5], seen[i])
  end
end
return 1
`)

// KEYS nodes, nodes:seen, nodes:left
// ARGV node ttl (µs), forget after (µs)
// -> {id, info JSON, last heartbeat (µs), 1 up or 0 down, ...}
var nodesLua = script(`
local now = now_us()
local out = {}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local seen = tonumber(redis.call('HGET', KEYS[2], all[i]))
  if seen and now - seen <= tonumber(ARGV[2]) then
    local live = up(KEYS[2], KEYS[3], all[i], now, tonumber(ARGV[1]))
    out[#out + 1] = all[i]
    out[#out + 1] = all[i + 1]
    out[#out + 1] = int(seen)
    out[#out + 1] = live and 1 or 0
  end
end
return out
`)

// KEYS nodes, nodes:left, devices, devices:info
// ARGV id
var leaveLua = script(`
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  redis.call('HSET', KEYS[2], ARGV[1], int(now_us()))
end
drop_leases(KEYS[3], KEYS[4], ARGV[1])
return 1
`)

// KEYS devices, devices:info, devices:fence, nodes:seen, nodes:left
// ARGV device, session, holder JSON, info JSON, node ttl (µs)
// -> {holder JSON, info JSON, fence, 1 when held by another}
var acquireDeviceLua = script(`
local now = now_us()
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  local c = cjson.decode(cur)
  local mine = c.session == ARGV[2]
  if mine or up(KEYS[4], KEYS[5], c.node, now, tonumber(ARGV[5])) then
    local info = redis.call('HGET', KEYS[2], ARGV[1]) or ''
    local fence = redis.call('HGET', KEYS[3], ARGV[1]) or '0'
    return {cur, info, fence, mine and 0 or 1}
  end
end
local fence = now
local last = tonumber(redis.call('HGET', KEYS[3], ARGV[1]))
if last and fence <= last then
  fence = last + 1
end
redis.call('HSET', KEYS[3], ARGV[1], int(fence))
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[4])
return {ARGV[3], ARGV[4], int(fence), 0}
`)

// KEYS devices, devices:info, nodes:seen, nodes:left
// ARGV device, session, info JSON, node ttl (µs) -> "ok", "held" or "free"
var updateDeviceLua = script(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then
  return 'free'
end
local c = cjson.decode(cur)
if c.session ~= ARGV[2] then
  if up(KEYS[3], KEYS[4], c.node, now_us(), tonumber(ARGV[4])) then
    return 'held'
  end
  return 'free'
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return 'ok'
`)

// KEYS devices, devices:info
// ARGV device, session
var releaseDeviceLua = script(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur and cjson.decode(cur).session == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
end
return 1
`)

// KEYS devices, devices:info, devices:fence, nodes:seen, nodes:left
// ARGV node ttl (µs), device (empty: all)
// -> {holder JSON, info JSON, fence, ...} of the leases held by nodes up
var deviceLeasesLua = script(`
local now = now_us()
local list
if ARGV[2] ~= '' then
  local cur = redis.call('HGET', KEYS[1], ARGV[2])
  list = cur and {ARGV[2], cur} or {}
else
  list = redis.call('HGETALL', KEYS[1])
end
local out, live = {}, {}
for i = 1, #list, 2 do
  local node = cjson.decode(list[i + 1]).node
  if live[node] == nil then
    live[node] = up(KEYS[4], KEYS[5], node, now, tonumber(ARGV[1]))
  end
  if live[node] then
    out[#out + 1] = list[i + 1]
    out[#out + 1] = redis.call('HGET', KEYS[2], list[i]) or ''
    out[#out + 1] = redis.call('HGET', KEYS[3], list[i]) or '0'
  end
end
return out
`)

// KEYS lease:<name>
// ARGV holder, ttl (ms) -> 1 taken or renewed, 0 held by another
var acquireLua = script(`
local h = redis.call('GET', KEYS[1])
if h and h ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`)

// KEYS lease:<name>
// ARGV holder
var releaseLua = script(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
end
return 1
`)

// KEYS slots:<pool>
// ARGV id, limit, ttl (µs) -> 1 taken or renewed, 0 full
var takeSlotLua = script(`
local now = now_us()
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', int(now))
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], int(now + tonumber(ARGV[3])), ARGV[1])
keep(KEYS[1], tonumber(ARGV[3]))
return 1
`)

// KEYS slots:<pool>
// ARGV ttl (µs), id... -> how many ids held no slot
var renewSlotsLua = script(`
local now = now_us()
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', int(now))
local ttl = tonumber(ARGV[1])
local missing, renewed = 0, 0
for i = 2, #ARGV do
  if redis.call('ZSCORE', KEYS[1], ARGV[i]) then
    redis.call('ZADD', KEYS[1], 'XX', int(now + ttl), ARGV[i])
    renewed = renewed + 1
  else
    missing = missing + 1
  end
end
if renewed > 0 then
  keep(KEYS[1], ttl)
end
return missing
`)
