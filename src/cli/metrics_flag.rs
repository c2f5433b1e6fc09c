//! The `--metrics-addr` flag of the commands that run roles (`run`, `produce`, `worker`,
//! `exporter`): where the process serves Prometheus metrics, as [`telemetry`] installs them.

use crate::runtime::error::{Error, Result};
use crate::runtime::telemetry::{self, DEFAULT_ADDR, Identity, InstallError, MetricsAddr};

/// The `--metrics-addr` flag (see the module docs).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct MetricsArgs {
    /// Where this process serves Prometheus metrics (`/metrics`): HOST:PORT, or `off`. Default
    /// 127.0.0.1:9464; when that port is taken (another conveyor runs) this process runs
    /// without metrics and says so.
    #[arg(long, env = "CONVEYOR_METRICS_ADDR", value_name = "HOST:PORT|off", value_parser = MetricsAddr::parse)]
    pub metrics_addr: Option<MetricsAddr>,
}

impl MetricsArgs {
    /// Installs the recorder and the `/metrics` endpoint as the flag says. An address given
    /// explicitly must be usable; the default one is given up with a warning when taken.
    pub fn install(&self, identity: Identity) -> Result<()> {
        let (addr, explicit) = match self.metrics_addr {
            Some(MetricsAddr::Off) => return Ok(()),
            Some(MetricsAddr::At(addr)) => (addr, true),
            None => (DEFAULT_ADDR.parse().expect("valid default address"), false),
        };
        match telemetry::install(addr, identity) {
            Ok(bound) => {
                tracing::info!(url = %format!("http://{bound}/metrics"), "serving Prometheus metrics");
                Ok(())
            }
            Err(InstallError::Bind { addr, source }) if !explicit => {
                tracing::warn!(%addr, error = %source, "metrics address taken; this process exports no metrics (choose one with --metrics-addr)");
                Ok(())
            }
            Err(e) => Err(Error::Telemetry(e.to_string())),
        }
    }
}
