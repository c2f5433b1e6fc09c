//! Every Lua script conveyor runs, each named after the [`Queue`](super::Queue) method that runs
//! it and opening with its contract. Scripts only touch keys passed in `KEYS`, all of one queue's
//! hash tag, so they run unchanged on Redis Cluster.

use redis::Script;
use std::sync::LazyLock;

/// Used by [`Queue::promote_due`](super::Queue::promote_due).
pub static PROMOTE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
-- promote: move delayed and retrying jobs whose due time has come into the ready stream.
-- KEYS[1] delayed zset  KEYS[2] ready stream  KEYS[3] dead stream
-- ARGV[1] now (ms)  ARGV[2] most jobs to move (<= 1000)
-- Each member is a packed envelope: a MessagePack array of str, field name, value, ...; it
-- becomes the fields of one XADD. A member that does not unpack into fields (written by hand,
-- or corrupt) goes to the dead stream as it is (field 'packed'), so it never blocks the others.
-- Returns the number of jobs moved to the ready stream. Jobs keep their order of due time.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local moved = 0
for _, member in ipairs(due) do
  local ok, fields = pcall(cmsgpack.unpack, member)
  local added = false
  if ok and type(fields) == 'table' and #fields >= 2 and #fields % 2 == 0 then
    local reply = redis.pcall('XADD', KEYS[2], '*', unpack(fields))
    added = type(reply) ~= 'table' or reply.err == nil
  end
  if added then
    moved = moved + 1
  else
    redis.call('XADD', KEYS[3], '*', 'packed', member, 'e', 'delayed member is not a packed envelope')
  end
end
if #due > 0 then
  redis.call('ZREM', KEYS[1], unpack(due))
end
return moved
"#,
    )
});

