//! The job as it travels through Redis: the fields of one stream entry. This is conveyor's wire
//! format, documented for producers in other languages in `docs/wire-format.md`; the names
//! below are the only place the field names are spelled.
//!
//! A ready job is one stream entry of few fields: the job type's name beside the payload (so
//! routing and metrics never decode the payload), then — when the job has any — its optional
//! fields packed together into one more field, `m`. Redis parses every field of an `XADD` and
//! writes every field of a claim's reply, so a job costs it three fields instead of eight; the
//! fields a worker or a script adds later (`id`, `r`) stand on their own. A producer in another
//! language may also write any optional field on its own: both read the same.
//!
//! Packed fields — the `m` field, and a whole job where it must be one string (a member of the
//! delayed sorted set) — are a MessagePack array of alternating names and values, every element
//! of the `str` type (Redis' Lua `cmsgpack` refuses `bin`), so scripts can unpack them.
//!
//! Compatibility: a worker ignores fields it does not know, so adding an optional field is not
//! a new version. An envelope without `v` is version 1; a change an older worker would misread
//! writes a higher `v`, and a worker refuses an envelope newer than its own: the job goes to the
//! dead letters with a reason that says so, where it can be retried once the workers are
//! upgraded.

use super::priority::Priority;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

/// The newest envelope version this build reads: 1 (one job per entry, written without `v`) and
/// 2 (several jobs packed into one entry, see [`pack_entry`]).
pub const VERSION: u32 = 2;

/// The version of an entry that packs several jobs ([`pack_entry`]).
pub const PACKED_VERSION: u32 = 2;

/// Most jobs one stream entry may pack.
pub const MAX_PACK: usize = 1024;

/// Sequence numbers stay below this: a Redis bitmap (the audit) holds 2^32 bits.
pub const SEQ_LIMIT: u64 = 1 << 32;

/// Longest job type name accepted, in bytes.
pub const MAX_NAME_BYTES: usize = 256;

/// The field names of the wire format.
pub mod field {
    /// Envelope version (decimal); optional: absent is version 1.
    pub const VERSION: &str = "v";
    /// Job type name (UTF-8); required.
    pub const NAME: &str = "n";
    /// Payload: opaque bytes, decoded by the job type's handler (JSON for serde types); required.
    pub const PAYLOAD: &str = "d";
    /// More: the optional fields below from `t` to `to`, packed into one value.
    pub const MORE: &str = "m";
    /// When the job was enqueued, µs since the Unix epoch; a paced producer stamps the time it
    /// *meant* to send it. Optional: the entry id's millisecond time stands in.
    pub const ENQUEUED: &str = "t";
    /// Audit sequence number below 2^32 (benchmark runs and audited batches); optional.
    pub const SEQ: &str = "s";
    /// Headers: opaque bytes the producer attaches and conveyor carries unchanged; optional.
    pub const HEADERS: &str = "h";
    /// Attempt, 0 for the first run; optional (0).
    pub const ATTEMPT: &str = "a";
    /// Runs allowed before the job is dead; optional (the queue's `max_attempts`).
    pub const MAX_ATTEMPTS: &str = "ma";
    /// Longest a run may take, ms; optional (no limit but the lease).
    pub const TIMEOUT: &str = "to";
    /// Not started after this time (ms since the epoch): dead instead; optional.
    pub const DEADLINE: &str = "dl";
    /// Tracked: its status is kept in a hash of its own, for this long (ms) after it finished;
    /// optional (untracked).
    pub const KEEP: &str = "k";
    /// The audited batch it belongs to (its `s` is a bit of that batch's bitmap); optional (the
    /// queue's own audit).
    pub const BATCH: &str = "b";
    /// The job's id when it is not this entry's id (a retry, a reclaim, a delayed job); optional,
    /// always a field of its own.
    pub const ID: &str = "id";
    /// Times the job was taken back from a worker that stopped renewing its lease; optional (0),
    /// always a field of its own (the reclaim script counts it).
    pub const RECLAIMS: &str = "r";
    /// Priority: `high` or `low` (which ready stream it goes back to after a delay, a retry or
    /// a reclaim); optional (normal), always a field of its own.
    pub const PRIORITY: &str = "p";
    /// Dead letters only: why the job died.
    pub const REASON: &str = "e";
    /// Version 2 entries only: the jobs packed into the entry, a MessagePack array of jobs, each
    /// a MessagePack array of `str`: name, value, name, value, ... (the fields of one job).
    pub const JOBS: &str = "x";
}

/// A stream entry's fields as Redis gives them: `(name, value)`, in order.
pub type Fields = Vec<(Vec<u8>, Vec<u8>)>;

/// The optional fields of a job that may be packed: the numbers, the byte values, how many are set.
type OptionalFields<'a> = ([(&'static str, Option<u64>); 7], [(&'static str, Option<&'a [u8]>); 2], usize);

/// One job's fields borrowed from the bytes that hold them: `(name, value)`, in order.
pub type FieldSlices<'a> = Vec<(&'a [u8], &'a [u8])>;

