//! What a run looked like over time: one sample a second (throughput, queue depth, memory), and
//! the trends a soak is judged by: how much memory grew, how fast (least-squares slope, with its
//! standard error, only over a window long enough to hold one) and how steady throughput stayed
//! (coefficient of variation, only when every sample's throughput is known).

use serde::Serialize;

/// The state of a run at one moment.
#[derive(Debug, Clone, Copy, Serialize, Default, PartialEq)]
pub struct Sample {
    /// Seconds since the producers started (negative during the idle phase).
    pub t_seconds: f64,
    /// "idle", "produce" or "drain".
    pub phase: &'static str,
    /// Jobs acknowledged by Redis so far.
    pub produced: u64,
    /// Jobs completed so far by this process's workers and the worker processes that published
    /// their statistics; None when no worker reported (`conveyor produce` before any did).
    pub completed: Option<u64>,
    /// Completions per second since the previous sample; None when not every reporting worker
    /// process had an earlier publication to measure from.
    pub jobs_per_second: Option<f64>,
    /// Jobs in the ready stream not yet handed to a worker (the queue's depth).
    pub waiting: u64,
    /// Jobs handed to a worker and not yet settled.
    pub in_flight: u64,
    /// Delayed or retrying.
    pub delayed: u64,
    /// Jobs in the dead letters.
    pub dead: u64,
    /// Resident set size of this process.
    pub rss_bytes: u64,
    /// Redis `used_memory` (0 when INFO is refused).
    pub redis_used_memory_bytes: u64,
    /// End-to-end p99 of every measured job so far (µs), merged over the reporting workers;
    /// None before the first measured job was reported.
    pub end_to_end_p99_us: Option<u64>,
}

/// Trends over the samples of the produce phase.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Trends {
    /// Samples the trends are computed from.
    pub samples: usize,
    /// Seconds from the first to the last of them.
    pub window_seconds: f64,
    /// How much this process's RSS grew over the trend window: the mean of its last tenth
    /// against the mean of its first tenth, as a ratio (0.03 = 3%). What a soak's "RSS growth
    /// after warm-up" means: the window starts after the warm-up and the settling tenth.
    pub rss_growth: f64,
    /// Least-squares slope of this process's RSS; None for a window under
    /// [`MIN_SLOPE_WINDOW_SECONDS`] (an hour's rate from seconds is noise).
    pub rss_slope_bytes_per_hour: Option<f64>,
    /// The slope's standard error (from the scatter around the fitted line).
    pub rss_slope_stderr_bytes_per_hour: Option<f64>,
    /// Least-squares slope of Redis `used_memory`, as the RSS slope.
    pub redis_memory_slope_bytes_per_hour: Option<f64>,
    /// The standard error of the Redis memory slope, as the RSS slope's.
    pub redis_memory_slope_stderr_bytes_per_hour: Option<f64>,
    /// Standard deviation of the per-second throughput divided by its mean; None when some
    /// sample's throughput is unknown (no worker reported it), so a target on it cannot pass
    /// on figures nobody measured.
    pub throughput_cv: Option<f64>,
    /// Mean of the per-second throughput over the window (jobs/s); None when `throughput_cv` is.
    pub throughput_mean: Option<f64>,
}

impl Trends {
    /// One line: throughput steadiness, RSS growth, and the slopes when the window holds them.
    pub fn summary(&self) -> String {
        let window = if self.window_seconds >= 120.0 {
            format!("{:.1} min", self.window_seconds / 60.0)
        } else {
            format!("{:.0} s", self.window_seconds)
        };
        let throughput = match (self.throughput_mean, self.throughput_cv) {
            (Some(mean), Some(cv)) => format!("throughput {mean:.0} jobs/s ± {:.1}% (cv)", cv * 100.0),
            _ => "throughput unknown (a sample had no figure: no worker reported it)".to_owned(),
        };
        let mb = |v: f64| v / 1e6;
        let slopes = match (
            self.rss_slope_bytes_per_hour.zip(self.rss_slope_stderr_bytes_per_hour),
            self.redis_memory_slope_bytes_per_hour.zip(self.redis_memory_slope_stderr_bytes_per_hour),
        ) {
            (Some((rss, rss_se)), Some((redis, redis_se))) => format!(
                ", slope {:+.2} ± {:.2} MB/h; Redis memory {:+.2} ± {:.2} MB/h",
                mb(rss),
                mb(rss_se),
                mb(redis),
                mb(redis_se)
            ),
            _ => format!(
                "; no slope per hour (a window of {:.0} min or more holds one)",
                MIN_SLOPE_WINDOW_SECONDS / 60.0
            ),
        };
        format!(
            "over {window} ({} samples after warm-up): {throughput}; RSS {:+.1}%{slopes}",
            self.samples,
            self.rss_growth * 100.0
        )
    }
}

/// Fewest produce-phase samples worth a trend.
const MIN_SAMPLES: usize = 5;
/// Shortest window a slope per hour is given for.
pub const MIN_SLOPE_WINDOW_SECONDS: f64 = 300.0;

