package redis

import (
	"strconv"

	goredis "github.com/redis/go-redis/v9"
)

// Broker keys of one channel share the hash tag {channel}: meta (hash: e epoch,
// o last offset, r run id of the Redis that wrote it, s history size of the
// last publication), history (a stream whose entry ids are offset-0), presence
// (hash conn -> user) and presence expiry (zset conn -> ms). Events go to every
// node over PUBLISH to prefix+"ps:"+channel, in the formats decodeEvent parses.
//
// History is the last s publications. The stream may hold up to min(s, 100)
// older ones (publishScript trims it in steps); the history script never
// returns those, so readers see exactly the last s.

// streamMeta is the prelude of the publish and history scripts. A stream's
// meta hash records, besides its epoch and last offset, the run id of the Redis
// process that wrote it (INFO server run_id, new at every start of redis-server
// and different on a promoted replica). Meta written by another process may
// come from an RDB snapshot, an AOF or a lagging replica: its offsets may have
// been handed out already, and its history may miss acked publications. Such a
// stream restarts in a new epoch (history dropped) before anything is read or
// appended, so an offset is never acked twice within one epoch and a position
// from before the loss never "recovers" across it.
// KEYS: meta, stream. current(create, new_epoch, meta_ttl_ms, field) returns
// epoch, offset, the "epoch:offset" it replaced (empty if none), the history
// size (nil: unknown, no cap) and the meta hash's value of field (nil when the
// stream restarted), or nil when there is no stream and create is false.
//
// The run id is found with a plain find, not a pattern: INFO server is ~1 KiB
// and a pattern match over it cost about as much as the INFO call itself
// (~8 µs per publication on the 2-vCPU bench machine, docs/benchmarks.md).
const streamMeta = `
local function current(create, new_epoch, mttl, field)
  local m = redis.call('HMGET', KEYS[1], 'e', 'o', 'r', 's', field or 'e')
  local info = redis.call('INFO', 'server')
  local at = string.find(info, 'run_id:', 1, true)
  local run = at and string.match(info, '^%w+', at + 7) or ''
  if m[1] and m[3] == run then return m[1], tonumber(m[2]), '', tonumber(m[4]), m[5] end
  if not m[1] and not create then return nil end
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'e', new_epoch, 'o', 0, 'r', run)
  redis.call('HDEL', KEYS[1], 's')
  redis.call('PEXPIRE', KEYS[1], mttl)
  if m[1] then return new_epoch, 0, m[1] .. ':' .. (m[2] or '0'), nil, nil end
  return new_epoch, 0, '', nil, nil
end
`

// publishScript assigns the next offsets to a batch of publications of one
// channel, appends them to history and publishes them, in one step, so that
// offsets, history and pub/sub order agree on every node.
// KEYS: meta, stream. ARGV: size, ttl ms, meta ttl ms, epoch for a new stream,
// topic, done field of the publishing broker, then data, from for each
// publication in order; the last argument is the batch id (unique per
// broker). Returns {first offset, epoch, time ms, replaced epoch:offset or
// empty}; the batch has the offsets first, first+1, ...
//
// One publication goes out as one event ('p', see decodeEvent); a batch of
// several as one 'b' event, so every node reads one pub/sub message per batch.
//
// The done field makes the script idempotent: go-redis runs a command again
// when its reply is late (a read timeout after the write), although Redis may
// have run it already. The field (in the meta hash, one per publishing broker)
// holds "batch id,first,epoch,time" of that broker's last batch in the
// channel; a broker has one batch of a channel in flight at a time, so a
// second run of a batch finds its own id there and returns the first run's
// result instead of spending new offsets and publishing the data again (unless
// the stream restarted in a new epoch since: then the first run's publications
// are gone with it, and it runs again). The field is written with the offset,
// in one HSET, so idempotence costs no call of its own. Fields older than
// publishDedupWindow (of brokers that stopped) are dropped when a broker's first
// batch in the channel finds more than 32 of them.
var publishScript = goredis.NewScript(streamMeta + `
local size = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local mttl = tonumber(ARGV[3])
local n = (#ARGV - 7) / 2
local id = ARGV[#ARGV]
if ttl > mttl then mttl = ttl end
local epoch, off, replaced, cap, done = current(true, ARGV[4], mttl, ARGV[6])
if done then
  local did, o, e, t = string.match(done, '^([^,]+),(%d+),([^,]+),(%d+)$')
  if did == id and e == epoch then return {tonumber(o), e, tonumber(t), ''} end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local first = off + 1
if not done and redis.call('HLEN', KEYS[1]) > 36 then
  local all = redis.call('HGETALL', KEYS[1])
  for i = 1, #all, 2 do
    local at = string.match(all[i + 1], ',(%d+)$')
    if string.sub(all[i], 1, 2) == 'd:' and at and tonumber(at) < now - ` + strconv.FormatInt(publishDedupWindow.Milliseconds(), 10) + ` then
      redis.call('HDEL', KEYS[1], all[i])
    end
  end
end
local d = id .. ',' .. first .. ',' .. epoch .. ',' .. now
if cap ~= size then
  redis.call('HSET', KEYS[1], 'o', off + n, ARGV[6], d, 's', size)
else
  redis.call('HSET', KEYS[1], 'o', off + n, ARGV[6], d)
end
if size > 0 and ttl > 0 then
  for i = 0, n - 1 do
    redis.call('XADD', KEYS[2], (first + i) .. '-0', 'd', ARGV[7 + 2 * i], 'f', ARGV[8 + 2 * i], 't', now)
  end
  -- An exact trim per XADD walks the entries it deleted before (a stream node
  -- frees them only when all of it goes): ~5-10 µs per publication. Trimming
  -- once slack entries piled up costs that walk once per slack publications.
  local slack = math.min(size, 100)
  if redis.call('XLEN', KEYS[2]) > size + slack then
    redis.call('XTRIM', KEYS[2], 'MAXLEN', size)
  end
  redis.call('PEXPIRE', KEYS[2], ttl)
else
  redis.call('DEL', KEYS[2])
end
redis.call('PEXPIRE', KEYS[1], mttl)
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
local epoch, off, replaced, cap = current(false, ARGV[4], tonumber(ARGV[5]))
if not epoch then return {} end
local n = tonumber(ARGV[3])
local res
if ARGV[1] == 'l' then
  if cap and (n == 0 or cap < n) then n = cap end
  if n > 0 then res = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', n)
  elseif cap then res = {}
  else res = redis.call('XREVRANGE', KEYS[2], '+', '-') end
else
  -- Entries older than the last cap are trim slack: not history any more.
  local from = ARGV[2]
  if cap and tonumber(from) < off - cap + 1 then from = string.format('%d', off - cap + 1) end
  if n > 0 then res = redis.call('XRANGE', KEYS[2], from .. '-0', '+', 'COUNT', n)
  else res = redis.call('XRANGE', KEYS[2], from .. '-0', '+') end
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
