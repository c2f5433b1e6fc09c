//! Latency in microseconds as HDR histograms (3 significant digits) that grow to fit any value
//! and merge with `add`: every stage of every job is recorded in one, per worker, and figures
//! come from merged histograms, never from averaged percentiles.

use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};

/// Significant digits every histogram keeps.
const SIGFIGS: u8 = 3;

/// A latency histogram in microseconds that grows to fit any value.
#[derive(Debug, Clone)]
pub struct Latency(Histogram<u64>);

impl Default for Latency {
    fn default() -> Self {
        let mut h = Histogram::new(SIGFIGS).expect("3 significant digits is valid");
        h.auto(true);
        Self(h)
    }
}

impl Latency {
    /// Records one value in microseconds; 0 is recorded as 1 µs, the smallest value a histogram
    /// tells apart.
    pub fn record_us(&mut self, us: u64) {
        // `record` grows the histogram to fit (saturating_record would clamp to its current
        // top instead); it only refuses values it can never hold, which then saturate.
        if self.0.record(us.max(1)).is_err() {
            self.0.saturating_record(us);
        }
    }

    /// Merges `other` into this histogram, as if every value of `other` had been recorded here.
    pub fn add(&mut self, other: &Latency) {
        self.0.add(&other.0).expect("auto-resizing histograms always merge");
    }

    /// The underlying HDR histogram, for percentiles, min, max and mean.
    pub fn histogram(&self) -> &Histogram<u64> {
        &self.0
    }

    /// Values recorded.
    pub fn len(&self) -> u64 {
        self.0.len()
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The 99th percentile, None when nothing was recorded.
    pub fn p99_us(&self) -> Option<u64> {
        (!self.0.is_empty()).then(|| self.0.value_at_quantile(0.99))
    }

    /// The histogram in HdrHistogram's V2 serialization (uncompressed), for sending to another
    /// process; [`Latency::decode`] reads it back.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        V2Serializer::new().serialize(&self.0, &mut out).expect("writing to a Vec cannot fail");
        out
    }

    /// Reads what [`Latency::encode`] wrote; the error says why the bytes are not a histogram.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        let mut h: Histogram<u64> =
            Deserializer::new().deserialize(&mut &bytes[..]).map_err(|e| format!("histogram: {e:?}"))?;
        h.auto(true);
        Ok(Self(h))
    }
}