/// Trends over the measured part of the produce phase (after `warmup_seconds`), leaving out its
/// first tenth while the allocator and connections settle; None for short runs.
pub fn trends(samples: &[Sample], warmup_seconds: f64) -> Option<Trends> {
    let measured: Vec<&Sample> =
        samples.iter().filter(|s| s.phase == "produce" && s.t_seconds > warmup_seconds).collect();
    let settle = (measured.len() / 10).max(1);
    let s: Vec<&Sample> = measured.into_iter().skip(settle).collect();
    if s.len() < MIN_SAMPLES {
        return None;
    }
    let t: Vec<f64> = s.iter().map(|s| s.t_seconds).collect();
    let rss: Vec<f64> = s.iter().map(|s| s.rss_bytes as f64).collect();
    let redis: Vec<f64> = s.iter().map(|s| s.redis_used_memory_bytes as f64).collect();
    let tenth = (rss.len() / 10).max(1);
    let mean_of = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len() as f64;
    let (first, last) = (mean_of(&rss[..tenth]), mean_of(&rss[rss.len() - tenth..]));
    let window_seconds = t[t.len() - 1] - t[0];
    let per_hour = |y: &[f64]| {
        let fit = (window_seconds >= MIN_SLOPE_WINDOW_SECONDS).then(|| Fit::of(&t, y));
        (fit.map(|f| f.slope * 3600.0), fit.map(|f| f.stderr * 3600.0))
    };
    let (rss_slope, rss_stderr) = per_hour(&rss);
    let (redis_slope, redis_stderr) = per_hour(&redis);
    let tp: Option<Vec<f64>> = s.iter().map(|s| s.jobs_per_second).collect();
    let (throughput_mean, throughput_cv) = match tp {
        Some(tp) => {
            let mean = mean_of(&tp);
            let var = tp.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / tp.len() as f64;
            (Some(mean), Some(if mean > 0.0 { var.sqrt() / mean } else { 0.0 }))
        }
        None => (None, None),
    };
    Some(Trends {
        samples: s.len(),
        window_seconds,
        rss_growth: if first > 0.0 { last / first - 1.0 } else { 0.0 },
        rss_slope_bytes_per_hour: rss_slope,
        rss_slope_stderr_bytes_per_hour: rss_stderr,
        redis_memory_slope_bytes_per_hour: redis_slope,
        redis_memory_slope_stderr_bytes_per_hour: redis_stderr,
        throughput_cv,
        throughput_mean,
    })
}

/// A least-squares line: its slope and the slope's standard error.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fit {
    /// Change of y per unit of x (per second for the trends' samples).
    pub slope: f64,
    /// Standard error of `slope`, from the scatter of the points around the line.
    pub stderr: f64,
}

impl Fit {
    /// The line through the points (`x`, `y`); slope 0 when every x is the same.
    pub fn of(x: &[f64], y: &[f64]) -> Self {
        let n = x.len() as f64;
        let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
        let cov: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
        let var: f64 = x.iter().map(|a| (a - mx).powi(2)).sum();
        if var <= 0.0 {
            return Self { slope: 0.0, stderr: 0.0 };
        }
        let slope = cov / var;
        let residuals: f64 = x.iter().zip(y).map(|(a, b)| (b - my - slope * (a - mx)).powi(2)).sum();
        let stderr = if n > 2.0 { (residuals / (n - 2.0) / var).sqrt() } else { 0.0 };
        Self { slope, stderr }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(n: u32, every_seconds: f64) -> Vec<Sample> {
        (0..n)
            .map(|i| Sample {
                t_seconds: f64::from(i) * every_seconds,
                phase: "produce",
                rss_bytes: 1000 + 10 * u64::from(i),
                jobs_per_second: Some(100.0),
                ..Default::default()
            })
            .collect()
    }

    #[test]
    fn growth_and_steadiness_from_a_short_run_but_no_slope_per_hour() {
        let samples = samples(10, 1.0);
        let t = trends(&samples, 0.0).unwrap();
        // Window: samples 2..=9 (RSS 1020..=1090); first tenth 1020, last tenth 1090.
        assert!((t.rss_growth - (1090.0 / 1020.0 - 1.0)).abs() < 1e-9, "{}", t.rss_growth);
        assert_eq!(t.window_seconds, 7.0);
        assert_eq!(t.rss_slope_bytes_per_hour, None, "7 s cannot hold a slope per hour");
        assert_eq!(t.redis_memory_slope_bytes_per_hour, None);
        assert_eq!(t.throughput_cv, Some(0.0));
        assert_eq!(t.throughput_mean, Some(100.0));
        assert!(trends(&samples[..3], 0.0).is_none());
        assert!(trends(&samples, 6.0).is_none(), "warm-up samples are left out");
    }

    #[test]
    fn a_long_enough_window_gives_the_slope_with_its_standard_error() {
        // One sample a minute for an hour, RSS +10 B each: 600 B/h, on a straight line.
        let t = trends(&samples(61, 60.0), 0.0).unwrap();
        assert!(t.window_seconds >= MIN_SLOPE_WINDOW_SECONDS);
        let slope = t.rss_slope_bytes_per_hour.unwrap();
        assert!((slope - 600.0).abs() < 1e-6, "{slope}");
        assert!(t.rss_slope_stderr_bytes_per_hour.unwrap() < 1e-6, "a straight line has no scatter");
        // Scatter around the line shows as uncertainty.
        let fit = Fit::of(&[0.0, 1.0, 2.0, 3.0], &[0.0, 2.0, 0.0, 2.0]);
        assert!((fit.slope - 0.4).abs() < 1e-9 && fit.stderr > 0.3, "{fit:?}");
    }

    #[test]
    fn throughput_trends_are_unknown_when_a_sample_is() {
        let mut samples = samples(10, 1.0);
        samples[5].jobs_per_second = None;
        let t = trends(&samples, 0.0).unwrap();
        assert_eq!((t.throughput_cv, t.throughput_mean), (None, None));
    }
}
