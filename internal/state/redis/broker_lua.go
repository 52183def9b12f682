package redis

import goredis "github.com/redis/go-redis/v9"

// Broker keys of one channel share the hash tag {channel}: meta (hash: e epoch,
// o last offset, r run id of the Redis that wrote it), history (a stream whose entry ids are offset-0), presence
// (hash conn -> user) and presence expiry (zset conn -> ms). Events go to every
// node over PUBLISH to prefix+"ps:"+channel, in the formats decodeEvent parses.

// streamMeta is the prelude of the publish and history scripts. A stream's
// meta hash records, besides its epoch and last offset, the run id of the Redis
// process that wrote it (INFO server run_id, new at every start of redis-server
// and different on a promoted replica). Meta written by another process may
// come from an RDB snapshot, an AOF or a lagging replica: its offsets may have
// been handed out already, and its history may miss acked publications. Such a
// stream restarts in a new epoch (history dropped) before anything is read or
// appended, so an offset is never acked twice within one epoch and a position
// from before the loss never "recovers" across it.
// KEYS: meta, stream. current(create, new_epoch, meta_ttl_ms) returns epoch,
// offset and the "epoch:offset" it replaced (empty if none), or nil when there is
// no stream and create is false.
const streamMeta = `
local function current(create, new_epoch, mttl)
  local m = redis.call('HMGET', KEYS[1], 'e', 'o', 'r')
  local run = string.match(redis.call('INFO', 'server'), 'run_id:(%w+)') or ''
  if m[1] and m[3] == run then return m[1], tonumber(m[2]), '' end
  if not m[1] and not create then return nil end
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'e', new_epoch, 'o', 0, 'r', run)
  redis.call('PEXPIRE', KEYS[1], mttl)
  if m[1] then return new_epoch, 0, m[1] .. ':' .. (m[2] or '0') end
  return new_epoch, 0, ''
end
`

// publishScript assigns the next offsets to a batch of publications of one
// channel, appends them to history and publishes them, in one step, so that
// offsets, history and pub/sub order agree on every node.
// KEYS: meta, stream, done marker of this batch id. ARGV: size, ttl ms, meta
// ttl ms, epoch for a new stream, topic, marker ttl ms, then data, from for
// each publication in order. Returns {first offset, epoch, time ms, replaced
// epoch:offset or empty}; the batch has the offsets first, first+1, ...
//
// One publication goes out as one event ('p', see decodeEvent); a batch of
// several as one 'b' event, so every node reads one pub/sub message per batch.
//
// The done marker makes the script idempotent: go-redis runs a command again
// when its reply is late (a read timeout after the write), although Redis may
// have run it already. A second run with the same batch id returns the first
// run's result instead of spending new offsets and publishing the data again.
var publishScript = goredis.NewScript(streamMeta + `
local done = redis.call('GET', KEYS[3])
if done then
  local o, e, n = string.match(done, '^(%d+),([^,]+),(%d+)$')
  if o then return {tonumber(o), e, tonumber(n), ''} end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local size = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local mttl = tonumber(ARGV[3])
local n = (#ARGV - 6) / 2
if ttl > mttl then mttl = ttl end
local epoch, _, replaced = current(true, ARGV[4], mttl)
local first = redis.call('HINCRBY', KEYS[1], 'o', n) - n + 1
if size > 0 and ttl > 0 then
  if n == 1 then
    redis.call('XADD', KEYS[2], 'MAXLEN', size, first .. '-0', 'd', ARGV[7], 'f', ARGV[8], 't', now)
  else -- one trim for the batch: cheaper than one per entry
    for i = 0, n - 1 do
      redis.call('XADD', KEYS[2], (first + i) .. '-0', 'd', ARGV[7 + 2 * i], 'f', ARGV[8 + 2 * i], 't', now)
    end
    redis.call('XTRIM', KEYS[2], 'MAXLEN', size)
  end
  redis.call('PEXPIRE', KEYS[2], ttl)
else
  redis.call('DEL', KEYS[2])
end
redis.call('PEXPIRE', KEYS[1], mttl)
redis.call('SET', KEYS[3], first .. ',' .. epoch .. ',' .. now, 'PX', ARGV[6])
if n == 1 then
  redis.call('PUBLISH', ARGV[5], 'p' .. first .. ',' .. epoch .. ',' .. now .. ',' .. string.len(ARGV[8]) .. ',' .. ARGV[8] .. ARGV[7])
else
  local ev = {'b' .. first .. ',' .. epoch .. ',' .. now .. ',' .. n .. ','}
  for i = 0, n - 1 do
    local d, f = ARGV[7 + 2 * i], ARGV[8 + 2 * i]
    ev[#ev + 1] = string.len(f) .. ',' .. f .. string.len(d) .. ',' .. d
  end
  redis.call('PUBLISH', ARGV[5], table.concat(ev))
end
return {first, epoch, now, replaced}
`)

