//! A connection of conveyor's own to one Redis server over plain TCP, for blocking reads: the
//! commands are packed by the redis crate, the replies are framed here ([`resp::frame`]), and a
//! caller that knows a reply's shape reads it from the bytes ([`RawConn::query_frame`]) instead
//! of through a `redis::Value` tree. Everything else goes through the redis crate's parser, so
//! the connection still serves any command or pipeline (`ConnectionLike`).
//!
//! One request at a time (no pipelining across callers): it is a worker's own connection.
//! TLS and Redis Cluster connections use the redis crate's connections instead.

use super::resp;
use redis::aio::ConnectionLike;
use redis::{Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult, Value};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Bytes read from the socket at a time (a claim of 200 small jobs is about 30 KB).
const READ_CHUNK: usize = 64 * 1024;

/// A plain TCP connection to one server, speaking RESP2.
#[derive(Debug)]
pub struct RawConn {
    stream: TcpStream,
    /// Bytes read and not yet consumed: `buf[start..]`.
    buf: Vec<u8>,
    start: usize,
    db: i64,
}

impl RawConn {
    /// Connects to `host:port`, authenticates and selects the database `info` names.
    pub async fn connect(
        host: &str,
        port: u16,
        info: &redis::RedisConnectionInfo,
        timeout: Duration,
    ) -> RedisResult<Self> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect((host, port)))
            .await
            .map_err(|_| RedisError::from((ErrorKind::Io, "connect timed out")))??;
        stream.set_nodelay(true)?;
        let mut conn = Self { stream, buf: Vec::with_capacity(READ_CHUNK), start: 0, db: info.db() };
        if let Some(password) = info.password() {
            let mut auth = redis::cmd("AUTH");
            if let Some(user) = info.username() {
                auth.arg(user);
            }
            auth.arg(password);
            conn.query_value(&auth.get_packed_command(), 1).await?.pop().unwrap_or(Value::Nil).extract_error()?;
        }
        if info.db() != 0 {
            let select = redis::cmd("SELECT").arg(info.db()).get_packed_command();
            conn.query_value(&select, 1).await?.pop().unwrap_or(Value::Nil).extract_error()?;
        }
        Ok(conn)
    }

    /// Sends `cmd` and reads its reply with `read`, from the reply's own bytes (a server error
    /// reply is returned as the error it is, before `read` sees it).
    pub async fn query_frame<T>(&mut self, cmd: &Cmd, read: impl FnOnce(&[u8]) -> RedisResult<T>) -> RedisResult<T> {
        self.stream.write_all(&cmd.get_packed_command()).await?;
        let len = self.next_frame().await?;
        let frame = &self.buf[self.start..self.start + len];
        let result = match resp::Reader::new(frame).error() {
            Some(e) => Err(e),
            None => read(frame),
        };
        self.consume(len);
        result
    }

    /// Sends `packed` (one or more commands) and reads `replies` replies as values.
    async fn query_value(&mut self, packed: &[u8], replies: usize) -> RedisResult<Vec<Value>> {
        self.stream.write_all(packed).await?;
        let mut out = Vec::with_capacity(replies);
        for _ in 0..replies {
            let len = self.next_frame().await?;
            let value = redis::parse_redis_value(&self.buf[self.start..self.start + len]);
            self.consume(len);
            out.push(value?);
        }
        Ok(out)
    }

    /// The length of the next complete reply at `buf[start..]`, reading until it is there.
    async fn next_frame(&mut self) -> RedisResult<usize> {
        loop {
            if let Some(len) = resp::frame(&self.buf[self.start..])? {
                return Ok(len);
            }
            if self.start > 0 && self.start == self.buf.len() {
                self.buf.clear();
                self.start = 0;
            } else if self.start > self.buf.capacity() / 2 {
                self.buf.drain(..self.start);
                self.start = 0;
            }
            self.buf.reserve(READ_CHUNK);
            let n = self.stream.read_buf(&mut self.buf).await?;
            if n == 0 {
                return Err(RedisError::from((ErrorKind::Io, "connection closed by the server")));
            }
        }
    }

    fn consume(&mut self, len: usize) {
        self.start += len;
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
    }
}

impl ConnectionLike for RawConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move { Ok(self.query_value(&cmd.get_packed_command(), 1).await?.pop().unwrap_or(Value::Nil)) })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let mut values = self.query_value(&pipeline.get_packed_pipeline(), offset + count).await?;
            // In a transaction the skipped replies are MULTI's OK and each command's QUEUED: an
            // error there means the transaction did not run.
            if let Some(e) = values[..offset].iter().find_map(|v| match v {
                Value::ServerError(e) => Some(e.clone()),
                _ => None,
            }) {
                return Err(e.into());
            }
            Ok(values.split_off(offset))
        })
    }

    fn get_db(&self) -> i64 {
        self.db
    }
}
