//! The matrix: one sub-run ("cell") per combination of values, reported side by side.
//!
//! ```toml
//! [matrix]
//! workers = [1, 5, 10, 20]        # workers.count
//! ```
//!
//! Axes: `workers` (workers.count), `producers` (producer.count), `concurrency`
//! (workers.concurrency), `rate` (producer.rate: numbers or "N% capacity"), `payload_bytes`
//! (every job kind's payload) and `backlog` (backlog.jobs). Several axes give their cartesian
//! product, the first axis varying slowest.

use super::Scenario;
use super::rate::{RatePlan, RateValue};
use serde::Deserialize;

/// The `[matrix]` table: the values of each axis a scenario varies; an axis left out is not
/// varied, and no axis at all means a single run.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Matrix {
    /// Values for `workers.count` (each at least 1).
    #[serde(deserialize_with = "non_empty")]
    pub workers: Vec<u32>,
    /// Values for `producer.count` (each at least 1).
    #[serde(deserialize_with = "non_empty")]
    pub producers: Vec<u32>,
    /// Values for `workers.concurrency` (each at least 1).
    #[serde(deserialize_with = "non_empty")]
    pub concurrency: Vec<u32>,
    /// Values for `producer.rate`, each a constant rate: jobs/s or "N% capacity".
    #[serde(deserialize_with = "non_empty")]
    pub rate: Vec<RateValue>,
    /// Values for every job kind's `payload_bytes`, in bytes.
    #[serde(deserialize_with = "non_empty")]
    pub payload_bytes: Vec<usize>,
    /// Values for `backlog.jobs`: jobs enqueued before the workers start.
    #[serde(deserialize_with = "non_empty")]
    pub backlog: Vec<u64>,
}

/// An axis that is written must have values: `workers = []` is a mistake, not "no matrix".
fn non_empty<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    let values = Vec::<T>::deserialize(d)?;
    if values.is_empty() {
        return Err(serde::de::Error::custom("expected at least one value (leave the axis out for no matrix)"));
    }
    Ok(values)
}

/// One value of one axis.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AxisValue {
    /// Worker actors in this process (`workers.count`).
    Workers(u32),
    /// Producer actors (`producer.count`).
    Producers(u32),
    /// Jobs one worker runs at the same time (`workers.concurrency`).
    Concurrency(u32),
    /// A constant send rate (`producer.rate`).
    Rate(RateValue),
    /// Payload bytes of every job of the mix.
    PayloadBytes(usize),
    /// Jobs enqueued before the workers start (`backlog.jobs`).
    Backlog(u64),
}

/// One combination of axis values (empty for a scenario without a matrix).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cell {
    /// One value per axis in use, in the order the axes vary (slowest first).
    pub values: Vec<AxisValue>,
}

impl AxisValue {
    /// The name of this value's axis as written in `[matrix]` (`workers`, `payload_bytes`, ...).
    pub fn axis(&self) -> &'static str {
        match self {
            AxisValue::Workers(_) => "workers",
            AxisValue::Producers(_) => "producers",
            AxisValue::Concurrency(_) => "concurrency",
            AxisValue::Rate(_) => "rate",
            AxisValue::PayloadBytes(_) => "payload_bytes",
            AxisValue::Backlog(_) => "backlog",
        }
    }

    /// The value as a matrix entry is written (`10`, `50% capacity`).
    pub fn value_text(&self) -> String {
        match self {
            AxisValue::Workers(n) | AxisValue::Producers(n) | AxisValue::Concurrency(n) => n.to_string(),
            AxisValue::Rate(RateValue::PerSecond(r)) => format!("{r}"),
            AxisValue::Rate(RateValue::Capacity(s)) => format!("{}% capacity", s * 100.0),
            AxisValue::PayloadBytes(n) => n.to_string(),
            AxisValue::Backlog(n) => n.to_string(),
        }
    }

    /// The value as a number (for charts); capacity shares give their resolved rate later.
    pub fn number(&self) -> Option<f64> {
        match self {
            AxisValue::Workers(n) | AxisValue::Producers(n) | AxisValue::Concurrency(n) => Some(f64::from(*n)),
            AxisValue::Rate(RateValue::PerSecond(r)) => Some(*r),
            AxisValue::Rate(RateValue::Capacity(_)) => None,
            AxisValue::PayloadBytes(n) => Some(*n as f64),
            AxisValue::Backlog(n) => Some(*n as f64),
        }
    }

    fn apply(&self, s: &mut Scenario) {
        match *self {
            AxisValue::Workers(n) => s.workers.count = n,
            AxisValue::Producers(n) => s.producer.count = n,
            AxisValue::Concurrency(n) => s.workers.concurrency = n,
            AxisValue::Rate(r) => s.producer.rate = RatePlan::Constant(r),
            AxisValue::PayloadBytes(n) => s.jobs.iter_mut().for_each(|j| j.payload_bytes = n),
            AxisValue::Backlog(n) => s.backlog.jobs = n,
        }
    }
}