/// One job as conveyor stores it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Envelope {
    /// The job type: which handler runs it.
    pub name: String,
    /// The handler's input, as the producer encoded it.
    pub payload: Vec<u8>,
    /// When the job was (meant to be) enqueued, µs since the epoch; `None`: see the entry id.
    pub enqueued_us: Option<u64>,
    /// Audit sequence number: the bit settling the job sets (benchmarks, audited batches).
    pub seq: Option<u32>,
    /// Application data carried with the job, never read by conveyor (shared: the handler's
    /// context and a retry's envelope hold the same bytes).
    pub headers: Option<Arc<[u8]>>,
    /// 0 for the first run; each retry adds one.
    pub attempt: u16,
    /// Runs allowed; `None`: the queue's setting.
    pub max_attempts: Option<u16>,
    /// Longest one run may take, in ms; `None`: no limit.
    pub timeout_ms: Option<u64>,
    /// The job's id when it is not the id of the entry that holds it.
    pub id: Option<String>,
    /// Times the job was reclaimed from a stalled or dead worker.
    pub reclaims: u32,
    /// Not to be started after this time (ms since the epoch).
    pub deadline_ms: Option<u64>,
    /// Tracked: how long (ms) its status is kept after it finished; `None`: untracked.
    pub keep_ms: Option<u64>,
    /// The audited batch its sequence number belongs to; `None`: the queue's own audit.
    pub batch: Option<String>,
    /// Which of the queue's ready streams it waits in.
    pub priority: Priority,
}

/// Why stored fields are not a job this worker can run (a poison entry).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A required field is absent.
    #[error("entry has no \"{0}\" field (not a conveyor job, or written before envelope version 1)")]
    Missing(&'static str),
    /// A field's value is not what the format says.
    #[error("field \"{field}\": expected {expected}")]
    Malformed {
        /// The field.
        field: &'static str,
        /// What the format says it holds.
        expected: &'static str,
    },
    /// Written by a newer conveyor than this worker.
    #[error(
        "envelope version {0} is newer than this worker reads ({VERSION}); upgrade the worker, then retry the dead letter"
    )]
    NewerVersion(u32),
    /// Packed fields that are not a MessagePack array of strings.
    #[error("packed fields: {0}")]
    Packed(&'static str),
}

impl Envelope {
    /// A first attempt of job type `name` with `payload` and nothing else set.
    pub fn new(name: impl Into<String>, payload: impl Into<Vec<u8>>) -> Self {
        Self { name: name.into(), payload: payload.into(), ..Self::default() }
    }

    /// The optional fields that may be packed, numbers and bytes, each `None` when unset, and
    /// how many are set.
    fn optional_fields(&self) -> OptionalFields<'_> {
        let ints = [
            (field::ENQUEUED, self.enqueued_us),
            (field::SEQ, self.seq.map(u64::from)),
            (field::ATTEMPT, (self.attempt > 0).then_some(u64::from(self.attempt))),
            (field::MAX_ATTEMPTS, self.max_attempts.map(u64::from)),
            (field::TIMEOUT, self.timeout_ms),
            (field::DEADLINE, self.deadline_ms),
            (field::KEEP, self.keep_ms),
        ];
        let bytes =
            [(field::HEADERS, self.headers.as_deref()), (field::BATCH, self.batch.as_deref().map(str::as_bytes))];
        let set = ints.iter().filter(|(_, v)| v.is_some()).count() + bytes.iter().filter(|(_, v)| v.is_some()).count();
        (ints, bytes, set)
    }

    /// The optional fields and the payload packed as the value of `m` (see [`pack_fields`]),
    /// written straight into one buffer; `None` when the job has no optional field (the payload
    /// then travels as `d`).
    fn packed_more(&self) -> Option<Vec<u8>> {
        let (ints, bytes, set) = self.optional_fields();
        if set == 0 {
            return None;
        }
        let mut out = Vec::with_capacity(16 + set * 24 + self.payload.len());
        let put = |out: &mut Vec<u8>, s: &[u8]| {
            rmp::encode::write_str_len(out, s.len() as u32).expect("writing to a Vec cannot fail");
            out.extend_from_slice(s);
        };
        rmp::encode::write_array_len(&mut out, ((set + 1) * 2) as u32).expect("writing to a Vec cannot fail");
        let mut digits = [0u8; 20];
        for (name, value) in ints {
            if let Some(n) = value {
                put(&mut out, name.as_bytes());
                put(&mut out, decimal(n, &mut digits));
            }
        }
        for (name, value) in bytes {
            if let Some(v) = value {
                put(&mut out, name.as_bytes());
                put(&mut out, v);
            }
        }
        put(&mut out, field::PAYLOAD.as_bytes());
        put(&mut out, &self.payload);
        Some(out)
    }

    /// Every field to write, as `(name, value)` in wire order: `n`, then `d` on its own or —
    /// when the job has optional fields — packed last into `m` with them (two fields in all,
    /// not three), then `id`, `r` when set.
    pub fn fields(&self) -> Vec<(&'static str, FieldValue<'_>)> {
        let mut f = Vec::with_capacity(4);
        f.push((field::NAME, FieldValue::Bytes(self.name.as_bytes())));
        match self.packed_more() {
            None => f.push((field::PAYLOAD, FieldValue::Bytes(&self.payload))),
            Some(more) => f.push((field::MORE, FieldValue::Owned(more))),
        }
        if let Some(id) = &self.id {
            f.push((field::ID, FieldValue::Bytes(id.as_bytes())));
        }
        if self.priority != Priority::Normal {
            f.push((field::PRIORITY, FieldValue::Bytes(self.priority.name().as_bytes())));
        }
        if self.reclaims > 0 {
            f.push((field::RECLAIMS, FieldValue::Owned(self.reclaims.to_string().into_bytes())));
        }
        f
    }

    /// Appends the fields to a command (after `XADD key *`).
    pub fn write_to(&self, cmd: &mut redis::Cmd) {
        for (name, value) in self.fields() {
            cmd.arg(name).arg(value.as_bytes());
        }
    }

    /// Appends the fields to the last command of a pipeline (after `XADD key *`).
    pub fn write_to_pipe(&self, pipe: &mut redis::Pipeline) {
        for (name, value) in self.fields() {
            pipe.arg(name).arg(value.as_bytes());
        }
    }

    /// Reads a job from an entry's fields. Fields this version does not know are ignored. The
    /// byte values (name, payload, headers, id) are moved out of `fields` only when the whole
    /// entry decodes; on an error `fields` is left as it was.
    pub fn from_fields(fields: &mut [(Vec<u8>, Vec<u8>)]) -> Result<Self, DecodeError> {
        let found = scan(fields.iter().map(|(k, v)| (k.as_slice(), v.as_slice())))?;
        let headers = found.headers.as_ref().map(|s| Arc::from(s.of(&fields[s.field].1)));
        Ok(found.into_job(headers, |slot| match &slot.within {
            Some(r) => fields[slot.field].1[r.clone()].to_vec(),
            None => std::mem::take(&mut fields[slot.field].1),
        }))
    }

    /// Reads a job from an entry's fields as borrowed slices (of a reply's bytes), copying the
    /// values it keeps.
    pub fn from_slices(fields: &[(&[u8], &[u8])]) -> Result<Self, DecodeError> {
        let found = scan(fields.iter().copied())?;
        let headers = found.headers.as_ref().map(|s| Arc::from(s.of(fields[s.field].1)));
        Ok(found.into_job(headers, |slot| slot.of(fields[slot.field].1).to_vec()))
    }

    /// The job's wire fields packed into one string (a delayed job's sorted-set member).
    pub fn pack(&self) -> Vec<u8> {
        let fields = self.fields();
        pack_fields(fields.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())))
    }

    /// Reads a packed job (see [`Envelope::pack`]).
    pub fn unpack(bytes: &[u8]) -> Result<Self, DecodeError> {
        Self::from_fields(&mut unpack_fields(bytes)?)
    }
}

