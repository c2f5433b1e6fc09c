//! Reading RESP2 replies straight from the bytes Redis sent: where a reply ends ([`frame`]), and a
//! [`Reader`] that walks one reply's elements as borrowed slices. The redis crate turns every
//! reply into a tree of `redis::Value`, one allocation per element; a claim of 200 jobs of six
//! fields is 2,600 of them. The claim path reads its reply with this instead, and copies only
//! the bytes a job keeps.

use redis::{ErrorKind, RedisError};

/// The length in bytes of the first complete reply in `buf`; `None` while more bytes are needed.
pub fn frame(buf: &[u8]) -> Result<Option<usize>, RedisError> {
    let mut pos = 0;
    // Values still to read: the reply itself, then the elements of every array met.
    let mut pending: u64 = 1;
    while pending > 0 {
        let Some(end) = line_end(buf, pos) else { return Ok(None) };
        let (kind, line) = (buf[pos], &buf[pos + 1..end]);
        pos = end + 2;
        pending -= 1;
        match kind {
            b'+' | b'-' | b':' => {}
            b'$' => {
                let n = int(line)?;
                if n >= 0 {
                    let next = pos + n as usize + 2;
                    if buf.len() < next {
                        return Ok(None);
                    }
                    pos = next;
                }
            }
            b'*' => {
                let n = int(line)?;
                if n > 0 {
                    pending += n as u64;
                }
            }
            other => return Err(protocol(format!("unexpected reply type byte 0x{other:02x}"))),
        }
    }
    Ok(Some(pos))
}

/// Where the line starting at `from` ends (the index of its `\r\n`).
fn line_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    loop {
        let i = at + memchr::memchr(b'\r', buf.get(at..)?)?;
        if buf.get(i + 1)? == &b'\n' {
            return Some(i);
        }
        at = i + 1;
    }
}

/// A header's number: `-1` or a run of decimal digits (what Redis writes).
fn int(line: &[u8]) -> Result<i64, RedisError> {
    let bad = || protocol(format!("expected a number, got {:?}", String::from_utf8_lossy(line)));
    match line {
        b"-1" => Ok(-1),
        [] => Err(bad()),
        digits if digits.len() <= 18 && digits.iter().all(u8::is_ascii_digit) => {
            Ok(digits.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0')))
        }
        _ => std::str::from_utf8(line).ok().and_then(|s| s.parse::<i64>().ok()).ok_or_else(bad),
    }
}

fn protocol(message: String) -> RedisError {
    RedisError::from((ErrorKind::Parse, "protocol error", message))
}

/// Walks the elements of one complete reply (see [`frame`]), front to back.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader of the reply in `frame`.
    pub fn new(frame: &'a [u8]) -> Self {
        Self { buf: frame, pos: 0 }
    }

    /// The reply is a server error (`-ERR ...`): that error, with its code.
    pub fn error(&self) -> Option<RedisError> {
        if self.buf.first() != Some(&b'-') {
            return None;
        }
        Some(match redis::parse_redis_value(self.buf) {
            Ok(redis::Value::ServerError(e)) => e.into(),
            Ok(_) => protocol("an error reply that is not an error".into()),
            Err(e) => e,
        })
    }

    fn header(&mut self, kind: u8) -> Result<i64, RedisError> {
        let end = line_end(self.buf, self.pos).ok_or_else(|| protocol("truncated reply".into()))?;
        if self.buf[self.pos] != kind {
            return Err(protocol(format!("expected '{}', got '{}'", kind as char, self.buf[self.pos] as char)));
        }
        let n = int(&self.buf[self.pos + 1..end])?;
        self.pos = end + 2;
        Ok(n)
    }

    /// An array's length; `None` for a nil array.
    pub fn array(&mut self) -> Result<Option<usize>, RedisError> {
        let n = self.header(b'*')?;
        Ok(usize::try_from(n).ok())
    }

    /// A bulk string; `None` for a nil one.
    pub fn bulk(&mut self) -> Result<Option<&'a [u8]>, RedisError> {
        let n = self.header(b'$')?;
        let Ok(n) = usize::try_from(n) else { return Ok(None) };
        let bytes = self.buf.get(self.pos..self.pos + n).ok_or_else(|| protocol("truncated bulk string".into()))?;
        self.pos += n + 2;
        Ok(Some(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENTRY: &[u8] =
        b"*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n1-0\r\n*4\r\n$1\r\nn\r\n$2\r\nab\r\n$1\r\nd\r\n$4\r\n\r\n\r\n\r\n";

    #[test]
    fn frames_end_where_the_reply_ends_and_wait_for_more_bytes() {
        assert_eq!(frame(b"+OK\r\n:1\r\n").unwrap(), Some(5));
        assert_eq!(frame(b"*-1\r\n").unwrap(), Some(5));
        assert_eq!(frame(b"$-1\r\n").unwrap(), Some(5));
        assert_eq!(frame(ENTRY).unwrap(), Some(ENTRY.len()), "a bulk string holding CRLFs is skipped by length");
        for cut in 0..ENTRY.len() {
            assert_eq!(frame(&ENTRY[..cut]).unwrap(), None, "cut at {cut}");
        }
        assert!(frame(b"?x\r\n").is_err());
    }

    #[test]
    fn a_reader_walks_an_xreadgroup_reply() {
        let mut r = Reader::new(ENTRY);
        assert_eq!(r.array().unwrap(), Some(1));
        assert_eq!(r.array().unwrap(), Some(2));
        assert_eq!(r.bulk().unwrap(), Some(&b"s"[..]));
        assert_eq!(r.array().unwrap(), Some(1));
        assert_eq!(r.array().unwrap(), Some(2));
        assert_eq!(r.bulk().unwrap(), Some(&b"1-0"[..]));
        assert_eq!(r.array().unwrap(), Some(4));
        let fields: Vec<_> = (0..4).map(|_| r.bulk().unwrap().unwrap()).collect();
        assert_eq!(fields, [&b"n"[..], b"ab", b"d", b"\r\n\r\n"]);
        assert!(r.bulk().is_err(), "nothing is left");
        assert_eq!(Reader::new(b"*-1\r\n").array().unwrap(), None);
    }

    #[test]
    fn an_error_reply_keeps_its_code() {
        let e = Reader::new(b"-NOGROUP No such key\r\n").error().unwrap();
        assert_eq!(e.code(), Some("NOGROUP"));
        assert!(Reader::new(b"+OK\r\n").error().is_none());
    }
}
