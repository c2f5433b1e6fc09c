//! What the benchmark measures besides conveyor: the Redis ceiling of conveyor's command mix,
//! how late this machine wakes a sleeping thread, the machine and Redis a result ran on, and a
//! CPU flame graph of a run, and what a run cost Redis.

pub mod ceiling;
pub mod jitter;
pub mod latency_floor;
pub mod processes;
pub mod profile;
pub mod redis_cpu;
pub mod system;