/// A field value as it goes on the wire.
#[derive(Debug, Clone)]
pub enum FieldValue<'a> {
    /// Borrowed from the envelope.
    Bytes(&'a [u8]),
    /// Made for the wire (packed fields, a number as text).
    Owned(Vec<u8>),
}

impl FieldValue<'_> {
    /// The value's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            FieldValue::Bytes(b) => b,
            FieldValue::Owned(v) => v,
        }
    }
}

/// Where a byte value is: a whole field, or a part of one (a value inside the packed `m`).
struct Slot {
    field: usize,
    within: Option<Range<usize>>,
}

impl Slot {
    /// Its bytes within its field's value.
    fn of<'a>(&self, value: &'a [u8]) -> &'a [u8] {
        match &self.within {
            Some(r) => &value[r.clone()],
            None => value,
        }
    }
}

/// What a pass over an entry's fields found: every number decoded, and where each byte value
/// is (taken only once the whole entry is known to decode).
struct Found {
    job: Envelope,
    name: Slot,
    payload: Slot,
    headers: Option<Slot>,
    batch: Option<Slot>,
    id: Option<Slot>,
}

impl Found {
    fn into_job(self, headers: Option<Arc<[u8]>>, mut take: impl FnMut(&Slot) -> Vec<u8>) -> Envelope {
        let mut job = self.job;
        job.headers = headers;
        // Parts of `m` first: `m` itself is never taken whole.
        job.batch = self.batch.as_ref().map(|s| String::from_utf8(take(s)).expect("checked by scan"));
        job.name = String::from_utf8(take(&self.name)).expect("checked by scan");
        job.payload = take(&self.payload);
        job.id = self.id.as_ref().map(|s| String::from_utf8(take(s)).expect("checked by scan"));
        job
    }
}

/// Checks an entry's fields (and those packed in its `m`) and decodes its numbers.
fn scan<'a>(fields: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> Result<Found, DecodeError> {
    let mut job = Envelope::default();
    let (mut version, mut name, mut payload, mut id) = (None, None, None, None);
    let (mut headers, mut batch) = (None, None);
    for (i, (key, value)) in fields.enumerate() {
        match key {
            b"v" => version = Some(int(field::VERSION, value)?),
            b"n" => {
                if std::str::from_utf8(value).is_err() {
                    return Err(malformed(field::NAME, "UTF-8 text"));
                }
                if value.is_empty() || value.len() > MAX_NAME_BYTES {
                    return Err(malformed(field::NAME, "a name of 1 to 256 bytes"));
                }
                name = Some(Slot { field: i, within: None });
            }
            b"d" => payload = Some(Slot { field: i, within: None }),
            b"m" => {
                for pair in Packed::new(value)? {
                    let (k, v) = pair?;
                    let slot = Slot { field: i, within: Some(v.clone()) };
                    match optional(&mut job, &value[k], &value[v])? {
                        Some(Bytes::Headers) => headers = Some(slot),
                        Some(Bytes::Batch) => batch = Some(slot),
                        Some(Bytes::Payload) => payload = Some(slot),
                        None => {}
                    }
                }
            }
            b"id" => {
                std::str::from_utf8(value).map_err(|_| malformed(field::ID, "UTF-8 text"))?;
                id = Some(Slot { field: i, within: None });
            }
            b"r" => job.reclaims = u32::try_from(int(field::RECLAIMS, value)?).unwrap_or(u32::MAX),
            other => match optional(&mut job, other, value)? {
                Some(Bytes::Headers) => headers = Some(Slot { field: i, within: None }),
                Some(Bytes::Batch) => batch = Some(Slot { field: i, within: None }),
                Some(Bytes::Payload) | None => {}
            },
        }
    }
    let version = match version {
        None => VERSION,
        Some(v) => u32::try_from(v).unwrap_or(u32::MAX),
    };
    if version > VERSION {
        return Err(DecodeError::NewerVersion(version));
    }
    if version == 0 {
        return Err(malformed(field::VERSION, "a version from 1"));
    }
    let name = name.ok_or(DecodeError::Missing(field::NAME))?;
    let payload = payload.ok_or(DecodeError::Missing(field::PAYLOAD))?;
    Ok(Found { job, name, payload, headers, batch, id })
}

