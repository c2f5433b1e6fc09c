//! What the benchmark measures besides conveyor: the Redis ceiling of conveyor's command mix,
//! how late this machine wakes a sleeping thread, the machine and Redis a result ran on, and a
//! CPU flame graph of a run.

pub mod ceiling;
pub mod jitter;
pub mod processes;
pub mod profile;
pub mod system;
