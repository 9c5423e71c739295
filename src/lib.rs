//! device-lookup: finds the account bound to a network device and publishes it.
//!
//! Tasks `{id, ipv4, mac}` arrive on a Redis queue; the account comes from a
//! ClickHouse table; the result is published to a paste service and its URL
//! appended to a results file. `README.md` has the picture,
//! `docs/reference.md` what the program promises.
//!
//! The data path, top to bottom: [`actors::queue_reader`] -> [`actors::lookup`]
//! -> [`actors::publisher`] -> [`actors::result_writer`] -> back to the
//! QueueReader to acknowledge.

pub mod actors;
pub mod backoff;
pub mod cli;
pub mod commands;
pub mod config;
pub mod db;
pub mod failure;
pub mod gen;
pub mod http;
pub mod lease;
pub mod logging;
pub mod messages;
pub mod metrics;
pub mod multipart;
pub mod paste_server;
pub mod queue;
pub mod results;
pub mod sink;
pub mod task;