/// Which byte value an optional field is (taken later, from where it was found).
enum Bytes {
    Headers,
    Batch,
    /// `d` inside `m` (where conveyor puts it when a job has optional fields).
    Payload,
}

/// Decodes one of the optional fields that may also travel in `m` into `job`; for a byte value,
/// says which it is. Other names are ignored.
fn optional(job: &mut Envelope, key: &[u8], value: &[u8]) -> Result<Option<Bytes>, DecodeError> {
    match key {
        b"t" => job.enqueued_us = Some(int(field::ENQUEUED, value)?),
        b"s" => {
            let s = int(field::SEQ, value)?;
            job.seq = Some(u32::try_from(s).map_err(|_| malformed(field::SEQ, "a number below 2^32"))?);
        }
        b"h" => return Ok(Some(Bytes::Headers)),
        b"d" => return Ok(Some(Bytes::Payload)),
        b"b" => {
            std::str::from_utf8(value).map_err(|_| malformed(field::BATCH, "UTF-8 text"))?;
            return Ok(Some(Bytes::Batch));
        }
        b"dl" => job.deadline_ms = Some(int(field::DEADLINE, value)?),
        b"k" => job.keep_ms = Some(int(field::KEEP, value)?),
        b"a" => job.attempt = small(field::ATTEMPT, value)?,
        b"ma" => job.max_attempts = Some(small(field::MAX_ATTEMPTS, value)?.max(1)),
        b"to" => job.timeout_ms = Some(int(field::TIMEOUT, value)?),
        b"p" => {
            job.priority = Priority::parse(value).ok_or_else(|| malformed(field::PRIORITY, "high, normal or low"))?
        }
        _ => {}
    }
    Ok(None)
}

/// The `(name, value)` pairs of packed fields, as ranges of the packed bytes: no copy.
struct Packed<'a> {
    bytes: &'a [u8],
    pos: usize,
    pairs_left: usize,
}

impl<'a> Packed<'a> {
    fn new(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let (n, pos) = match bytes.first() {
            Some(&b @ 0x90..=0x9f) => (usize::from(b & 0x0f), 1),
            Some(0xdc) => (be(bytes, 1, 2)?, 3),
            Some(0xdd) => (be(bytes, 1, 4)?, 5),
            _ => return Err(DecodeError::Packed("expected a MessagePack array")),
        };
        if !n.is_multiple_of(2) {
            return Err(DecodeError::Packed("expected an even number of elements (name, value, ...)"));
        }
        Ok(Self { bytes, pos, pairs_left: n / 2 })
    }

    /// Where the array ends once every pair has been read.
    fn end(&self) -> usize {
        self.pos
    }

    fn string(&mut self) -> Result<Range<usize>, DecodeError> {
        let (len, header) = match self.bytes.get(self.pos) {
            Some(&b @ 0xa0..=0xbf) => (usize::from(b & 0x1f), 1),
            Some(0xd9) => (be(self.bytes, self.pos + 1, 1)?, 2),
            Some(0xda) => (be(self.bytes, self.pos + 1, 2)?, 3),
            Some(0xdb) => (be(self.bytes, self.pos + 1, 4)?, 5),
            _ => return Err(DecodeError::Packed("expected str elements")),
        };
        let start = self.pos + header;
        let end = start.checked_add(len).filter(|&e| e <= self.bytes.len()).ok_or(DecodeError::Packed("truncated"))?;
        self.pos = end;
        Ok(start..end)
    }
}

impl Iterator for Packed<'_> {
    type Item = Result<(Range<usize>, Range<usize>), DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pairs_left == 0 {
            return None;
        }
        self.pairs_left -= 1;
        Some(self.string().and_then(|k| Ok((k, self.string()?))))
    }
}

/// The big-endian number of `width` bytes at `at`.
fn be(bytes: &[u8], at: usize, width: usize) -> Result<usize, DecodeError> {
    let b = bytes.get(at..at + width).ok_or(DecodeError::Packed("truncated"))?;
    Ok(b.iter().fold(0usize, |n, &x| (n << 8) | usize::from(x)))
}

/// Writes the value of [`field::JOBS`] for `jobs` (at most [`MAX_PACK`] of one priority, with
/// no id of their own: a packed job's id is its entry's, with its index, see
/// [`JobId::of_packed`]): a MessagePack array holding, per job, the array of `str` of its
/// fields — `n`, the optional fields among `t` to `b`, then `d` — written straight into one
/// buffer. The entry is `v 2 x <this>`.
pub fn pack_entry<'a>(jobs: impl ExactSizeIterator<Item = &'a Envelope>, out: &mut Vec<u8>) {
    let w = "writing to a Vec cannot fail";
    rmp::encode::write_array_len(out, jobs.len() as u32).expect(w);
    let put = |out: &mut Vec<u8>, s: &[u8]| {
        rmp::encode::write_str_len(out, s.len() as u32).expect(w);
        out.extend_from_slice(s);
    };
    let mut digits = [0u8; 20];
    for job in jobs {
        let (ints, bytes, set) = job.optional_fields();
        out.reserve(16 + set * 24 + job.name.len() + job.payload.len());
        rmp::encode::write_array_len(out, ((set + 2) * 2) as u32).expect(w);
        put(out, field::NAME.as_bytes());
        put(out, job.name.as_bytes());
        for (name, value) in ints {
            if let Some(n) = value {
                put(out, name.as_bytes());
                put(out, decimal(n, &mut digits));
            }
        }
        for (name, value) in bytes {
            if let Some(v) = value {
                put(out, name.as_bytes());
                put(out, v);
            }
        }
        put(out, field::PAYLOAD.as_bytes());
        put(out, &job.payload);
    }
}