// historyScript reads position and history atomically. KEYS: meta, stream.
// ARGV: 'l' (latest) or 's' (since), first offset wanted, count (0 all), epoch
// for a stream that must restart (see streamMeta), meta ttl ms.
// Returns {} for a channel without a stream, else {epoch, offset, entries,
// replaced epoch:offset or empty}.
var historyScript = goredis.NewScript(streamMeta + `
local epoch, off, replaced = current(false, ARGV[4], tonumber(ARGV[5]))
if not epoch then return {} end
local n = tonumber(ARGV[3])
local res
if ARGV[1] == 'l' then
  if n > 0 then res = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', n)
  else res = redis.call('XREVRANGE', KEYS[2], '+', '-') end
else
  if n > 0 then res = redis.call('XRANGE', KEYS[2], ARGV[2] .. '-0', '+', 'COUNT', n)
  else res = redis.call('XRANGE', KEYS[2], ARGV[2] .. '-0', '+') end
end
return {epoch, tostring(off), res, replaced}
`)

// presenceNow is the prelude of the presence scripts.
const presenceNow = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function ev(kind, conn, user)
  return kind .. string.len(conn) .. ',' .. conn .. user
end
local function expire_old(topic)
  local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
  for _, c in ipairs(gone) do
    local u = redis.call('HGET', KEYS[1], c)
    redis.call('HDEL', KEYS[1], c)
    redis.call('ZREM', KEYS[2], c)
    if u then redis.call('PUBLISH', topic, ev('l', c, u)) end
  end
end
`

// presenceAddScript: KEYS presence, expiry; ARGV topic, ttl ms, then conn, user
// pairs. Announces the leave of expired entries (a dead node's), then adds or
// renews entries and announces the new ones. Keys live 3 TTLs after the last
// add or heartbeat, so a dead node's leave is announced by the next Presence
// call or heartbeat in the channel within that time. The heartbeat uses it
// too, so entries dropped while this node was unreachable come back.
var presenceAddScript = goredis.NewScript(presenceNow + `
local ttl = tonumber(ARGV[2])
expire_old(ARGV[1])
for i = 3, #ARGV, 2 do
  local new = redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  redis.call('ZADD', KEYS[2], now + ttl, ARGV[i])
  if new == 1 then redis.call('PUBLISH', ARGV[1], ev('j', ARGV[i], ARGV[i + 1])) end
end
redis.call('PEXPIRE', KEYS[1], ttl * 3)
redis.call('PEXPIRE', KEYS[2], ttl * 3)
return 0
`)

// presenceRemoveScript: KEYS presence, expiry; ARGV topic, conn.
var presenceRemoveScript = goredis.NewScript(presenceNow + `
local u = redis.call('HGET', KEYS[1], ARGV[2])
if not u then return 0 end
redis.call('HDEL', KEYS[1], ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('PUBLISH', ARGV[1], ev('l', ARGV[2], u))
return 1
`)

// presenceGetScript drops expired entries (announcing their leave) and returns
// the rest as a flat conn, user list. KEYS presence, expiry; ARGV topic.
var presenceGetScript = goredis.NewScript(presenceNow + `
expire_old(ARGV[1])
return redis.call('HGETALL', KEYS[1])
`)