impl Matrix {
    /// The axes in the order they vary (slowest first), with their values.
    pub fn axes(&self) -> Vec<Vec<AxisValue>> {
        let axes = [
            self.workers.iter().map(|&n| AxisValue::Workers(n)).collect::<Vec<_>>(),
            self.producers.iter().map(|&n| AxisValue::Producers(n)).collect(),
            self.concurrency.iter().map(|&n| AxisValue::Concurrency(n)).collect(),
            self.rate.iter().map(|&r| AxisValue::Rate(r)).collect(),
            self.payload_bytes.iter().map(|&n| AxisValue::PayloadBytes(n)).collect(),
            self.backlog.iter().map(|&n| AxisValue::Backlog(n)).collect(),
        ];
        axes.into_iter().filter(|a| !a.is_empty()).collect()
    }

    /// Names of the axes in use.
    pub fn axis_names(&self) -> Vec<&'static str> {
        self.axes().iter().map(|a| a[0].axis()).collect()
    }

    /// True when no axis is given: the scenario is a single run.
    pub fn is_empty(&self) -> bool {
        self.axes().is_empty()
    }

    /// Every combination; one empty cell when there is no matrix.
    pub fn cells(&self) -> Vec<Cell> {
        let mut cells = vec![Cell::default()];
        for axis in self.axes() {
            cells = cells
                .into_iter()
                .flat_map(|c| {
                    axis.iter().map(move |v| {
                        let mut values = c.values.clone();
                        values.push(*v);
                        Cell { values }
                    })
                })
                .collect();
        }
        cells
    }
}

impl Cell {
    /// `workers=10` (`all` when there is no matrix).
    pub fn label(&self) -> String {
        if self.values.is_empty() {
            return "all".into();
        }
        self.values.iter().map(|v| format!("{}={}", v.axis(), v.value_text())).collect::<Vec<_>>().join(",")
    }

    /// The label with only letters, digits, '-', '_', '=' and '.' (for file names and log tags).
    pub fn slug(&self) -> String {
        self.label().chars().map(|c| if c.is_ascii_alphanumeric() || "-_=.".contains(c) { c } else { '_' }).collect()
    }

    /// The value of `axis` in this cell, as written.
    pub fn value_of(&self, axis: &str) -> Option<String> {
        self.values.iter().find(|v| v.axis() == axis).map(AxisValue::value_text)
    }

    /// The scenario with this cell's values applied.
    pub fn apply(&self, base: &Scenario) -> Scenario {
        let mut s = base.clone();
        for v in &self.values {
            v.apply(&mut s);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_the_cartesian_product() {
        let m = Matrix { workers: vec![1, 2], payload_bytes: vec![10, 20, 30], ..Default::default() };
        let cells = m.cells();
        assert_eq!(cells.len(), 6);
        assert_eq!(cells[0].label(), "workers=1,payload_bytes=10");
        assert_eq!(cells[5].label(), "workers=2,payload_bytes=30");
        assert_eq!(Matrix::default().cells(), vec![Cell::default()]);
        let r = Cell { values: vec![AxisValue::Rate(RateValue::Capacity(0.5))] };
        assert_eq!(r.label(), "rate=50% capacity");
        assert_eq!(r.slug(), "rate=50__capacity");
    }
}
