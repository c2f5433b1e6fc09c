//! The `/metrics` endpoint: a small blocking HTTP/1.1 server on a thread of its own (never on
//! the actix event loop), answering each scrape with the recorder's exposition, the job-stage
//! histograms and fresh `process_*` metrics ([`super::process`]). One request per connection, served in turn: a
//! scrape takes about a millisecond, and a slow client is cut off by a read timeout.

use super::histograms::JobHistograms;
use metrics_exporter_prometheus::PrometheusHandle;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

/// Longest a client may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest request head read.
const MAX_REQUEST: usize = 8 * 1024;

/// What a scrape renders.
pub struct Exposition {
    pub recorder: PrometheusHandle,
    pub histograms: Arc<JobHistograms>,
}

impl Exposition {
    /// The full text exposition, as of now.
    pub fn render(&self) -> String {
        let mut out = self.recorder.render();
        if !out.is_empty() && !out.ends_with("\n\n") {
            out.push('\n');
        }
        self.histograms.render(&mut out);
        super::process::render(&mut out);
        out
    }
}

/// Serves `listener` on a new thread for the life of the process.
pub fn spawn(listener: TcpListener, exposition: Exposition) -> std::io::Result<()> {
    std::thread::Builder::new().name("conveyor-metrics".into()).spawn(move || {
        for stream in listener.incoming() {
            match stream {
                Ok(stream) => {
                    if let Err(e) = answer(stream, &exposition) {
                        tracing::debug!(error = %e, "metrics request failed");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "metrics listener could not accept a connection"),
            }
        }
    })?;
    Ok(())
}

fn answer(mut stream: TcpStream, exposition: &Exposition) -> std::io::Result<()> {
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_REQUEST {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(head.split(|b| *b == b'\n').next().unwrap_or_default()).into_owned();
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    let (status, content_type, body) = match (method, path) {
        ("GET" | "HEAD", "/metrics") => ("200 OK", "text/plain; version=0.0.4; charset=utf-8", exposition.render()),
        ("GET" | "HEAD", "/") => ("200 OK", "text/plain; charset=utf-8", "conveyor: metrics at /metrics\n".to_owned()),
        ("GET" | "HEAD", _) => ("404 Not Found", "text/plain; charset=utf-8", "not found: try /metrics\n".to_owned()),
        _ => ("405 Method Not Allowed", "text/plain; charset=utf-8", "only GET\n".to_owned()),
    };
    let header = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(header.as_bytes())?;
    if method != "HEAD" {
        stream.write_all(body.as_bytes())?;
    }
    stream.flush()
}
