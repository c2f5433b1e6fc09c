//! A private `redis-server` on a free loopback port: what `conveyor run` uses when no Redis
//! URL is configured, and what every test runs against. The server lives in a temporary
//! directory and is killed when the handle drops; fault tests can kill and restart it on the
//! same port.

use crate::runtime::error::{Error, Result};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How to start the private server.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// Extra `--name value` arguments, e.g. `["--appendonly", "yes"]`.
    pub args: Vec<String>,
    /// Linux: the server is killed when the thread that started it ends, however it ends
    /// (SIGKILL included), instead of living on as an orphan. Only for a thread that lives as
    /// long as the server is wanted: Linux watches the starting thread, not the process.
    pub die_with_thread: bool,
}

/// A running private redis-server.
#[derive(Debug)]
pub struct RedisServer {
    /// The process; `None` while killed.
    child: Option<Child>,
    /// Loopback port it listens on (kept across restarts).
    port: u16,
    /// Working directory for its data files; removed on drop.
    dir: tempfile::TempDir,
    options: ServerOptions,
}

/// The message users see when redis-server is not installed.
pub const INSTALL_HINT: &str = "redis-server was not found on PATH: install it (Debian/Ubuntu: `apt-get install -y redis-server`, \
macOS: `brew install redis`) or point conveyor at a running Redis with --redis-url or CONVEYOR_REDIS_URL";

impl RedisServer {
    /// Starts a server on a free port and waits until it answers.
    pub fn start(options: ServerOptions) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("conveyor-redis-").tempdir()?;
        let port = free_port()?;
        let mut server = Self { child: None, port, dir, options };
        server.spawn()?;
        Ok(server)
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its URL, `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Process id of the running server (`None` while killed), for fault tests that pause it.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Its working directory (data files, its log).
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server (if running) and starts it again on the same port and directory, so
    /// an append-only file written before is loaded again.
    pub fn restart(&mut self) -> Result<()> {
        self.kill();
        self.spawn()
    }

    fn spawn(&mut self) -> Result<()> {
        let log = self.dir.path().join("redis.log");
        let mut cmd = Command::new("redis-server");
        cmd.arg("--port")
            .arg(self.port.to_string())
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--save")
            .arg("")
            .arg("--logfile")
            .arg(&log)
            .arg("--daemonize")
            .arg("no")
            .args(&self.options.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if self.options.die_with_thread {
            die_with_parent(&mut cmd);
        }
        let mut child = cmd.spawn().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::RedisServer(INSTALL_HINT.into()),
            _ => Error::RedisServer(format!("cannot start redis-server: {e}")),
        })?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait()? {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                return Err(Error::RedisServer(format!(
                    "redis-server exited at start ({status}): {}",
                    tail.join(" | ")
                )));
            }
            if ping(self.port) {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err(Error::RedisServer(format!(
                    "redis-server did not answer on port {} within 10 s",
                    self.port
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child = Some(child);
        Ok(())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Has the child get SIGKILL when the thread that spawns it ends.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: runs in the forked child before exec; prctl is async-signal-safe and touches no
    // memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent(_cmd: &mut Command) {}

/// A loopback port nobody listens on right now.
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// True when something on `port` answers PING with PONG (or with a NOAUTH error: it is up).
fn ping(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(n) => buf[..n].starts_with(b"+PONG") || buf[..n].starts_with(b"-NOAUTH"),
        Err(_) => false,
    }
}