/// Used by [`Queue::reclaim`](super::Queue::reclaim).
pub static RECLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
-- reclaim: give back jobs whose worker stopped renewing its lease (it died or stalled).
-- Each pending entry idle longer than the lease is re-added to the ready stream as a new entry
-- with all its fields (so any live worker takes it), its reclaim count 'r' incremented and its
-- id kept ('id' is added, from the old entry's id, when the job had none), then the old entry
-- is acknowledged (the next trim removes it). An entry reclaimed more than ARGV[5] times is a
-- job that keeps killing its worker: it goes to the dead-letter stream instead with the reason
-- in 'e', and its audit bit (field 's', on its own or packed in 'm') is set.
-- KEYS[1] ready stream  KEYS[2] dead stream  KEYS[3] audit bitmap
-- ARGV[1] group  ARGV[2] lease (ms)  ARGV[3] most entries  ARGV[4] reclaimer consumer name
-- ARGV[5] most reclaims per job  ARGV[6] cursor (stream id to scan from)  ARGV[7] '1' to audit
-- ARGV[8] what follows an entry id in a job id of this partition ('' or '@<partition>')
-- Returns {moved, dead, gone, next cursor}: gone counts entries deleted while pending (their
-- pending record is dropped by XAUTOCLAIM itself).
local res = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[4], ARGV[2], ARGV[6], 'COUNT', ARGV[3])
local moved, dead = 0, 0
for _, entry in ipairs(res[2]) do
  local id, fields = entry[1], entry[2]
  if fields then
    local kept, reclaims, seq, has_id = {}, 0, nil, false
    for i = 1, #fields, 2 do
      local name, value = fields[i], fields[i + 1]
      if name == 'r' then
        reclaims = tonumber(value) or 0
      else
        if name == 'id' then has_id = true end
        if name == 's' then seq = tonumber(value) end
        if name == 'm' then
          -- The packed optional fields: a MessagePack array of str, name, value, ...
          local ok, more = pcall(cmsgpack.unpack, value)
          if ok and type(more) == 'table' then
            for j = 1, #more - 1, 2 do
              if more[j] == 's' then seq = tonumber(more[j + 1]) end
            end
          end
        end
        kept[#kept + 1] = name
        kept[#kept + 1] = value
      end
    end
    if not has_id then
      kept[#kept + 1] = 'id'
      kept[#kept + 1] = id .. ARGV[8]
    end
    reclaims = reclaims + 1
    kept[#kept + 1] = 'r'
    kept[#kept + 1] = tostring(reclaims)
    if reclaims > tonumber(ARGV[5]) then
      kept[#kept + 1] = 'e'
      kept[#kept + 1] = 'lease expired ' .. reclaims .. ' times'
      redis.call('XADD', KEYS[2], '*', unpack(kept))
      if seq and seq < 4294967296 and ARGV[7] == '1' then
        redis.call('SETBIT', KEYS[3], string.format('%.0f', seq), 1)
      end
      dead = dead + 1
    else
      redis.call('XADD', KEYS[1], '*', unpack(kept))
      moved = moved + 1
    end
  end
  redis.call('XACK', KEYS[1], ARGV[1], id)
end
return {moved, dead, #res[3], res[1]}
"#,
    )
});

/// Used by [`Queue::trim`](super::Queue::trim).
pub static TRIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
-- trim: remove settled entries from the head of the ready stream.
-- Settling only acknowledges an entry; it stays in the stream until a trim removes every entry
-- older than the oldest one still needed: the oldest pending entry (a worker holds it), or when
-- none is pending, the first entry not yet delivered. So no entry a worker holds or no worker has
-- seen is ever removed. Removing the head (XTRIM MINID) costs far less than deleting entries one
-- by one (XDEL), and leaves no tombstones, so the group's lag stays exact.
-- KEYS[1] ready stream  ARGV[1] group
-- Returns the number of entries removed (0 when the stream or the group does not exist).
local ok, pending = pcall(redis.call, 'XPENDING', KEYS[1], ARGV[1])
if not ok then return 0 end
local keep_from = pending[2]
if pending[1] == 0 then
  local delivered
  for _, group in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
    local fields = {}
    for i = 1, #group, 2 do fields[group[i]] = group[i + 1] end
    if fields['name'] == ARGV[1] then delivered = fields['last-delivered-id'] end
  end
  if not delivered then return 0 end
  local ms, seq = string.match(delivered, '^(%d+)-(%d+)$')
  if not ms then return 0 end
  keep_from = ms .. '-' .. string.format('%.0f', tonumber(seq) + 1)
end
return redis.call('XTRIM', KEYS[1], 'MINID', keep_from)
"#,
    )
});

/// Used by [`Queue::enqueue_jobs`](super::Queue::enqueue_jobs) (and so by
/// [`Queue::enqueue_unique`](super::Queue::enqueue_unique)); sent as `EVAL` inside the batch's
/// pipeline, since a pipeline cannot load a missing script and go on.
pub const ENQUEUE_UNIQUE_SOURCE: &str = r#"
-- enqueue_unique: add a job unless a job with the same idempotency key was added while the key
-- lived. The key remembers the first job's id until it expires.
-- KEYS[1] idempotency key  KEYS[2] ready stream  KEYS[3] delayed zset
-- ARGV[1] time to live of the key (ms)  ARGV[2] due time (ms; 0: ready now)
-- ARGV[3] what follows an entry id in a job id of this partition ('' or '@<partition>')
-- ARGV[4] the job's id (delayed jobs; '' otherwise)  ARGV[5] its packed envelope (delayed jobs)
-- ARGV[6..] the job's fields, name, value, ... (ready jobs)
-- Returns {1, job id} when the job was added, {0, id of the first job} when the key was already
-- taken (nothing is added then).
local first = redis.call('GET', KEYS[1])
if first then
  return {0, first}
end
local id
if tonumber(ARGV[2]) > 0 then
  redis.call('ZADD', KEYS[3], ARGV[2], ARGV[5])
  id = ARGV[4]
else
  id = redis.call('XADD', KEYS[2], '*', unpack(ARGV, 6)) .. ARGV[3]
end
redis.call('SET', KEYS[1], id, 'PX', ARGV[1])
return {1, id}
"#;
