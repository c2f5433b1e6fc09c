//! What a run looked like over time: one sample a second (throughput, queue depth, memory), and
//! the trends a soak is judged by: how fast memory grows (least-squares slope) and how steady
//! throughput stays (coefficient of variation).

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
    /// Jobs completed so far (as reported by local workers).
    pub completed: u64,
    /// Completions per second since the previous sample.
    pub jobs_per_second: f64,
    pub waiting: u64,
    pub in_flight: u64,
    pub delayed: u64,
    pub dead: u64,
    /// Resident set size of this process.
    pub rss_bytes: u64,
    /// Redis `used_memory` (0 when INFO is refused).
    pub redis_used_memory_bytes: u64,
    /// End-to-end p99 of every measured job so far (µs).
    pub end_to_end_p99_us: u64,
}

/// Trends over the samples of the produce phase.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Trends {
    /// Samples the trends are computed from.
    pub samples: usize,
    /// Least-squares slope of this process's RSS.
    pub rss_slope_bytes_per_hour: f64,
    /// How much this process's RSS grew over the trend window: the mean of its last tenth
    /// against the mean of its first tenth, as a ratio (0.03 = 3%). What a soak's "RSS growth
    /// after warm-up" means: the window starts after the warm-up and the settling tenth.
    pub rss_growth: f64,
    /// Least-squares slope of Redis `used_memory`.
    pub redis_memory_slope_bytes_per_hour: f64,
    /// Standard deviation of the per-second throughput divided by its mean.
    pub throughput_cv: f64,
    pub throughput_mean: f64,
}

/// Fewest produce-phase samples worth a trend.
const MIN_SAMPLES: usize = 5;

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
    let tp: Vec<f64> = s.iter().map(|s| s.jobs_per_second).collect();
    let mean = tp.iter().sum::<f64>() / tp.len() as f64;
    let var = tp.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / tp.len() as f64;
    let tenth = (rss.len() / 10).max(1);
    let mean_of = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len() as f64;
    let (first, last) = (mean_of(&rss[..tenth]), mean_of(&rss[rss.len() - tenth..]));
    Some(Trends {
        samples: s.len(),
        rss_slope_bytes_per_hour: slope(&t, &rss) * 3600.0,
        rss_growth: if first > 0.0 { last / first - 1.0 } else { 0.0 },
        redis_memory_slope_bytes_per_hour: slope(&t, &redis) * 3600.0,
        throughput_cv: if mean > 0.0 { var.sqrt() / mean } else { 0.0 },
        throughput_mean: mean,
    })
}

/// Least-squares slope of `y` over `x`.
pub fn slope(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let cov: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let var: f64 = x.iter().map(|a| (a - mx).powi(2)).sum();
    if var > 0.0 { cov / var } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slope_and_steadiness() {
        let samples: Vec<Sample> = (0..10)
            .map(|i| Sample {
                t_seconds: f64::from(i),
                phase: "produce",
                rss_bytes: 1000 + 10 * i as u64,
                jobs_per_second: 100.0,
                ..Default::default()
            })
            .collect();
        let t = trends(&samples, 0.0).unwrap();
        assert!((t.rss_slope_bytes_per_hour - 36_000.0).abs() < 1e-6);
        // Window: samples 2..=9 (RSS 1020..=1090); first tenth 1020, last tenth 1090.
        assert!((t.rss_growth - (1090.0 / 1020.0 - 1.0)).abs() < 1e-9, "{}", t.rss_growth);
        assert_eq!(t.throughput_cv, 0.0);
        assert!(trends(&samples[..3], 0.0).is_none());
        assert!(trends(&samples, 6.0).is_none(), "warm-up samples are left out");
    }
}
