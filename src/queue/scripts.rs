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
-- KEYS[1] delayed zset  KEYS[2] ready stream
-- ARGV[1] now (ms)  ARGV[2] most jobs to move (<= 1000)  ARGV[3] stream field for the job
-- Returns the number of jobs moved. Jobs keep their order of due time.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, job in ipairs(due) do
  redis.call('XADD', KEYS[2], '*', ARGV[3], job)
end
if #due > 0 then
  redis.call('ZREM', KEYS[1], unpack(due))
end
return #due
"#,
    )
});

/// Used by [`Queue::reclaim`](super::Queue::reclaim).
pub static RECLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
-- reclaim: give back jobs whose worker stopped renewing its lease (it died or stalled).
-- Each pending entry idle longer than the lease is re-added to the ready stream as a new entry
-- (so any live worker takes it) with its reclaim count `r` incremented, then the old entry is
-- acknowledged (the next trim removes it). An entry reclaimed more than ARGV[5] times is a job
-- that keeps killing its worker: it goes to the dead-letter stream instead, and its audit bit
-- is set.
-- KEYS[1] ready stream  KEYS[2] dead stream  KEYS[3] audit bitmap
-- ARGV[1] group  ARGV[2] lease (ms)  ARGV[3] most entries  ARGV[4] reclaimer consumer name
-- ARGV[5] most reclaims per job  ARGV[6] cursor (stream id to scan from)  ARGV[7] '1' to audit
-- Returns {moved, dead, gone, next cursor}: gone counts entries deleted while pending (their
-- pending record is dropped by XAUTOCLAIM itself).
-- The job's sequence number: the first element of its MessagePack array. Read from the header
-- because Redis' cmsgpack rejects the `bin` type the payload is encoded with. A number the audit
-- bitmap cannot hold (2^32 and above: only a corrupt entry has one) is not audited.
local function seq_of(job)
  local head = string.byte(job, 1)
  if not head or head < 0x91 or head > 0x9f then return nil end
  local t = string.byte(job, 2)
  if t and t < 0x80 then return t end
  local width = ({[0xcc] = 1, [0xcd] = 2, [0xce] = 4, [0xcf] = 8})[t]
  if not width or #job < 2 + width then return nil end
  local v = 0
  for i = 3, 2 + width do v = v * 256 + string.byte(job, i) end
  return v
end
local res = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[4], ARGV[2], ARGV[6], 'COUNT', ARGV[3])
local moved, dead = 0, 0
for _, entry in ipairs(res[2]) do
  local id, fields = entry[1], entry[2]
  if fields then
    local job, reclaims = nil, 0
    for i = 1, #fields, 2 do
      if fields[i] == 'j' then job = fields[i + 1] end
      if fields[i] == 'r' then reclaims = tonumber(fields[i + 1]) end
    end
    reclaims = reclaims + 1
    if job == nil then
      redis.call('XADD', KEYS[2], '*', 'j', '', 'reason', 'entry without a job field')
      dead = dead + 1
    elseif reclaims > tonumber(ARGV[5]) then
      redis.call('XADD', KEYS[2], '*', 'j', job, 'reason', 'lease expired ' .. reclaims .. ' times')
      local seq = seq_of(job)
      if seq and seq < 4294967296 and ARGV[7] == '1' then
        redis.call('SETBIT', KEYS[3], string.format('%.0f', seq), 1)
      end
      dead = dead + 1
    else
      redis.call('XADD', KEYS[1], '*', 'j', job, 'r', reclaims)
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

/// Used by [`Queue::enqueue_unique`](super::Queue::enqueue_unique).
pub static ENQUEUE_UNIQUE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
-- enqueue_unique: add a job to the ready stream unless a job with the same idempotency key was
-- added while the key lived. The key remembers the first job's entry id until it expires.
-- KEYS[1] idempotency key  KEYS[2] ready stream
-- ARGV[1] stream field for the job  ARGV[2] encoded job  ARGV[3] time to live of the key (ms)
-- Returns {1, entry id} when the job was added, {0, entry id of the first job} when the key
-- was already taken (nothing is added then).
local first = redis.call('GET', KEYS[1])
if first then
  return {0, first}
end
local id = redis.call('XADD', KEYS[2], '*', ARGV[1], ARGV[2])
redis.call('SET', KEYS[1], id, 'PX', ARGV[3])
return {1, id}
"#,
    )
});
