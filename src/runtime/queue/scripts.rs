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
-- KEYS[1] delayed zset  KEYS[2] ready stream  KEYS[3] dead stream  KEYS[4] retrying zset
-- KEYS[5] high-priority stream  KEYS[6] low-priority stream
-- ARGV[1] now (ms)  ARGV[2] most jobs to move from each set (<= 1000)
-- Each member is a packed envelope: a MessagePack array of str, field name, value, ...; it
-- becomes the fields of one XADD, to the stream of its priority (field 'p': 'high' or 'low';
-- absent or anything else: the normal stream, KEYS[2]). A member that does not unpack into fields (written by hand,
-- or corrupt) goes to the dead stream as it is (field 'packed'), so it never blocks the others.
-- Returns the number of jobs moved to the ready stream. Jobs keep their order of due time.
local moved = 0
for _, set in ipairs({KEYS[1], KEYS[4]}) do
  local due = redis.call('ZRANGEBYSCORE', set, '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
  for _, member in ipairs(due) do
    local ok, fields = pcall(cmsgpack.unpack, member)
    local added = false
    if ok and type(fields) == 'table' and #fields >= 2 and #fields % 2 == 0 then
      local stream = KEYS[2]
      for i = 1, #fields, 2 do
        if fields[i] == 'p' then
          if fields[i + 1] == 'high' then stream = KEYS[5] elseif fields[i + 1] == 'low' then stream = KEYS[6] end
        end
      end
      local reply = redis.pcall('XADD', stream, '*', unpack(fields))
      added = type(reply) ~= 'table' or reply.err == nil
    end
    if added then
      moved = moved + 1
    else
      redis.call('XADD', KEYS[3], '*', 'packed', member, 'e', 'delayed member is not a packed envelope')
    end
  end
  if #due > 0 then
    redis.call('ZREM', set, unpack(due))
  end
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
-- in 'e', and its audit bit (field 's', on its own or packed in 'm') is set. An entry that
-- packs several jobs (version 2: 'v' 2 and field 'x') is split: each of its jobs becomes an entry of its
-- own, its id the entry's with '.' and its index, reclaimed once (those that had finished run
-- again: the worker acknowledges a packed entry once all its jobs are done).
-- A tracked job (its packed 'm' holds 'k', its retention) has its status hash updated too: back
-- to waiting, or dead with an event. Its hash is found by its id under ARGV[9]: in the queue's
-- hash tag, so in this slot (a key not in KEYS, but never of another slot). A job of an audited
-- batch ('b' in 'm') that dies here has its bit set in that batch's bitmap (ARGV[10] .. name).
-- Every priority's stream is scanned, each with its own cursor, and a job goes back to the
-- stream it came from; the high and low streams are passed over while they have no group.
-- KEYS[1] ready stream  KEYS[2] dead stream  KEYS[3] audit bitmap  KEYS[4] events stream
-- KEYS[5] high-priority stream  KEYS[6] low-priority stream
-- ARGV[1] group  ARGV[2] lease (ms)  ARGV[3] most entries  ARGV[4] reclaimer consumer name
-- ARGV[5] most reclaims per job  ARGV[6] cursor of the ready stream (stream id to scan from)
-- ARGV[7] '1' to audit
-- ARGV[8] what follows an entry id in a job id of this partition ('' or '@<partition>')
-- ARGV[9] the prefix of a tracked job's status hash  ARGV[10] the prefix of a batch's bitmap
-- ARGV[11] now (ms)  ARGV[12] events kept (approximate MAXLEN)
-- ARGV[13] ARGV[14] cursors of the high and low streams
-- ARGV[15] ARGV[16] what follows an entry id in a job id of the high and low streams
-- Returns {moved, dead, gone, next cursor, next high cursor, next low cursor}: gone counts
-- entries deleted while pending (their pending record is dropped by XAUTOCLAIM itself).
local moved, dead, gone = 0, 0, 0
-- One job taken back: to the dead letters past the most reclaims, else a new entry of 'stream'.
local function put_back(stream, kept, reclaims, seq, batch, status, keep, job_id, name_of)
  if reclaims > tonumber(ARGV[5]) then
    local why = 'lease expired ' .. reclaims .. ' times'
    kept[#kept + 1] = 'e'
    kept[#kept + 1] = why
    redis.call('XADD', KEYS[2], '*', unpack(kept))
    if seq and seq < 4294967296 and ARGV[7] == '1' then
      local bitmap = KEYS[3]
      if batch then bitmap = ARGV[10] .. batch end
      redis.call('SETBIT', bitmap, string.format('%.0f', seq), 1)
    end
    if status then
      redis.call('HSET', status, 'state', 'dead', 'reason', why, 'finished_at', ARGV[11])
      redis.call('PEXPIRE', status, keep)
      redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[12], '*', 'id', job_id, 'kind', 'dead', 'name', name_of,
        'attempt', redis.call('HGET', status, 'attempt') or '0', 'error', why, 'at', ARGV[11])
    end
    dead = dead + 1
  else
    redis.call('XADD', stream, '*', unpack(kept))
    if status and redis.call('HGET', status, 'state') == 'active' then
      redis.call('HSET', status, 'state', 'waiting')
      redis.call('HDEL', status, 'worker')
    end
    moved = moved + 1
  end
end
-- The jobs of a packed entry (version 2, field 'x'), each taken back as an entry of its own
-- with its id (the entry's id, '.', its index) and a reclaim count of 1; an 'x' that is not a
-- list of jobs goes to the dead letters as it is.
local function unpack_entry(stream, id, fields, packed, suffix, level)
  local ok, jobs = pcall(cmsgpack.unpack, packed)
  if not ok or type(jobs) ~= 'table' then
    local kept = {}
    for i = 1, #fields do kept[i] = fields[i] end
    kept[#kept + 1] = 'e'
    kept[#kept + 1] = 'packed jobs in field x do not read as a MessagePack array of jobs'
    redis.call('XADD', KEYS[2], '*', unpack(kept))
    dead = dead + 1
    return
  end
  for j, job in ipairs(jobs) do
    local kept, seq, batch = {}, nil, nil
    if type(job) == 'table' then
      for k = 1, #job - 1, 2 do
        local name, value = job[k], job[k + 1]
        if name == 's' then seq = tonumber(value) end
        if name == 'b' then batch = value end
        kept[#kept + 1] = name
        kept[#kept + 1] = value
      end
    end
    local job_id = id .. '.' .. (j - 1) .. suffix
    kept[#kept + 1] = 'id'
    kept[#kept + 1] = job_id
    if level ~= '' then
      kept[#kept + 1] = 'p'
      kept[#kept + 1] = level
    end
    kept[#kept + 1] = 'r'
    kept[#kept + 1] = '1'
    put_back(stream, kept, 1, seq, batch, nil, nil, job_id, '')
  end
end
local function reclaim(stream, cursor, suffix, optional, level)
local args = {'XAUTOCLAIM', stream, ARGV[1], ARGV[4], ARGV[2], cursor, 'COUNT', ARGV[3]}
local res
if optional then
  local ok, reply = pcall(redis.call, unpack(args))
  if not ok then return '0-0' end
  res = reply
else
  res = redis.call(unpack(args))
end
gone = gone + #res[3]
for _, entry in ipairs(res[2]) do
  local id, fields = entry[1], entry[2]
  local packed, version = nil, nil
  if fields then
    for i = 1, #fields, 2 do
      if fields[i] == 'x' then packed = fields[i + 1] end
      if fields[i] == 'v' then version = fields[i + 1] end
    end
  end
  if version ~= '2' then packed = nil end
  if packed then
    unpack_entry(stream, id, fields, packed, suffix, level)
  elseif fields then
    local kept, reclaims, seq, job_id, keep, batch, name_of = {}, 0, nil, nil, nil, nil, ''
    local function optional(name, value)
      if name == 's' then seq = tonumber(value) end
      if name == 'k' then keep = value end
      if name == 'b' then batch = value end
    end
    for i = 1, #fields, 2 do
      local name, value = fields[i], fields[i + 1]
      if name == 'r' then
        reclaims = tonumber(value) or 0
      else
        if name == 'id' then job_id = value end
        if name == 'n' then name_of = value end
        optional(name, value)
        if name == 'm' then
          -- The packed optional fields: a MessagePack array of str, name, value, ...
          local ok, more = pcall(cmsgpack.unpack, value)
          if ok and type(more) == 'table' then
            for j = 1, #more - 1, 2 do optional(more[j], more[j + 1]) end
          end
        end
        kept[#kept + 1] = name
        kept[#kept + 1] = value
      end
    end
    if not job_id then
      job_id = id .. suffix
      kept[#kept + 1] = 'id'
      kept[#kept + 1] = job_id
    end
    reclaims = reclaims + 1
    kept[#kept + 1] = 'r'
    kept[#kept + 1] = tostring(reclaims)
    local status = keep and (ARGV[9] .. job_id)
    put_back(stream, kept, reclaims, seq, batch, status, keep, job_id, name_of)
  end
  redis.call('XACK', stream, ARGV[1], id)
end
return res[1]
end
local next_normal = reclaim(KEYS[1], ARGV[6], ARGV[8], false, '')
local next_high = reclaim(KEYS[5], ARGV[13], ARGV[15], true, 'high')
local next_low = reclaim(KEYS[6], ARGV[14], ARGV[16], true, 'low')
return {moved, dead, gone, next_normal, next_high, next_low}
"#,
    )
});

/// Used by [`Queue::cancel`](super::Queue::cancel).
pub static CANCEL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
-- cancel: ask for a job to be cancelled. Its id goes to the cancelled set, which every worker
-- process reads; a tracked job's status says what that means for it.
-- KEYS[1] the job's status hash (absent: untracked, or not in this partition)
-- KEYS[2] cancelled zset  KEYS[3] events stream
-- ARGV[1] job id  ARGV[2] now (ms)  ARGV[3] retention of a cancelled status (ms)
-- ARGV[4] events kept (approximate MAXLEN)
-- Returns {'finished', state} when it had finished (nothing changes), {'running', state} when a
-- worker runs it (its token will trip), {'cancelled', state} when it was waiting or delayed
-- (it will not start), {'unknown', ''} when there is no status here.
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'completed' or state == 'dead' or state == 'cancelled' then
  return {'finished', state}
end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
if not state then
  return {'unknown', ''}
end
if state == 'active' then
  redis.call('HSET', KEYS[1], 'cancel_requested', ARGV[2])
  return {'running', state}
end
redis.call('HSET', KEYS[1], 'state', 'cancelled', 'finished_at', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
local name = redis.call('HGET', KEYS[1], 'name') or ''
local attempt = redis.call('HGET', KEYS[1], 'attempt') or '0'
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*', 'id', ARGV[1], 'kind', 'cancelled', 'name', name, 'attempt', attempt, 'at', ARGV[2])
return {'cancelled', state}
"#,
    )
});

/// Used by [`Queue::enqueue_jobs`](super::Queue::enqueue_jobs) for the batch's tracked jobs
/// that have ids of their own making: sent with its text (`EVAL`, cached by Redis after the
/// first) at the head of the batch's pipeline, before their entries.
pub const TRACK_ENQUEUE_SOURCE: &str = r#"
-- track_enqueue: the first status of tracked jobs just enqueued, in one call for the batch
-- (instead of an HSET and a PEXPIRE per job, and their replies): waiting, or delayed until its
-- due time, and its expiry while it is unfinished. No 'attempt' when it is 0 and no 'due_at'
-- when the job is ready now: a status without them says so.
-- KEYS[i] job i's status hash
-- ARGV[1] now (ms); then four per job i, from ARGV[2 + 4 * (i - 1)]: its job type's name, its
-- due time (ms; '' when ready now), its attempt, its expiry (ms from now).
-- Returns the number of statuses written.
local now = ARGV[1]
for i, key in ipairs(KEYS) do
  local at = 2 + 4 * (i - 1)
  local name, due, attempt, ttl = ARGV[at], ARGV[at + 1], ARGV[at + 2], ARGV[at + 3]
  if due == '' then
    redis.call('HSET', key, 'state', 'waiting', 'name', name, 'enqueued_at', now)
  else
    redis.call('HSET', key, 'state', 'delayed', 'name', name, 'enqueued_at', now, 'due_at', due)
  end
  if attempt ~= '0' then
    redis.call('HSET', key, 'attempt', attempt)
  end
  redis.call('PEXPIRE', key, ttl)
end
return #KEYS
"#;

/// Used by [`Queue::settle`](super::Queue::settle) for the batch's tracked jobs: sent with its
/// text (`EVAL`, cached by Redis after the first) inside the settle's `MULTI`, where a missing
/// script could not be loaded and sent again.
pub const TRACK_SETTLE_SOURCE: &str = r#"
-- track_settle: what a settle's tracked jobs become, each one's status hash and its expiry, in one
-- call for the batch (instead of an HSET and a PEXPIRE per job, and their replies).
-- KEYS[i] job i's status hash
-- ARGV[1] now (ms); then five per job i, from ARGV[2 + 5 * (i - 1)]: what it became ('c'
-- completed, 'r' completed with a result, 'f' failed and retrying, 'd' dead, 'x' cancelled), its
-- attempt (for 'f': the next one), its expiry (ms from now), its due time (ms; for 'f'), its text
-- (the result for 'r', the error for 'f', the reason for 'd'; else '').
-- Returns the number of statuses written.
local now = ARGV[1]
for i, key in ipairs(KEYS) do
  local at = 2 + 5 * (i - 1)
  local became, attempt, ttl, due, text = ARGV[at], ARGV[at + 1], ARGV[at + 2], ARGV[at + 3], ARGV[at + 4]
  if became == 'c' then
    redis.call('HSET', key, 'state', 'completed', 'finished_at', now, 'attempt', attempt)
  elseif became == 'r' then
    redis.call('HSET', key, 'state', 'completed', 'finished_at', now, 'attempt', attempt, 'result', text)
  elseif became == 'f' then
    redis.call('HSET', key, 'state', 'retrying', 'attempt', attempt, 'due_at', due, 'error', text)
    redis.call('HDEL', key, 'worker')
  elseif became == 'd' then
    redis.call('HSET', key, 'state', 'dead', 'reason', text, 'finished_at', now, 'attempt', attempt)
  else
    redis.call('HSET', key, 'state', 'cancelled', 'finished_at', now)
  end
  redis.call('PEXPIRE', key, ttl)
end
return #KEYS
"#;

/// Used by [`Queue::mark_active`](super::Queue::mark_active).
pub static MARK_ACTIVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
-- mark_active: tracked jobs a worker just claimed are active, unless they already finished (a
-- quick job's settle, sent on another connection, may arrive first) or were cancelled.
-- KEYS[i] job i's status hash
-- ARGV[1] worker (consumer name)  ARGV[2] now (ms)  ARGV[2 + i] job i's attempt
-- Returns one number per job: 1 when it was cancelled (the worker must not start it), else 0.
local out = {}
for i, key in ipairs(KEYS) do
  local state = redis.call('HGET', key, 'state')
  out[i] = 0
  if state == 'cancelled' then
    out[i] = 1
  elseif state and state ~= 'completed' and state ~= 'dead' then
    redis.call('HSET', key, 'state', 'active', 'worker', ARGV[1], 'started_at', ARGV[2], 'attempt', ARGV[2 + i])
  end
end
return out
"#,
    )
});

/// Used by [`Queue::purge`](super::Queue::purge) of waiting jobs.
pub static PURGE_WAITING: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
-- purge_waiting: remove every job no worker has been handed yet, and nothing else: the entries
-- after the group's last-delivered id (in one script, so no claim slips between the read and
-- the removal). Entries a worker holds stay.
-- KEYS[1..n] ready streams (one per priority)  ARGV[1] group
-- Returns how many entries were removed.
local removed = 0
for _, stream in ipairs(KEYS) do
  local ok, groups = pcall(redis.call, 'XINFO', 'GROUPS', stream)
  if ok then
    local from = '-'
    for _, group in ipairs(groups) do
      local fields = {}
      for i = 1, #group, 2 do fields[group[i]] = group[i + 1] end
      if fields['name'] == ARGV[1] then from = '(' .. fields['last-delivered-id'] end
    end
    while true do
      local entries = redis.call('XRANGE', stream, from, '+', 'COUNT', 1000)
      if #entries == 0 then break end
      local ids = {}
      for i, e in ipairs(entries) do ids[i] = e[1] end
      removed = removed + redis.call('XDEL', stream, unpack(ids))
      from = '(' .. ids[#ids]
    end
  end
end
return removed
"#,
    )
});

/// Used by [`Queue::purge`](super::Queue::purge) of delayed, retrying and dead jobs.
pub static PURGE_KEY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
-- purge_key: remove a sorted set of delayed or retrying jobs, or the dead-letter stream, and say
-- how many jobs it held (in one script: a job added meanwhile is counted or stays).
-- KEYS[1] the key
-- Returns how many jobs went.
local kind = redis.call('TYPE', KEYS[1])['ok']
local n = 0
if kind == 'zset' then n = redis.call('ZCARD', KEYS[1]) elseif kind == 'stream' then n = redis.call('XLEN', KEYS[1]) end
redis.call('DEL', KEYS[1])
return n
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
-- KEYS[1..n] ready streams (one per priority; one that does not exist is passed over)
-- ARGV[1] group
-- Returns the number of entries removed (0 from a stream or group that does not exist).
local function trim(stream)
  local ok, pending = pcall(redis.call, 'XPENDING', stream, ARGV[1])
  if not ok then return 0 end
  local keep_from = pending[2]
  if pending[1] == 0 then
    local delivered
    for _, group in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
      local fields = {}
      for i = 1, #group, 2 do fields[group[i]] = group[i + 1] end
      if fields['name'] == ARGV[1] then delivered = fields['last-delivered-id'] end
    end
    if not delivered then return 0 end
    local ms, seq = string.match(delivered, '^(%d+)-(%d+)$')
    if not ms then return 0 end
    keep_from = ms .. '-' .. string.format('%.0f', tonumber(seq) + 1)
  end
  return redis.call('XTRIM', stream, 'MINID', keep_from)
end
local removed = 0
for _, stream in ipairs(KEYS) do removed = removed + trim(stream) end
return removed
"#,
    )
});

/// Used by [`Queue::enqueue_jobs`](super::Queue::enqueue_jobs) for a job that is tracked or
/// under an idempotency key (a plain job is one `XADD`): sent by hash (`EVALSHA`) inside the
/// batch's pipeline; when Redis does not know the script, it is loaded and the jobs it refused are
/// sent again.
pub static ENQUEUE_JOB: LazyLock<Script> = LazyLock::new(|| Script::new(ENQUEUE_JOB_SOURCE));

/// The text of [`ENQUEUE_JOB`].
pub const ENQUEUE_JOB_SOURCE: &str = r#"
-- enqueue_job: add one job that is tracked, under an idempotency key, or both.
-- KEYS[1] ready stream  KEYS[2] delayed zset  KEYS[3] the job's status hash
-- KEYS[4] the idempotency key (unused without one)
-- ARGV[1] 'u' under an idempotency key, else ''  ARGV[2] the key's time to live (ms)
-- ARGV[3] 't' tracked, else ''  ARGV[4] how long (ms) the status hash lives while the job is unfinished
-- ARGV[5] due time (ms; 0: ready now)  ARGV[6] now (ms)  ARGV[7] the job type's name
-- ARGV[8] what follows an entry id in a job id of this partition ('' or '@<partition>')
-- ARGV[9] the job's id ('' for an untracked job ready now: its entry id will be its id)
-- ARGV[10] its packed envelope (delayed jobs; '' otherwise)  ARGV[11..] its fields (ready jobs)
-- Returns {1, id} when the job was added; {0, id} when not: the idempotency key still holds the
-- id of the first job, or a tracked job with this id exists.
if ARGV[1] == 'u' then
  local first = redis.call('GET', KEYS[4])
  if first then return {0, first} end
end
if ARGV[3] == 't' and redis.call('EXISTS', KEYS[3]) == 1 then
  return {0, ARGV[9]}
end
local id = ARGV[9]
local due = tonumber(ARGV[5])
if due > 0 then
  redis.call('ZADD', KEYS[2], due, ARGV[10])
else
  local entry = redis.call('XADD', KEYS[1], '*', unpack(ARGV, 11))
  if id == '' then id = entry .. ARGV[8] end
end
if ARGV[1] == 'u' then
  redis.call('SET', KEYS[4], id, 'PX', ARGV[2])
end
if ARGV[3] == 't' then
  -- No 'attempt' (0) and, ready now, no 'due_at': a status without them says so.
  if due > 0 then
    redis.call('HSET', KEYS[3], 'state', 'delayed', 'name', ARGV[7], 'enqueued_at', ARGV[6], 'due_at', due)
  else
    redis.call('HSET', KEYS[3], 'state', 'waiting', 'name', ARGV[7], 'enqueued_at', ARGV[6])
  end
  redis.call('PEXPIRE', KEYS[3], ARGV[4])
end
return {1, id}
"#;

/// Used by [`Queue::claim_planned`](super::Queue::claim_planned).
pub static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
-- claim: take up to ARGV[3] jobs from the ready streams of every priority in one step: each
-- level first up to its share (ARGV[4..6]), then what is left from the levels highest first, so
-- no slot goes unused while any level has work. Under a rate limit (ARGV[7] > 0) never more
-- jobs than the bucket holds: GCRA on Redis' clock (TIME, µs), the bucket being the time it
-- will be empty again (KEYS[4]); only jobs actually handed out take tokens. A stream of a level
-- that has no consumer group yet (its first job was just enqueued) gets one, from its start.
-- KEYS[1] high stream  KEYS[2] normal stream  KEYS[3] low stream  KEYS[4] bucket
-- ARGV[1] group  ARGV[2] consumer  ARGV[3] most jobs  ARGV[4] ARGV[5] ARGV[6] shares of high,
-- normal and low  ARGV[7] µs per job (0: no limit)  ARGV[8] burst (jobs)
-- Returns {wait, high entries, normal entries, low entries}, the entries as XREADGROUP gives
-- them ({id, {field, value, ...}}); wait (µs) > 0 when the limit held jobs back: how long until
-- the bucket has a token again.
local want = tonumber(ARGV[3])
local interval = tonumber(ARGV[7])
local now, tat, wait = 0, 0, 0
if interval > 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  tat = math.max(tonumber(redis.call('GET', KEYS[4]) or '0') or 0, now)
  local capacity = tonumber(ARGV[8]) * interval
  local tokens = math.floor((now + capacity - tat) / interval)
  if tokens < want then
    if tokens < 0 then tokens = 0 end
    want = tokens
    wait = math.max(1, tat + (tokens + 1) * interval - capacity - now)
  end
end
local got, taken = {{}, {}, {}}, 0
local function read(i, n)
  if n <= 0 then return end
  local args = {'XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', n, 'STREAMS', KEYS[i], '>'}
  local ok, reply = pcall(redis.call, unpack(args))
  if not ok then
    pcall(redis.call, 'XGROUP', 'CREATE', KEYS[i], ARGV[1], '0', 'MKSTREAM')
    reply = redis.call(unpack(args))
  end
  if reply then
    for _, entry in ipairs(reply[1][2]) do
      got[i][#got[i] + 1] = entry
      taken = taken + 1
    end
  end
end
for i = 1, 3 do read(i, math.min(tonumber(ARGV[3 + i]), want - taken)) end
for i = 1, 3 do read(i, want - taken) end
if interval > 0 and taken > 0 then
  tat = tat + taken * interval
  redis.call('SET', KEYS[4], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + 1000)
end
return {wait, got[1], got[2], got[3]}
"#,
    )
});
