//! Process settings that are not part of a scenario: where Redis is, where results go. Read
//! with the `config` crate from (lowest to highest precedence) an optional `conveyor.toml`,
//! `CONVEYOR_*` environment variables, and command-line flags.

use crate::error::{Error, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Environment variables read as settings.
pub const ENV_VARS: &[&str] = &["CONVEYOR_REDIS_URL", "CONVEYOR_RESULTS_DIR"];

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// `redis://[user:password@]host:port[/db]` or `rediss://...`; none = start a private
    /// redis-server.
    pub redis_url: Option<String>,
    /// Where run results are written (default `results`).
    pub results_dir: Option<PathBuf>,
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
        let cfg = builder.build().map_err(|e| Error::Input { file: name.clone(), message: e.to_string() })?;
        cfg.try_deserialize().map_err(|e| Error::Input { file: name, message: e.to_string() })
    }

    pub fn results_dir(&self) -> PathBuf {
        self.results_dir.clone().unwrap_or_else(|| PathBuf::from("results"))
    }
}