/// The jobs of a version 2 entry's [`field::JOBS`] value, each as the `(name, value)` pairs of
/// its fields (borrowed), in order: `Ok` per job whose array reads, or the error that stops the
/// reading (a value that is not such an array: nothing after it can be found).
pub fn packed_jobs(bytes: &[u8]) -> Result<Vec<FieldSlices<'_>>, DecodeError> {
    let (n, mut pos) = match bytes.first() {
        Some(&b @ 0x90..=0x9f) => (usize::from(b & 0x0f), 1),
        Some(0xdc) => (be(bytes, 1, 2)?, 3),
        Some(0xdd) => (be(bytes, 1, 4)?, 5),
        _ => return Err(DecodeError::Packed("field \"x\": expected a MessagePack array of jobs")),
    };
    if n == 0 || n > MAX_PACK {
        return Err(DecodeError::Packed("field \"x\": expected 1 to 1024 jobs"));
    }
    let mut jobs = Vec::with_capacity(n);
    for _ in 0..n {
        let rest = bytes.get(pos..).ok_or(DecodeError::Packed("truncated"))?;
        let mut packed = Packed::new(rest)?;
        let mut fields = Vec::with_capacity(packed.pairs_left);
        for pair in packed.by_ref() {
            let (k, v) = pair?;
            fields.push((&rest[k], &rest[v]));
        }
        pos += packed.end();
        jobs.push(fields);
    }
    Ok(jobs)
}

/// Whether an entry's fields are a version 2 entry of packed jobs (`v 2` and an `x`): its
/// [`field::JOBS`] value.
pub fn packed_value<'a>(fields: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) -> Option<&'a [u8]> {
    let (mut version, mut jobs) = (false, None);
    for (k, v) in fields {
        match k {
            b"v" => version = v == b"2",
            b"x" => jobs = Some(v),
            _ => {}
        }
    }
    jobs.filter(|_| version)
}

/// Packs `(name, value)` pairs as a MessagePack array of `str` elements: name, value, name, ...
pub fn pack_fields<'a>(pairs: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> Vec<u8> {
    let pairs: Vec<_> = pairs.collect();
    let mut out = Vec::with_capacity(8 + pairs.iter().map(|(k, v)| k.len() + v.len() + 4).sum::<usize>());
    rmp::encode::write_array_len(&mut out, (pairs.len() * 2) as u32).expect("writing to a Vec cannot fail");
    for (k, v) in &pairs {
        for part in [*k, *v] {
            rmp::encode::write_str_len(&mut out, part.len() as u32).expect("writing to a Vec cannot fail");
            out.extend_from_slice(part);
        }
    }
    out
}

/// The `(name, value)` pairs of packed fields.
pub fn unpack_fields(bytes: &[u8]) -> Result<Fields, DecodeError> {
    Packed::new(bytes)?.map(|pair| pair.map(|(k, v)| (bytes[k].to_vec(), bytes[v].to_vec()))).collect()
}

/// `n` in decimal, in `buf`.
fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

fn malformed(field: &'static str, expected: &'static str) -> DecodeError {
    DecodeError::Malformed { field, expected }
}

fn int(field: &'static str, value: &[u8]) -> Result<u64, DecodeError> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or(malformed(field, "a whole number in decimal"))
}

fn small(field: &'static str, value: &[u8]) -> Result<u16, DecodeError> {
    u16::try_from(int(field, value)?).map_err(|_| malformed(field, "a whole number below 65536"))
}

/// A job's id: the stream entry id of its first run (`1733080000000-0`, with `@p` for a
/// partition p > 0 of a partitioned queue), or the id conveyor made when the job could not have
/// an entry yet (a delayed job), carried in the envelope from then on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct JobId(String);

impl JobId {
    /// The id of the job first held by entry `entry_id` of partition `partition`.
    pub fn of_entry(entry_id: &str, partition: u16) -> Self {
        Self::of_entry_at(entry_id, partition, Priority::Normal)
    }

    /// [`JobId::of_entry`], taking the entry id's string (no copy in partition 0).
    pub fn from_entry(mut entry_id: String, partition: u16) -> Self {
        if partition > 0 {
            entry_id.push_str(&Self::suffix(partition));
        }
        Self(entry_id)
    }

