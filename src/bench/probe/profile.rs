//! `conveyor run --profile`: a CPU flame graph of the whole run. The process samples its own
//! stacks (every thread, ~1 kHz of CPU time, SIGPROF via the `pprof` crate) from before the run
//! starts until its result is built, and writes `flamegraph.svg` next to the result, so a slow
//! figure can be traced to the code that spent the time.
//!
//! Samples come with CPU time, not wall time: a short run that spends most of its time waiting
//! on Redis (or in the C library and the kernel, whose frames are not unwound) takes few of them.
//! The file is a valid SVG whatever the count: with no sample it says so and how to get more,
//! and below [`FEW_SAMPLES`] the flame graph carries the same advice in its subtitle (and the
//! run prints it on stderr).

use crate::runtime::error::{Error, Result};
use std::path::Path;

/// Samples per second of CPU time (a prime, so sampling does not lock step with periodic work).
const FREQUENCY: i32 = 997;
/// Below this many samples a flame graph shows little more than noise.
pub const FEW_SAMPLES: u64 = 100;
/// What to do about too few samples.
const HOW_TO_GET_MORE: &str = "profile a longer or busier run, e.g. `conveyor run <scenario> --profile --duration 30s`";

/// A running CPU profiler.
pub struct Profiler(pprof::ProfilerGuard<'static>);

impl std::fmt::Debug for Profiler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Profiler")
    }
}

/// What [`Profiler::write_flamegraph`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// Stack samples in the flame graph.
    pub samples: u64,
}

impl Written {
    /// A warning for the user when the flame graph rests on too few samples.
    pub fn warning(&self) -> Option<String> {
        (self.samples < FEW_SAMPLES).then(|| {
            format!(
                "--profile: only {} CPU sample(s) (about {} ms of CPU time outside the C library): {HOW_TO_GET_MORE}",
                self.samples,
                self.samples * 1000 / FREQUENCY as u64
            )
        })
    }
}

impl Profiler {
    /// Starts sampling every thread of this process; sampling goes on until the profiler is
    /// dropped.
    pub fn start() -> Result<Self> {
        pprof::ProfilerGuardBuilder::default()
            .frequency(FREQUENCY)
            .blocklist(&["libc", "libgcc", "pthread", "vdso"])
            .build()
            .map(Profiler)
            .map_err(|e| Error::Profile(format!("cannot start the CPU profiler: {e}")))
    }

    /// Writes the samples so far as a flame graph SVG (see the module doc for too few samples).
    pub fn write_flamegraph(&self, path: &Path) -> Result<Written> {
        let report = self.0.report().build().map_err(|e| Error::Profile(format!("cannot build the profile: {e}")))?;
        let samples: u64 = report.data.values().map(|&n| n.max(0) as u64).sum();
        let svg = if samples == 0 {
            no_samples_svg().into_bytes()
        } else {
            let mut options = pprof::flamegraph::Options::default();
            options.title = "conveyor run: CPU flame graph".into();
            options.subtitle = Some(if samples < FEW_SAMPLES {
                format!("only {samples} sample(s): {HOW_TO_GET_MORE}")
            } else {
                format!("{samples} samples at {FREQUENCY} Hz of CPU time")
            });
            let mut out = Vec::new();
            report
                .flamegraph_with_options(&mut out, &mut options)
                .map_err(|e| Error::Profile(format!("cannot draw the flame graph: {e}")))?;
            out
        };
        std::fs::write(path, svg).map_err(|e| Error::Profile(format!("cannot write {}: {e}", path.display())))?;
        Ok(Written { samples })
    }
}

/// The flame graph of a run that took no sample: an SVG that says so and how to get one.
pub fn no_samples_svg() -> String {
    format!(
        "<?xml version=\"1.0\" standalone=\"no\"?>\n\
         <svg xmlns=\"http://www.w3.org/2000/svg\" width=\"900\" height=\"90\" viewBox=\"0 0 900 90\">\n\
         <rect x=\"0\" y=\"0\" width=\"900\" height=\"90\" fill=\"#eeeeee\"/>\n\
         <text x=\"450\" y=\"34\" font-family=\"Verdana\" font-size=\"17\" text-anchor=\"middle\">\
         conveyor run: CPU flame graph: no CPU samples were taken</text>\n\
         <text x=\"450\" y=\"64\" font-family=\"Verdana\" font-size=\"13\" text-anchor=\"middle\">{}</text>\n\
         </svg>\n",
        crate::bench::report::html::esc(HOW_TO_GET_MORE)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_without_samples_still_gets_a_valid_svg_that_says_how_to_get_samples() {
        let svg = no_samples_svg();
        let doc = roxmltree::Document::parse(&svg).expect("well-formed");
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        let text: String = doc.descendants().filter_map(|n| n.text()).collect();
        assert!(text.contains("no CPU samples") && text.contains("--duration"), "{text}");
    }

    #[test]
    fn too_few_samples_warn_and_enough_do_not() {
        let warning = Written { samples: 3 }.warning().expect("3 samples warn");
        assert!(warning.contains("only 3 CPU sample(s)") && warning.contains("--duration"), "{warning}");
        assert_eq!(Written { samples: FEW_SAMPLES }.warning(), None);
    }
}
