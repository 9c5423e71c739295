//! The command line: subcommands and their arguments (clap), and the typed
//! error every command returns, which decides the exit status.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{ArgGroup, Parser, Subcommand};

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
        /// Leave the parts as the inserts made them, instead of merging the
        /// table into one part at the end (`OPTIMIZE ... FINAL`).
        #[arg(long)]
        no_optimize: bool,
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
    /// Queue depth, consumers and what they hold, dead letters, stream group.
    Status {
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// Also ask these daemons' /readyz (base URLs: http://host:9187).
        #[arg(long, num_args = 1..)]
        http: Vec<String>,
    },
    /// Read and manage the dead letters (index 0 is the newest).
    Dead {
        #[command(subcommand)]
        action: DeadAction,
    },
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
        /// Answer every paste after this long ("50ms"): a service far away.
        #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
        delay: std::time::Duration,
        /// Beyond this many requests in flight, slower by half a delay per
        /// request; from twice as many on, 503 (0: never).
        #[arg(long, default_value_t = 0)]
        knee: usize,
    },
}

#[derive(Debug, Subcommand)]
pub enum DeadAction {
    /// Newest first: index, time, consumer, error, payload (shortened).
    List {
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Only entries whose text contains this.
        #[arg(long = "match")]
        matching: Option<String>,
        /// One JSON object per line, whole.
        #[arg(long)]
        json: bool,
    },
    /// One entry, whole.
    Show { index: usize },
    /// Put the payloads back on the queue as producers would, removing them
    /// from the dead letters (one entry at a time, atomically).
    #[command(group(ArgGroup::new("which").required(true).args(["all", "index", "matching"])))]
    Retry {
        #[arg(long)]
        all: bool,
        #[arg(long, num_args = 1..)]
        index: Vec<usize>,
        #[arg(long = "match")]
        matching: Option<String>,
        /// Do not ask (needed when stdin is not a terminal).
        #[arg(long)]
        yes: bool,
    },
    /// Remove dead letters for good.
    #[command(group(ArgGroup::new("which").required(true).args(["all", "older_than"])))]
    Purge {
        #[arg(long)]
        all: bool,
        /// Only those dead-lettered longer ago than this ("7d", "12h").
        #[arg(long)]
        older_than: Option<String>,
        /// Do not ask (needed when stdin is not a terminal).
        #[arg(long)]
        yes: bool,
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
