//! The command line: subcommands and their arguments (clap), and the typed
//! error every command returns, which decides the exit status.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::ConfigError;
use crate::db::DbError;

#[derive(Debug, Parser)]
#[command(name = "device-lookup", version, about = "Finds the account bound to a network device and publishes it")]
pub struct Cli {
    /// Configuration file.
    #[arg(long, global = true, env = "DEVICE_LOOKUP_CONFIG", default_value = "config.toml")]
    pub config: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon until SIGTERM or SIGINT.
    Run,
    /// Create the table if absent and insert generated rows.
    Seed {
        /// How many rows to insert.
        #[arg(long)]
        rows: u64,
        /// Generator seed: the same seed gives the same rows.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Drop and recreate the table first.
        #[arg(long)]
        truncate: bool,
        /// Rows per INSERT.
        #[arg(long, default_value_t = 100_000)]
        batch: u64,
    },
    /// Push generated tasks onto the queue.
    Enqueue {
        /// How many tasks.
        #[arg(long)]
        count: u64,
        /// Fraction of valid tasks drawn from the table (they will be found).
        #[arg(long, default_value_t = 0.9)]
        hit_ratio: f64,
        /// Fraction of malformed tasks.
        #[arg(long, default_value_t = 0.0)]
        invalid_ratio: f64,
        /// Generator seed; ids are `<prefix><n>`.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Id prefix; default `t<seed>-`.
        #[arg(long)]
        id_prefix: Option<String>,
    },
    /// Validate the configuration and reach Redis and ClickHouse.
    Check,
    /// Ask a running daemon's /healthz (for container health checks); exit 0 if healthy.
    Healthcheck {
        /// The URL to ask; default: /healthz on the configured http.listen.
        #[arg(long)]
        url: Option<String>,
    },
    /// Serve the pastebin API locally (for the demo and tests).
    PasteServer {
        #[arg(long, default_value = "127.0.0.1:8088")]
        listen: SocketAddr,
        /// Accept only this api_dev_key.
        #[arg(long)]
        api_dev_key: Option<String>,
        /// Base of the URLs handed out.
        #[arg(long)]
        public_url: Option<String>,
        /// Also store each paste as a file here.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("invalid configuration")]
    Config(#[from] ConfigError),
    #[error("invalid arguments: {0}")]
    Usage(String),
    #[error("Redis")]
    Redis(#[from] redis::RedisError),
    #[error("ClickHouse")]
    Db(#[from] DbError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Failed(String),
}

impl CommandError {
    /// 2 for invalid configuration or usage, 1 for any other failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            CommandError::Config(_) | CommandError::Usage(_) => 2,
            _ => 1,
        }
    }
}