    /// A new id for a job that has no entry yet: a UUID v7 (time-ordered, random below).
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }

    /// An id conveyor stored (read back from Redis), taken as it is.
    pub(crate) fn from_string(id: String) -> Self {
        Self(id)
    }

    /// What follows the entry id in the id of a job of partition `p` (nothing for 0).
    pub(crate) fn suffix(p: u16) -> String {
        if p == 0 { String::new() } else { format!("@{p}") }
    }

    /// What follows an entry id in the id of a job of priority `priority` in partition `p`: as
    /// [`JobId::suffix`] for normal jobs, `@<p>/high` or `@<p>/low` for the others.
    pub(crate) fn suffix_at(p: u16, priority: Priority) -> String {
        match priority {
            Priority::Normal => Self::suffix(p),
            other => format!("@{p}/{}", other.name()),
        }
    }

    /// The id of the job in entry `entry_id` of partition `partition`'s stream of `priority`.
    pub fn of_entry_at(entry_id: &str, partition: u16, priority: Priority) -> Self {
        Self::made(entry_id, None, partition, priority)
    }

    /// `entry_id`, `.index` for a packed job, then where the entry is (see
    /// [`JobId::suffix_at`]), written into one string (every job makes one: no `format!`).
    fn made(entry_id: &str, index: Option<u16>, partition: u16, priority: Priority) -> Self {
        let mut id = String::with_capacity(entry_id.len() + 16);
        id.push_str(entry_id);
        let mut digits = [0u8; 20];
        let mut number = |id: &mut String, n: u64| {
            id.push_str(std::str::from_utf8(decimal(n, &mut digits)).expect("digits are ASCII"))
        };
        if let Some(index) = index {
            id.push('.');
            number(&mut id, u64::from(index));
        }
        if partition > 0 || priority != Priority::Normal {
            id.push('@');
            number(&mut id, u64::from(partition));
            if priority != Priority::Normal {
                id.push('/');
                id.push_str(priority.name());
            }
        }
        Self(id)
    }

    /// The id of job `index` of the packed entry `entry_id` of partition `partition`'s stream of
    /// `priority`: the entry's id with `.index` (`1733080000000-0.7`, `1733080000000-0.7@2`).
    pub fn of_packed(entry_id: &str, index: u16, partition: u16, priority: Priority) -> Self {
        Self::made(entry_id, Some(index), partition, priority)
    }

    /// The id of a claimed job: the one it carries (`explicit`: retried, reclaimed, delayed),
    /// else the id its place makes — job `index` of a packing entry, or the entry's own.
    pub(crate) fn of_claimed(
        explicit: Option<&str>,
        entry_id: &str,
        index: Option<u16>,
        partition: u16,
        priority: Priority,
    ) -> Self {
        match explicit {
            Some(id) => Self(id.to_owned()),
            None => Self::made(entry_id, index, partition, priority),
        }
    }

    /// Where a job id made from an entry says its entry is: the entry id, its partition and
    /// priority; `None` for an id of any other kind. (A packed job's id names its entry too:
    /// see [`JobId::packed_index`] for its place in it.)
    pub fn entry_place(&self) -> Option<(&str, u16, Priority)> {
        entry_place_of(&self.0)
    }

    /// When the entry an id made from an entry names was added (ms since the epoch: the time
    /// part of its entry id); `None` for an id of any other kind — one a producer chose, a
    /// delayed job's UUID — which says nothing of a time.
    pub fn entry_ms(id: &str) -> Option<u64> {
        entry_place_of(id)?.0.split_once('-')?.0.parse().ok()
    }

    /// The index of a packed job in its entry (see [`JobId::of_packed`]); `None` for an id of
    /// any other kind.
    pub fn packed_index(&self) -> Option<u16> {
        self.entry_place()?;
        let entry = self.0.split_once('@').map_or(self.0.as_str(), |(e, _)| e);
        entry.split_once('.')?.1.parse().ok()
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// An id as the user gave it: any text of 1 to 256 bytes.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() || text.len() > 256 {
            return Err(format!("expected a job id of 1 to 256 bytes, got {} bytes", text.len()));
        }
        Ok(Self(text.to_owned()))
    }
}

