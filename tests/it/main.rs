//! Integration tests: one binary (shorter link time), one module per area. Every test runs
//! against a real redis-server started by `support`, in a key namespace of its own, so tests
//! run in parallel.

mod admin;
mod support;

mod bad_input;
mod cluster;
mod console;
mod cron;
mod docs;
mod drivers;
mod eviction;
mod examples;
mod faults;
mod fuzz;
mod lanes;
mod layout;
mod pack;
mod partition;
mod queue;
mod run;
mod runtime;
mod scenario;
mod security;
mod soak;
mod suite;
mod telemetry;
mod tracking;
mod unique;
mod wire_format;
