//! `conveyor run --profile`: a CPU flame graph of the whole run. The process samples its own
//! stacks (every thread, ~1 kHz, SIGPROF via the `pprof` crate) from before the run starts until
//! its result is built, and writes `flamegraph.svg` next to the result, so a slow figure can be
//! traced to the code that spent the time.

use crate::error::{Error, Result};
use std::path::Path;

/// Samples per second (a prime, so sampling does not lock step with periodic work).
const FREQUENCY: i32 = 997;

/// A running CPU profiler.
pub struct Profiler(pprof::ProfilerGuard<'static>);

impl std::fmt::Debug for Profiler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Profiler")
    }
}

impl Profiler {
    pub fn start() -> Result<Self> {
        pprof::ProfilerGuardBuilder::default()
            .frequency(FREQUENCY)
            .blocklist(&["libc", "libgcc", "pthread", "vdso"])
            .build()
            .map(Profiler)
            .map_err(|e| Error::Profile(format!("cannot start the CPU profiler: {e}")))
    }

    /// Writes the samples so far as a flame graph SVG.
    pub fn write_flamegraph(&self, path: &Path) -> Result<()> {
        let report = self.0.report().build().map_err(|e| Error::Profile(format!("cannot build the profile: {e}")))?;
        let file = std::fs::File::create(path)?;
        report.flamegraph(file).map_err(|e| Error::Profile(format!("cannot write {}: {e}", path.display())))
    }
}