/// Where a job id made from an entry says its entry is (see [`JobId::entry_place`]).
fn entry_place_of(id: &str) -> Option<(&str, u16, Priority)> {
    let (entry, place) = match id.split_once('@') {
        Some((entry, place)) => (entry, Some(place)),
        None => (id, None),
    };
    let entry = match entry.split_once('.') {
        Some((entry, index)) if index.parse::<u16>().is_ok() => entry,
        Some(_) => return None,
        None => entry,
    };
    let (a, b) = entry.split_once('-')?;
    if a.parse::<u64>().is_err() || b.parse::<u64>().is_err() {
        return None;
    }
    let Some(place) = place else { return Some((entry, 0, Priority::Normal)) };
    let (p, priority) = match place.split_once('/') {
        Some((p, level)) => (p, Priority::parse(level.as_bytes())?),
        None => (place, Priority::Normal),
    };
    Some((entry, p.parse().ok()?, priority))
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<JobId> for String {
    fn from(id: JobId) -> String {
        id.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> Envelope {
        Envelope {
            name: "email.send".into(),
            payload: br#"{"to":"a@b.c"}"#.to_vec(),
            enqueued_us: Some(1_733_080_000_000_123),
            seq: Some(42),
            headers: Some(vec![0, 159, 146, 150].into()),
            attempt: 2,
            max_attempts: Some(5),
            timeout_ms: Some(30_000),
            id: Some("1733080000000-0".into()),
            reclaims: 1,
            deadline_ms: Some(1_733_080_060_000),
            keep_ms: Some(86_400_000),
            batch: Some("import-7".into()),
            priority: Priority::High,
        }
    }

    fn as_pairs(e: &Envelope) -> Fields {
        e.fields().into_iter().map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec())).collect()
    }

    fn pairs(list: &[(&str, &[u8])]) -> Fields {
        list.iter().map(|(k, v)| (k.as_bytes().to_vec(), v.to_vec())).collect()
    }

    fn decode(pairs: &[(Vec<u8>, Vec<u8>)]) -> Result<Envelope, DecodeError> {
        let mut fields = pairs.to_vec();
        let decoded = Envelope::from_fields(&mut fields);
        if decoded.is_err() {
            assert_eq!(fields, pairs, "a failed decode leaves the fields as they were");
        }
        let borrowed: Vec<(&[u8], &[u8])> = pairs.iter().map(|(k, v)| (k.as_slice(), v.as_slice())).collect();
        assert_eq!(Envelope::from_slices(&borrowed), decoded, "owned and borrowed fields decode alike");
        decoded
    }

    #[test]
    fn every_field_round_trips_through_entry_fields_and_the_packed_form() {
        for e in [full(), Envelope::new("noop", Vec::new()), Envelope { headers: Some(Vec::new().into()), ..full() }] {
            assert_eq!(decode(&as_pairs(&e)).unwrap(), e);
            assert_eq!(Envelope::unpack(&e.pack()).unwrap(), e);
        }
    }

    #[test]
    fn a_job_is_name_payload_and_its_optional_fields_packed_in_one_more() {
        let names =
            |e: &Envelope| as_pairs(e).into_iter().map(|(k, _)| String::from_utf8(k).unwrap()).collect::<Vec<_>>();
        assert_eq!(names(&Envelope::new("email.send", b"{}".to_vec())), ["n", "d"]);
        let stamped = Envelope {
            enqueued_us: Some(5),
            seq: Some(7),
            headers: Some(b"h".to_vec().into()),
            ..Envelope::new("x", b"".to_vec())
        };
        assert_eq!(names(&stamped), ["n", "m"], "the payload travels in m with the optional fields");
        assert_eq!(names(&full()), ["n", "m", "id", "p", "r"], "id, p and r stand on their own");
    }

    #[test]
    fn optional_fields_read_the_same_on_their_own_or_packed() {
        let own = pairs(&[
            ("n", b"x"),
            ("d", b""),
            ("t", b"5"),
            ("s", b"7"),
            ("h", b"\x00\xff"),
            ("a", b"1"),
            ("ma", b"2"),
            ("to", b"9"),
        ]);
        let packed = pack_fields(
            [("t", &b"5"[..]), ("s", b"7"), ("h", b"\x00\xff"), ("a", b"1"), ("ma", b"2"), ("to", b"9")]
                .iter()
                .map(|(k, v)| (k.as_bytes(), *v)),
        );
        let inside = pairs(&[("n", b"x"), ("d", b""), ("m", &packed)]);
        assert_eq!(decode(&own).unwrap(), decode(&inside).unwrap());
        assert_eq!(decode(&inside).unwrap().headers.as_deref(), Some(&b"\x00\xff"[..]));
    }

    #[test]
    fn unknown_fields_are_ignored_and_a_newer_version_is_refused_by_name() {
        let mut fields = as_pairs(&full());
        fields.push((b"zz".to_vec(), b"later".to_vec()));
        assert_eq!(decode(&fields).unwrap(), full());
        fields.push((b"v".to_vec(), b"1".to_vec()));
        assert_eq!(decode(&fields).unwrap(), full(), "version 1 said out loud");
        fields.push((b"v".to_vec(), b"3".to_vec()));
        let e = decode(&fields).unwrap_err();
        assert_eq!(e, DecodeError::NewerVersion(3));
        assert!(e.to_string().contains("upgrade the worker"), "{e}");
    }

    #[test]
    fn missing_and_malformed_fields_say_which_field() {
        assert_eq!(decode(&pairs(&[("j", b"old")])).unwrap_err(), DecodeError::Missing("n"));
        assert_eq!(decode(&pairs(&[("n", b"x")])).unwrap_err(), DecodeError::Missing("d"));
        let e = decode(&pairs(&[("n", b"x"), ("d", b""), ("s", b"4294967296")])).unwrap_err();
        assert!(e.to_string().contains("field \"s\""), "{e}");
        let bad_attempt = pack_fields([(&b"a"[..], &b"two"[..])].into_iter());
        let e = decode(&pairs(&[("n", b"x"), ("d", b""), ("m", &bad_attempt)])).unwrap_err();
        assert!(e.to_string().contains("field \"a\""), "inside m too: {e}");
        let e = decode(&pairs(&[("n", b"x"), ("d", b""), ("m", b"\xc4\x01x")])).unwrap_err();
        assert!(matches!(e, DecodeError::Packed(_)), "{e}");
        assert!(decode(&pairs(&[("n", b""), ("d", b"")])).is_err(), "an empty name");
        assert!(Envelope::unpack(b"\xc4\x01x").is_err());
        assert!(Envelope::unpack(b"\x92\xa1n").is_err(), "truncated");
        assert!(Envelope::unpack(b"\xdd\xff\xff\xff\xfe").is_err(), "a length beyond the input");
    }

    /// docs/wire-format.md, the page a producer in another language follows.
    fn wire_format_doc() -> String {
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/wire-format.md")).expect("the page exists")
    }

    /// The fields of the first documented `XADD` line that `pick` accepts.
    fn documented_xadd(pick: impl Fn(&str) -> bool) -> Fields {
        let doc = wire_format_doc();
        let line = doc.lines().find(|l| l.starts_with("XADD ") && pick(l)).expect("a documented XADD");
        let words: Vec<&str> = line.split_whitespace().skip(3).collect();
        words.chunks(2).map(|kv| (kv[0].as_bytes().to_vec(), kv[1].as_bytes().to_vec())).collect()
    }

    /// The bytes of the documented hex line that starts with `start`.
    fn documented_hex(start: &str) -> Vec<u8> {
        let doc = wire_format_doc();
        let line = doc.lines().find(|l| l.starts_with(start)).expect("a documented test vector");
        line.split_whitespace().map(|b| u8::from_str_radix(b, 16).unwrap()).collect()
    }

    #[test]
    fn the_documented_test_vectors_decode_as_documented() {
        let first = decode(&documented_xadd(|l| l.ends_with(r#"d {"to":"a@example.com"}"#))).unwrap();
        assert_eq!(first, Envelope::new("email.send", br#"{"to":"a@example.com"}"#.to_vec()));
        let every = decode(&documented_xadd(|l| l.contains("order-42"))).unwrap();
        let expected = Envelope {
            enqueued_us: Some(1_733_080_000_000_123),
            seq: Some(42),
            headers: Some(b"trace-1".to_vec().into()),
            attempt: 2,
            max_attempts: Some(5),
            timeout_ms: Some(30_000),
            id: Some("order-42".into()),
            reclaims: 1,
            ..first
        };
        assert_eq!(every, expected);
        assert_eq!(decode(&as_pairs(&expected)).unwrap(), expected, "conveyor's own packed form reads the same");

        let more = documented_hex("96 a1 74");
        let stamped = Envelope {
            enqueued_us: Some(1_733_080_000_000_123),
            seq: Some(42),
            ..Envelope::new("email.send", b"{}".to_vec())
        };
        assert_eq!(as_pairs(&stamped)[1], (b"m".to_vec(), more), "test vector 3 is what conveyor writes");
    }

    #[test]
    fn an_entry_of_packed_jobs_is_the_documented_array_of_jobs() {
        let documented = documented_hex("92 94 a1 6e");
        let a = Envelope::new("ab", b"{}".to_vec());
        let b = Envelope { enqueued_us: Some(1_733_080_000_000_123), ..Envelope::new("ab", b"[]".to_vec()) };
        let mut written = Vec::new();
        pack_entry([&a, &b].into_iter(), &mut written);
        assert_eq!(written, documented, "test vector 5 is what conveyor writes");
        let jobs = packed_jobs(&documented).unwrap();
        assert_eq!(jobs.len(), 2);
        assert_eq!(Envelope::from_slices(&jobs[0]).unwrap(), a);
        assert_eq!(Envelope::from_slices(&jobs[1]).unwrap(), b);
        assert!(packed_jobs(b"\x90").is_err(), "no job");
        assert!(packed_jobs(b"\xc4\x01x").is_err(), "not an array");
        assert!(packed_jobs(&documented[..20]).is_err(), "truncated");
    }

    #[test]
    fn the_packed_form_is_the_documented_msgpack_array_of_str() {
        let documented = documented_hex("96 a1 6e");
        let e = Envelope { id: Some("x".into()), ..Envelope::new("ab", b"{}".to_vec()) };
        assert_eq!(e.pack(), documented);
        assert_eq!(Envelope::unpack(&documented).unwrap(), e);
    }

    #[test]
    fn job_ids_name_their_partition() {
        assert_eq!(JobId::of_entry("5-1", 0).as_str(), "5-1");
        assert_eq!(JobId::of_entry("5-1", 3).as_str(), "5-1@3");
        assert_eq!(JobId::of_entry_at("5-1", 0, Priority::Normal).as_str(), "5-1");
        assert_eq!(JobId::of_entry_at("5-1", 0, Priority::High).as_str(), "5-1@0/high");
        assert_eq!(JobId::of_entry_at("5-1", 3, Priority::Low).as_str(), "5-1@3/low");
        for (p, level) in [(0, Priority::Normal), (0, Priority::High), (7, Priority::Normal), (12, Priority::Low)] {
            assert_eq!(JobId::of_entry_at("5-1", p, level).as_str(), format!("5-1{}", JobId::suffix_at(p, level)));
        }
        for (id, place) in [
            ("5-1", Some(("5-1", 0, Priority::Normal))),
            ("5-1@3", Some(("5-1", 3, Priority::Normal))),
            ("5-1@0/high", Some(("5-1", 0, Priority::High))),
            ("5-1@2/low", Some(("5-1", 2, Priority::Low))),
            ("order-42", None),
            ("5-1@x", None),
            ("5-1@0/urgent", None),
            ("5-1.7", Some(("5-1", 0, Priority::Normal))),
            ("5-1.7@2/low", Some(("5-1", 2, Priority::Low))),
            ("5-1.x", None),
        ] {
            assert_eq!(JobId::parse(id).unwrap().entry_place(), place, "{id}");
        }
        assert_eq!(JobId::of_packed("5-1", 7, 2, Priority::Low).as_str(), "5-1.7@2/low");
        assert_eq!(JobId::of_packed("5-1", 7, 0, Priority::Normal).packed_index(), Some(7));
        assert_eq!(JobId::of_entry("5-1", 0).packed_index(), None);
        assert_ne!(JobId::generate(), JobId::generate());
        assert!(JobId::parse("").is_err());
    }

    #[test]
    fn only_an_id_made_from_an_entry_tells_when_its_entry_was_added() {
        for (id, ms) in [
            ("1733080000000-0", Some(1_733_080_000_000)),
            ("1733080000000-4.2@3/high", Some(1_733_080_000_000)),
            // A producer's own ids, and UUIDs (a delayed job's), even ones that start with digits.
            ("order-42", None),
            ("69067731-b973-4c1e-9a1d-2f0c3e4b5a6d", None),
            ("12345678-1234-7123-8123-123456789012", None),
            ("1733080000000", None),
        ] {
            assert_eq!(JobId::entry_ms(id), ms, "{id}");
        }
    }
}
