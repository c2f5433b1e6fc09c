//! Process settings that are not part of a scenario: where Redis is, where results go. Read
//! with the `config` crate from (lowest to highest precedence) an optional `conveyor.toml`,
//! `CONVEYOR_*` environment variables, and command-line flags.

use crate::runtime::error::{Error, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Environment variables read as settings.
pub const ENV_VARS: &[&str] = &[
    "CONVEYOR_REDIS_URL",
    "CONVEYOR_RESULTS_DIR",
    "CONVEYOR_TLS_CA_FILE",
    "CONVEYOR_TLS_CERT_FILE",
    "CONVEYOR_TLS_KEY_FILE",
];

/// Its `Debug` shows the Redis URL redacted.
#[derive(Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// `redis://[user:password@]host:port[/db]` or `rediss://...`; none = start a private
    /// redis-server.
    pub redis_url: Option<String>,
    /// Where run results are written (default `results`).
    pub results_dir: Option<PathBuf>,
    /// PEM file of the CA that signed the Redis server's TLS certificate (`rediss://`).
    pub tls_ca_file: Option<PathBuf>,
    /// PEM client certificate, for a Redis that checks clients (`tls-auth-clients yes`).
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of the client certificate.
    pub tls_key_file: Option<PathBuf>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("redis_url", &self.redis_url.as_deref().map(crate::runtime::connection::redact_url))
            .field("results_dir", &self.results_dir)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("tls_cert_file", &self.tls_cert_file)
            .field("tls_key_file", &self.tls_key_file)
            .finish()
    }
}

impl Settings {
    /// Loads `file` (must exist when given) or `./conveyor.toml` (if present), then the
    /// environment.
    pub fn load(file: Option<&Path>) -> Result<Self> {
        let mut builder = config::Config::builder();
        match file {
            Some(f) => {
                if !f.exists() {
                    return Err(Error::Input { file: f.to_path_buf(), message: "config file not found".into() });
                }
                if let Ok(bytes) = std::fs::read(f)
                    && let Err(e) = std::str::from_utf8(&bytes)
                {
                    let message = format!("not UTF-8 text (byte {}): expected a TOML settings file", e.valid_up_to());
                    return Err(Error::Input { file: f.to_path_buf(), message });
                }
                builder = builder.add_source(config::File::from(f).format(config::FileFormat::Toml));
            }
            None => {
                builder = builder.add_source(
                    config::File::with_name("conveyor.toml").format(config::FileFormat::Toml).required(false),
                );
            }
        }
        // Only the variables that name a setting: other CONVEYOR_* variables are not ours to reject.
        let env = std::env::vars().filter(|(k, _)| ENV_VARS.contains(&k.as_str())).collect();
        builder = builder.add_source(config::Environment::with_prefix("CONVEYOR").source(Some(env)));
        let name = file.map_or_else(|| PathBuf::from("conveyor.toml"), Path::to_path_buf);
        let cfg = builder.build().map_err(|e| Error::Input { file: name.clone(), message: describe(&e) })?;
        let settings: Self =
            cfg.try_deserialize().map_err(|e| Error::Input { file: name.clone(), message: describe(&e) })?;
        if let Some(url) = &settings.redis_url {
            check_redis_url(url).map_err(|message| {
                let from_env = std::env::var("CONVEYOR_REDIS_URL").is_ok_and(|v| &v == url);
                let file = if from_env { PathBuf::from("environment variable CONVEYOR_REDIS_URL") } else { name };
                Error::Input { file, message: format!("field \"redis_url\": {message}") }
            })?;
        }
        Ok(settings)
    }

    /// Where run results are written: the configured directory, else `results` (relative to
    /// the working directory).
    pub fn results_dir(&self) -> PathBuf {
        self.results_dir.clone().unwrap_or_else(|| PathBuf::from("results"))
    }
}

/// The schemes the redis crate connects with.
const REDIS_SCHEMES: &[&str] = &["redis://", "rediss://", "redis+unix://", "unix://"];

/// Checks that `url` is a Redis URL; the message never quotes a password.
pub fn check_redis_url(url: &str) -> Result<(), String> {
    use redis::IntoConnectionInfo;
    let expected = "expected redis://[user:password@]host[:port][/db], rediss://... (TLS), unix:///path or \
                    redis+cluster://host1:port1,host2:port2 (Redis Cluster)";
    let redacted = crate::runtime::connection::redact_url(url);
    if let Some(nodes) = crate::runtime::connection::cluster_seed_urls(url) {
        let nodes = nodes.map_err(|e| e.to_string())?;
        return nodes.iter().try_for_each(|node| {
            node.as_str().into_connection_info().map(|_| ()).map_err(|e| {
                format!("{expected}, got {redacted:?} (seed node: {})", e.to_string().replace(node.as_str(), "***"))
            })
        });
    }
    if !REDIS_SCHEMES.iter().any(|s| url.starts_with(s)) {
        return Err(format!("{expected}, got {redacted:?}"));
    }
    url.into_connection_info().map(|_| ()).map_err(|e| {
        let detail = e.to_string().replace(url, &redacted);
        format!("{expected}, got {redacted:?} ({detail})")
    })
}

/// A `config` error as one line that names the field, without the multi-line TOML excerpt.
fn describe(e: &config::ConfigError) -> String {
    use config::ConfigError;
    match e {
        ConfigError::Type { unexpected, expected, key, .. } => {
            format!("field \"{}\": expected {expected}, got {unexpected}", key.as_deref().unwrap_or("?"))
        }
        ConfigError::At { error, key: Some(key), .. } => format!("field \"{key}\": {}", describe(error)),
        ConfigError::At { error, .. } => describe(error),
        ConfigError::FileParse { cause, .. } => {
            let text = cause.to_string();
            let location = text.lines().next().and_then(|l| l.strip_prefix("TOML parse error at ")).unwrap_or("");
            let message = text
                .lines()
                .skip(1)
                .filter(|l| !l.trim().is_empty() && !l.contains('|'))
                .map(str::trim)
                .next()
                .unwrap_or(text.as_str());
            format!("expected a TOML settings file: {message} ({location})")
        }
        ConfigError::Message(m) => match m.strip_prefix("unknown field `").and_then(|r| r.split_once('`')) {
            Some((field, rest)) => format!("field \"{field}\": unknown field{rest}"),
            None => m.clone(),
        },
        other => other.to_string(),
    }
}
