//! A comparison of queues: one scenario run through each driver in turn on the same Redis,
//! gathered into one [`SuiteResult`] whose cells are the drivers (`driver=bullmq`), so the
//! report shows the queues side by side with the same definitions, and
//! [`crate::bench::report::drivers`] adds the ratios against conveyor.

use super::{Interrupt, SuiteOptions, run_suite};
use crate::bench::report::suite::SuiteResult;
use crate::bench::scenario::Scenario;
use crate::runtime::connection::Redis;
use crate::runtime::error::Result;
use futures::FutureExt;
use std::collections::BTreeMap;

/// Runs `scenario` through every driver of `drivers`, in order. Call inside an actix `System`.
pub async fn run_drivers(
    scenario: &Scenario,
    redis: &Redis,
    drivers: &[String],
    options: &SuiteOptions,
    interrupt: Interrupt,
) -> Result<SuiteResult> {
    let interrupt = interrupt.shared();
    let mut merged: Option<SuiteResult> = None;
    for name in drivers {
        if interrupt.peek().is_some() {
            break;
        }
        if options.announce {
            eprintln!("══ driver {name}");
        }
        let mut s = scenario.clone();
        s.driver = Some(name.clone());
        let suite = run_suite(&s, redis, options, Box::pin(interrupt.clone())).await?;
        let label = format!("driver={name}");
        let cells = suite.cells.iter().cloned().map(|mut c| {
            c.label = label.clone();
            c.params = BTreeMap::from([("driver".to_owned(), name.clone())]);
            c
        });
        match &mut merged {
            None => {
                let mut first = suite.clone();
                first.cells = cells.collect();
                first.axes = vec!["driver".to_owned()];
                merged = Some(first);
            }
            Some(m) => {
                m.cells.extend(cells);
                m.interrupted |= suite.interrupted;
                m.finished_at = suite.finished_at.clone();
                m.warmup_run |= suite.warmup_run;
            }
        }
    }
    let mut result = merged.ok_or_else(|| crate::Error::Usage("--drivers: expected at least one driver".into()))?;
    result.interrupted |= interrupt.peek().is_some() && result.cells.len() < drivers.len();
    result.judge(&scenario.targets);
    Ok(result)
}
