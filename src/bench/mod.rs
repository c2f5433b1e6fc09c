//! The benchmark suite: scenarios (TOML) measured with the runtime used the way an application
//! uses it — job types registered as handlers ([`jobs`]), a load of producers ([`load`]), a
//! coordinator that walks the phases ([`run`]), the exact-delivery audit, and the reports. It
//! imports the runtime; the runtime never imports it.

pub mod benchmark;
pub mod chaos;
pub mod driver;
pub mod jobs;
pub mod load;
pub mod probe;
pub mod report;
pub mod run;
pub mod scenario;
pub mod stats;
