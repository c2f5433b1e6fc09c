//! Private Redis deployments on loopback for tests, measurements and trying conveyor by hand: one
//! `redis-server`, or a Redis Cluster of several. The command line starts one when no Redis URL
//! is configured.

pub mod redis_cluster;
pub mod redis_server;
