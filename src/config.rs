//! Configuration: the TOML file, environment overrides, and validation.
//!
//! Three steps, each with its own error: the file is parsed (a syntax error
//! shows line and column), `DEVICE_LOOKUP__<SECTION>__<KEY>` variables are
//! merged over it, and the raw structs (`deny_unknown_fields`, so a misspelt
//! key is an error; modes and kinds are enums, so a misspelt value is one)
//! are deserialised, then each section validates itself into its part of
//! [`Settings`], the typed values the program uses. Every error after the
//! syntax names the key (`redis.mode`) and what is wrong.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::sink::template::{BodyTemplate, UrlTemplate};

/// Prefix of environment overrides; sections and keys are separated by `__`.
pub const ENV_PREFIX: &str = "DEVICE_LOOKUP__";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("environment variable {var}: {problem}")]
    Env { var: String, problem: String },
    #[error("{key}: {problem}")]
    Invalid { key: String, problem: String },
}

fn invalid(key: &str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key: key.to_owned(), problem: problem.into() }
}

/// A string that never shows in logs or debug output.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"***\"" })
    }
}

// ---------------------------------------------------------------------------
// Raw structs: exactly what the file may contain.

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
struct RawConfig {
    redis: RawRedis,
    clickhouse: RawClickhouse,
    lookup: RawLookup,
    publisher: RawPublisher,
    output: RawOutput,
    http: RawHttp,
    log: RawLog,
    daemon: RawDaemon,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
struct RawRedis {
    url: String,
    queue: String,
    mode: QueueMode,
    group: String,
    consumer: String,
    lease: String,
    fetch_batch: u64,
    block: String,
    response_timeout: String,
    dedup_ttl: String,
    write_grace: String,
    max_deliveries: u64,
}

impl Default for RawRedis {
    fn default() -> Self {
        RawRedis {
            url: "redis://127.0.0.1:6379/0".into(),
            queue: "device-lookup:tasks".into(),
            mode: QueueMode::List,
            group: "device-lookup".into(),
            consumer: String::new(),
            lease: "15s".into(),
            fetch_batch: 256,
            block: "1s".into(),
            response_timeout: "5s".into(),
            dedup_ttl: "24h".into(),
            write_grace: "10m".into(),
            max_deliveries: 10,
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
struct RawClickhouse {
    url: String,
    database: String,
    table: String,
    user: String,
    password: String,
    timeout: String,
    lookup: LookupSource,
}

impl Default for RawClickhouse {
    fn default() -> Self {
        RawClickhouse {
            url: "http://127.0.0.1:8123".into(),
            database: "devices".into(),
            table: "users".into(),
            user: "default".into(),
            password: String::new(),
            timeout: "10s".into(),
            lookup: LookupSource::Table,
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
struct RawLookup {
    workers: u64,
    batch_size: u64,
    batch_wait: String,
    backlog_wait: String,
}

impl Default for RawLookup {
    fn default() -> Self {
        RawLookup { workers: 1, batch_size: 4000, batch_wait: "5ms".into(), backlog_wait: "100ms".into() }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
struct RawPublisher {
    kind: PublisherKind,
    url: String,
    api_dev_key: String,
    api_user_key: String,
    paste_private: u64,
    paste_expire_date: String,
    field: String,
    url_pointer: String,
    url_from: UrlFrom,
    url_template: String,
    body: String,
    headers: BTreeMap<String, String>,
    max_attempts: u64,
    concurrency: RawConcurrency,
    max_concurrency: u64,
    timeout: String,
    backoff_base: String,
    backoff_max: String,
    quota_cooldown: String,
    refused_retry: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    rate_limit: Option<RawRateLimit>,
}

impl Default for RawPublisher {
    fn default() -> Self {
        RawPublisher {
            kind: PublisherKind::Pastebin,
            url: "https://pastebin.com/api/api_post.php".into(),
            api_dev_key: String::new(),
            api_user_key: String::new(),
            paste_private: 1,
            paste_expire_date: "1M".into(),
            field: "file".into(),
            url_pointer: String::new(),
            url_from: UrlFrom::Location,
            url_template: String::new(),
            body: String::new(),
            headers: BTreeMap::new(),
            max_attempts: 8,
            concurrency: RawConcurrency::Count(32),
            max_concurrency: 256,
            timeout: "10s".into(),
            backoff_base: "200ms".into(),
            backoff_max: "4s".into(),
            quota_cooldown: "15m".into(),
            refused_retry: "5m".into(),
            rate_limit: None,
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawRateLimit {
    requests: u64,
    per: String,
    #[serde(default = "one")]
    burst: u64,
}

fn one() -> u64 {
    1
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
struct RawOutput {
    path: String,
}

impl Default for RawOutput {
    fn default() -> Self {
        RawOutput { path: "results.jsonl".into() }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
struct RawHttp {
    listen: String,
}

impl Default for RawHttp {
    fn default() -> Self {
        RawHttp { listen: "127.0.0.1:9187".into() }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
struct RawLog {
    level: Level,
    format: LogFormat,
    dependencies: Level,
}

impl Default for RawLog {
    fn default() -> Self {
        RawLog { level: Level::Info, format: LogFormat::Auto, dependencies: Level::Warn }
    }
}

/// `publisher.concurrency`: a number, or the word `adaptive`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
enum RawConcurrency {
    Count(u64),
    Word(String),
}

/// Where a webhook's answer names the paste's URL first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
enum UrlFrom {
    Location,
    Pointer,
}

/// A log level as the file spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
enum Level {
    Trace,
    Debug,
    Info,
    #[serde(alias = "warning")]
    Warn,
    Error,
}

impl From<Level> for slog::Level {
    fn from(l: Level) -> Self {
        match l {
            Level::Trace => slog::Level::Trace,
            Level::Debug => slog::Level::Debug,
            Level::Info => slog::Level::Info,
            Level::Warn => slog::Level::Warning,
            Level::Error => slog::Level::Error,
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
struct RawDaemon {
    max_in_flight: u64,
    shutdown_timeout: String,
    main_thread_nice: u64,
}

impl Default for RawDaemon {
    fn default() -> Self {
        RawDaemon { max_in_flight: 16384, shutdown_timeout: "30s".into(), main_thread_nice: 10 }
    }
}

// ---------------------------------------------------------------------------
// Validated settings: what the program uses.

#[derive(Debug, Clone)]
pub struct Settings {
    pub redis: RedisSettings,
    pub clickhouse: ClickhouseSettings,
    pub lookup: LookupSettings,
    pub publisher: PublisherSettings,
    pub output: OutputSettings,
    pub http: HttpSettings,
    pub log: LogSettings,
    pub daemon: DaemonSettings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueMode {
    List,
    Stream,
}

#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// May carry a password: log it only through [`redact_url`].
    pub url: Secret,
    pub queue: String,
    pub mode: QueueMode,
    pub group: String,
    /// Empty means "derive a unique name for this process".
    pub consumer: String,
    pub lease: Duration,
    pub fetch_batch: usize,
    pub block: Duration,
    pub response_timeout: Duration,
    pub dedup_ttl: Duration,
    /// How long an id stays with the replica that is writing its line; see
    /// [`crate::queue`] (the write record).
    pub write_grace: Duration,
    /// Stream mode: an entry delivered this many times is dead-lettered.
    pub max_deliveries: u32,
}

#[derive(Debug, Clone)]
pub struct ClickhouseSettings {
    pub url: String,
    pub database: String,
    pub table: String,
    pub user: String,
    pub password: Secret,
    pub timeout: Duration,
    pub lookup: LookupSource,
}

/// Where the lookup reads devices (`clickhouse.lookup`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LookupSource {
    /// The table itself: always current, a granule read per device.
    Table,
    /// `<table>_join`, a copy of the table in the server's memory that a
    /// materialized view keeps current: the same cost per device at any size,
    /// for 133-209 bytes of server memory per row, as measured (docs/operations.md).
    Join,
}

#[derive(Debug, Clone)]
pub struct LookupSettings {
    pub workers: usize,
    pub batch_size: usize,
    /// How long a partial batch waits for more tasks.
    pub batch_wait: Duration,
    /// The same while the queue has a backlog (latency is then queueing
    /// anyway, and full batches cost ClickHouse far less per device).
    pub backlog_wait: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PublisherKind {
    Pastebin,
    Upload,
    Webhook,
}

#[derive(Debug, Clone)]
pub struct PublisherSettings {
    pub kind: PublisherKind,
    pub url: String,
    pub api_dev_key: Secret,
    pub api_user_key: Secret,
    pub paste_private: u8,
    pub paste_expire_date: String,
    pub field: String,
    pub url_pointer: String,
    /// Webhook: the JSON Pointer's field is looked at before `Location`.
    pub pointer_first: bool,
    /// Upload and webhook: the URL made from what the answer gave.
    pub url_template: Option<UrlTemplate>,
    /// Webhook: the request body; `None` sends the document itself.
    pub body: Option<BodyTemplate>,
    /// Extra request headers (every kind); their values are secrets.
    pub headers: Vec<(String, Secret)>,
    pub max_attempts: u32,
    pub concurrency: Concurrency,
    pub timeout: Duration,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    pub quota_cooldown: Duration,
    pub refused_retry: Duration,
    pub rate_limit: Option<RateLimit>,
}

/// How many requests the publisher keeps in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Concurrency {
    Fixed(usize),
    /// Found by [`crate::sink::concurrency::Controller`], never above `max`.
    Adaptive {
        max: usize,
    },
}

impl Concurrency {
    /// The most requests ever in flight (the HTTP client's connection limit).
    pub fn max(self) -> usize {
        match self {
            Concurrency::Fixed(n) | Concurrency::Adaptive { max: n } => n,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub requests: NonZeroU32,
    pub per: Duration,
    pub burst: NonZeroU32,
}

impl RateLimit {
    /// The steady interval between two requests.
    pub fn interval(&self) -> Duration {
        self.per / self.requests.get()
    }
}

#[derive(Debug, Clone)]
pub struct OutputSettings {
    pub path: PathBuf,
}

#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub listen: SocketAddr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Auto,
    Json,
    Text,
}

#[derive(Debug, Clone)]
pub struct LogSettings {
    pub level: slog::Level,
    pub format: LogFormat,
    /// The level of records from dependencies (the `log` crate's records).
    pub dependencies: slog::Level,
}

#[derive(Debug, Clone)]
pub struct DaemonSettings {
    pub max_in_flight: usize,
    pub shutdown_timeout: Duration,
    /// The nice value the main thread (QueueReader, ResultWriter, HTTP
    /// endpoints) lowers itself to, so that under CPU contention the
    /// publisher's thread runs first; 0 leaves it as started.
    pub main_thread_nice: i32,
}

/// The largest lookup batch. Keys travel as external data, so no query-size
/// limit applies. ClickHouse's CPU per device keeps falling with the batch
/// (docs/performance.md), but a batch that large needs as many tasks in
/// flight, in memory.
pub const MAX_LOOKUP_BATCH: usize = 20000;

impl Settings {
    /// Reads `path`, applies the environment overrides from `env`, validates.
    pub fn load(path: &Path, env: impl IntoIterator<Item = (String, String)>) -> Result<Settings, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        Settings::from_toml(&text, path, env)
    }

    pub fn from_toml(
        text: &str,
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Settings, ConfigError> {
        let syntax = |e: toml::de::Error| ConfigError::Syntax { path: path.to_owned(), message: e.to_string() };
        let mut table: toml::Table = toml::from_str(text).map_err(syntax)?;
        let overrides: Vec<_> = env.into_iter().filter(|(k, _)| k.starts_with(ENV_PREFIX)).collect();
        if overrides.is_empty() {
            // From the text itself, so that an error also says its line.
            let de = toml::de::Deserializer::parse(text).map_err(syntax)?;
            return serde_path_to_error::deserialize::<_, RawConfig>(de)
                .map_err(|e| {
                    let line = e.inner().span().map(|span| 1 + text[..span.start].matches('\n').count());
                    keyed(&e, e.inner().message(), line)
                })?
                .validate();
        }
        let defaults = toml::Table::try_from(RawConfig::default()).expect("defaults serialise");
        for (var, value) in overrides {
            apply_override(&mut table, &defaults, &var, &value)?;
        }
        serde_path_to_error::deserialize::<_, RawConfig>(toml::Value::Table(table))
            .map_err(|e| keyed(&e, e.inner().message(), None))?
            .validate()
    }
}

/// A deserialisation error, named by the key it happened at.
fn keyed<E>(e: &serde_path_to_error::Error<E>, message: &str, line: Option<usize>) -> ConfigError {
    let path = e.path().to_string();
    let key = if path == "." { "the file".to_owned() } else { path };
    let problem = match line {
        Some(line) => format!("{} (line {line})", message.trim()),
        None => message.trim().to_owned(),
    };
    ConfigError::Invalid { key, problem }
}

/// Keys that exist but have no default value.
const OPTIONAL_KEYS: &[&str] =
    &["publisher.rate_limit.requests", "publisher.rate_limit.per", "publisher.rate_limit.burst"];

/// Merges one `DEVICE_LOOKUP__SECTION__KEY=value` into the table. The value's
/// type follows the default of that key, so `API_DEV_KEY=123` stays a string.
fn apply_override(table: &mut toml::Table, defaults: &toml::Table, var: &str, value: &str) -> Result<(), ConfigError> {
    let err = |problem: String| ConfigError::Env { var: var.to_owned(), problem };
    let path: Vec<String> = var[ENV_PREFIX.len()..].split("__").map(str::to_ascii_lowercase).collect();
    if path.len() < 2 || path.iter().any(String::is_empty) {
        return Err(err("expected DEVICE_LOOKUP__<SECTION>__<KEY>".into()));
    }
    let mut default: Option<&toml::Value> = defaults.get(&path[0]);
    for p in &path[1..] {
        default = default.and_then(|d| d.get(p));
    }
    let typed = match default {
        Some(toml::Value::String(_)) => toml::Value::String(value.to_owned()),
        // A number or a word (`publisher.concurrency = "adaptive"`).
        Some(toml::Value::Integer(_)) if path.join(".") == "publisher.concurrency" => match value.trim().parse() {
            Ok(n) => toml::Value::Integer(n),
            Err(_) => toml::Value::String(value.trim().to_owned()),
        },
        Some(toml::Value::Integer(_)) => {
            toml::Value::Integer(value.trim().parse().map_err(|_| err(format!("expected an integer, got {value:?}")))?)
        }
        Some(toml::Value::Boolean(_)) => toml::Value::Boolean(
            value.trim().parse().map_err(|_| err(format!("expected true or false, got {value:?}")))?,
        ),
        // Any header: `_` in the variable's name stands for `-` (`X_API_KEY`
        // sets `x-api-key`), since a variable's name cannot have a `-`.
        None if path.len() == 3 && path[0] == "publisher" && path[1] == "headers" => {
            let name = path[2].replace('_', "-");
            let headers = table
                .entry("publisher")
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .and_then(|p| {
                    p.entry("headers").or_insert_with(|| toml::Value::Table(toml::Table::new())).as_table_mut()
                })
                .ok_or_else(|| err("publisher.headers is not a table".into()))?;
            headers.insert(name, toml::Value::String(value.to_owned()));
            return Ok(());
        }
        None if !OPTIONAL_KEYS.contains(&path.join(".").as_str()) => {
            return Err(err(format!("there is no key `{}`", path.join("."))))
        }
        // Optional keys without a default (rate_limit.*): numbers stay numbers.
        _ => match value.trim().parse::<i64>() {
            Ok(n) => toml::Value::Integer(n),
            Err(_) => toml::Value::String(value.to_owned()),
        },
    };
    let mut node = table;
    for p in &path[..path.len() - 1] {
        let entry = node.entry(p.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        node = entry.as_table_mut().ok_or_else(|| err(format!("`{p}` is not a section")))?;
    }
    node.insert(path[path.len() - 1].clone(), typed);
    Ok(())
}

impl RawConfig {
    fn validate(self) -> Result<Settings, ConfigError> {
        Ok(Settings {
            redis: self.redis.validate()?,
            clickhouse: self.clickhouse.validate()?,
            lookup: self.lookup.validate()?,
            publisher: self.publisher.validate()?,
            output: self.output.validate()?,
            http: self.http.validate()?,
            log: self.log.validate(),
            daemon: self.daemon.validate()?,
        })
    }
}

impl RawRedis {
    fn validate(self) -> Result<RedisSettings, ConfigError> {
        if !(self.url.starts_with("redis://") || self.url.starts_with("rediss://") || self.url.starts_with("unix://")) {
            return Err(invalid("redis.url", "expected a redis://, rediss:// or unix:// URL"));
        }
        redis::Client::open(self.url.as_str()).map_err(|e| invalid("redis.url", e.to_string()))?;
        non_empty("redis.queue", &self.queue)?;
        non_empty("redis.group", &self.group)?;
        let lease = duration_at_least("redis.lease", &self.lease, Duration::from_secs(1))?;
        Ok(RedisSettings {
            url: Secret::new(self.url),
            queue: self.queue,
            mode: self.mode,
            group: self.group,
            consumer: self.consumer,
            lease,
            fetch_batch: range("redis.fetch_batch", self.fetch_batch, 1, 10_000)?,
            block: duration_at_least("redis.block", &self.block, Duration::from_millis(10))?,
            response_timeout: duration_at_least(
                "redis.response_timeout",
                &self.response_timeout,
                Duration::from_millis(10),
            )?,
            dedup_ttl: duration_at_least("redis.dedup_ttl", &self.dedup_ttl, Duration::from_secs(1))?,
            // A replica restarted with its file resolves its write records at
            // once; the grace only times out one that never comes back.
            write_grace: duration_at_least("redis.write_grace", &self.write_grace, lease)?,
            max_deliveries: range("redis.max_deliveries", self.max_deliveries, 1, 1000)? as u32,
        })
    }
}

impl RawClickhouse {
    fn validate(self) -> Result<ClickhouseSettings, ConfigError> {
        http_url("clickhouse.url", &self.url)?;
        identifier("clickhouse.database", &self.database)?;
        identifier("clickhouse.table", &self.table)?;
        Ok(ClickhouseSettings {
            url: self.url.trim_end_matches('/').to_owned(),
            database: self.database,
            table: self.table,
            user: self.user,
            password: Secret::new(self.password),
            timeout: duration_at_least("clickhouse.timeout", &self.timeout, Duration::from_millis(10))?,
            lookup: self.lookup,
        })
    }
}

impl RawLookup {
    fn validate(self) -> Result<LookupSettings, ConfigError> {
        Ok(LookupSettings {
            workers: range("lookup.workers", self.workers, 1, 64)?,
            batch_size: range("lookup.batch_size", self.batch_size, 1, MAX_LOOKUP_BATCH as u64)?,
            batch_wait: parse_duration(&self.batch_wait).map_err(|p| invalid("lookup.batch_wait", p))?,
            backlog_wait: parse_duration(&self.backlog_wait).map_err(|p| invalid("lookup.backlog_wait", p))?,
        })
    }
}

impl RawPublisher {
    fn validate(self) -> Result<PublisherSettings, ConfigError> {
        let kind = self.kind;
        http_url("publisher.url", &self.url)?;
        if self.paste_private > 2 {
            return Err(invalid("publisher.paste_private", "expected 0 (public), 1 (unlisted) or 2 (private)"));
        }
        if !["N", "10M", "1H", "1D", "1W", "2W", "1M", "6M", "1Y"].contains(&self.paste_expire_date.as_str()) {
            return Err(invalid("publisher.paste_expire_date", "expected one of N, 10M, 1H, 1D, 1W, 2W, 1M, 6M, 1Y"));
        }
        if !self.url_pointer.is_empty() && !self.url_pointer.starts_with('/') {
            return Err(invalid("publisher.url_pointer", "a JSON Pointer starts with '/', such as \"/url\""));
        }
        non_empty("publisher.field", &self.field)?;
        let pointer_first = match self.url_from {
            UrlFrom::Location => false,
            UrlFrom::Pointer if !self.url_pointer.is_empty() => true,
            UrlFrom::Pointer => return Err(invalid("publisher.url_from", "\"pointer\" needs publisher.url_pointer")),
        };
        let url_template = match (self.url_template.as_str(), kind) {
            ("", _) => None,
            (_, PublisherKind::Pastebin) => {
                return Err(invalid("publisher.url_template", "applies to kind = \"upload\" or \"webhook\""))
            }
            (text, _) => Some(UrlTemplate::parse(text).map_err(|e| invalid("publisher.url_template", e.0))?),
        };
        let body = match (self.body.as_str(), kind) {
            ("", _) => None,
            (text, PublisherKind::Webhook) => {
                Some(BodyTemplate::parse(text).map_err(|e| invalid("publisher.body", e.0))?)
            }
            _ => return Err(invalid("publisher.body", "applies to kind = \"webhook\"")),
        };
        let mut headers = Vec::new();
        for (name, value) in self.headers {
            let key = format!("publisher.headers.{name}");
            if awc::http::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(invalid(&key, "not a valid HTTP header name"));
            }
            if awc::http::header::HeaderValue::from_str(&value).is_err() {
                return Err(invalid(&key, "not a valid HTTP header value (visible ASCII)"));
            }
            headers.push((name, Secret::new(value)));
        }
        let backoff_base = duration_at_least("publisher.backoff_base", &self.backoff_base, Duration::from_millis(1))?;
        let backoff_max = duration_at_least("publisher.backoff_max", &self.backoff_max, Duration::from_millis(1))?;
        if backoff_max < backoff_base {
            return Err(invalid("publisher.backoff_max", "must not be less than publisher.backoff_base"));
        }
        Ok(PublisherSettings {
            kind,
            url: self.url,
            api_dev_key: Secret::new(self.api_dev_key),
            api_user_key: Secret::new(self.api_user_key),
            paste_private: self.paste_private as u8,
            paste_expire_date: self.paste_expire_date,
            field: self.field,
            url_pointer: self.url_pointer,
            pointer_first,
            url_template,
            body,
            headers,
            max_attempts: range("publisher.max_attempts", self.max_attempts, 1, 1000)? as u32,
            concurrency: match self.concurrency {
                RawConcurrency::Count(n) => Concurrency::Fixed(range("publisher.concurrency", n, 1, 1024)?),
                RawConcurrency::Word(w) if w == "adaptive" => {
                    Concurrency::Adaptive { max: range("publisher.max_concurrency", self.max_concurrency, 1, 1024)? }
                }
                RawConcurrency::Word(w) => {
                    return Err(invalid(
                        "publisher.concurrency",
                        format!("expected a number or \"adaptive\", got {w:?}"),
                    ))
                }
            },
            timeout: duration_at_least("publisher.timeout", &self.timeout, Duration::from_millis(10))?,
            backoff_base,
            backoff_max,
            quota_cooldown: duration_at_least(
                "publisher.quota_cooldown",
                &self.quota_cooldown,
                Duration::from_millis(1),
            )?,
            refused_retry: duration_at_least("publisher.refused_retry", &self.refused_retry, Duration::from_millis(1))?,
            rate_limit: self.rate_limit.map(RawRateLimit::validate).transpose()?,
        })
    }
}

impl RawRateLimit {
    fn validate(self) -> Result<RateLimit, ConfigError> {
        let requests = range("publisher.rate_limit.requests", self.requests, 1, u32::MAX as u64)?;
        let per = duration_at_least("publisher.rate_limit.per", &self.per, Duration::from_millis(1))?;
        let burst = range("publisher.rate_limit.burst", self.burst, 1, u32::MAX as u64)?;
        let requests = NonZeroU32::new(requests as u32).expect("checked");
        if (per / requests.get()).is_zero() {
            return Err(invalid("publisher.rate_limit", "more than one request per nanosecond"));
        }
        Ok(RateLimit { requests, per, burst: NonZeroU32::new(burst as u32).expect("checked") })
    }
}

impl RawOutput {
    fn validate(self) -> Result<OutputSettings, ConfigError> {
        non_empty("output.path", &self.path)?;
        Ok(OutputSettings { path: PathBuf::from(self.path) })
    }
}

impl RawHttp {
    fn validate(self) -> Result<HttpSettings, ConfigError> {
        let listen = self.listen.parse().map_err(|_| {
            invalid("http.listen", format!("expected host:port such as 127.0.0.1:9187, got {:?}", self.listen))
        })?;
        Ok(HttpSettings { listen })
    }
}

impl RawLog {
    fn validate(self) -> LogSettings {
        LogSettings { level: self.level.into(), format: self.format, dependencies: self.dependencies.into() }
    }
}

impl RawDaemon {
    fn validate(self) -> Result<DaemonSettings, ConfigError> {
        Ok(DaemonSettings {
            max_in_flight: range("daemon.max_in_flight", self.max_in_flight, 1, 1_000_000)?,
            shutdown_timeout: parse_duration(&self.shutdown_timeout)
                .map_err(|p| invalid("daemon.shutdown_timeout", p))?,
            main_thread_nice: range("daemon.main_thread_nice", self.main_thread_nice, 0, 19)? as i32,
        })
    }
}

fn non_empty(key: &str, value: &str) -> Result<(), ConfigError> {
    if value.trim().is_empty() {
        Err(invalid(key, "must not be empty"))
    } else {
        Ok(())
    }
}

fn range(key: &str, value: u64, min: u64, max: u64) -> Result<usize, ConfigError> {
    if value < min || value > max {
        Err(invalid(key, format!("must be between {min} and {max}, got {value}")))
    } else {
        Ok(value as usize)
    }
}

fn http_url(key: &str, value: &str) -> Result<(), ConfigError> {
    let rest = value
        .strip_prefix("http://")
        .or_else(|| value.strip_prefix("https://"))
        .ok_or_else(|| invalid(key, format!("expected an http:// or https:// URL, got {value:?}")))?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(invalid(key, format!("the URL {value:?} has no host")));
    }
    // The HTTP client's own parser: what passes here, the client takes.
    value.parse::<awc::http::Uri>().map_err(|e| invalid(key, format!("{value:?} is not a valid URL: {e}")))?;
    Ok(())
}

/// Database and table names are put into SQL text, so only plain identifiers pass.
fn identifier(key: &str, value: &str) -> Result<(), ConfigError> {
    let mut chars = value.chars();
    let ok = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && value.len() <= 64;
    if ok {
        Ok(())
    } else {
        Err(invalid(key, format!("expected a plain identifier ([A-Za-z_][A-Za-z0-9_]*), got {value:?}")))
    }
}

fn duration_at_least(key: &str, value: &str, min: Duration) -> Result<Duration, ConfigError> {
    let d = parse_duration(value).map_err(|p| invalid(key, p))?;
    if d < min {
        return Err(invalid(key, format!("must be at least {min:?}, got {value:?}")));
    }
    Ok(d)
}

/// Parses `"500ms"`, `"1s"`, `"1m"`, `"24h"`, `"7d"`; also sums like `"1h30m"`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    // humantime's units: ms, s, m (minutes), h, d, w, M (months), y;
    // sums such as "1h30m" or "1h 30m", and fractions ("1.5s"); no signs.
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("expected a duration such as \"500ms\", \"1s\", \"1m\" or \"24h\", got {text:?} ({e})"))
}

/// A URL with its password replaced by `***`, for logs and reports.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else { return url.to_owned() };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        None => url.to_owned(),
        Some(at) => {
            let userinfo = &rest[..at];
            let user = userinfo.split(':').next().unwrap_or("");
            let masked = if userinfo.contains(':') { format!("{user}:***") } else { "***".to_owned() };
            format!("{}{}{}", &url[..scheme_end + 3], masked, &rest[at..])
        }
    }
}

/// Environment variables that look like overrides, sorted, for the check report.
pub fn env_overrides() -> BTreeMap<String, String> {
    std::env::vars().filter(|(k, _)| k.starts_with(ENV_PREFIX)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str, env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        Settings::from_toml(text, Path::new("test.toml"), env.iter().map(|(a, b)| (a.to_string(), b.to_string())))
    }

    fn problem(text: &str, env: &[(&str, &str)]) -> String {
        load(text, env).unwrap_err().to_string()
    }

    #[test]
    fn shaped_webhooks() {
        let text = r#"
[publisher]
kind = "webhook"
url = "https://paste.example/api/v1/paste"
body = '{"expiry": "1day", "files": [{"lexer": "json", "content": {{document}}}]}'
url_pointer = "/key"
url_template = "https://paste.example/{value}"
[publisher.headers]
"X-Client" = "device-lookup"
"#;
        let env = [
            ("DEVICE_LOOKUP__PUBLISHER__HEADERS__AUTHORIZATION", "Bearer s3cret"),
            ("DEVICE_LOOKUP__PUBLISHER__HEADERS__X_API_KEY", "k3y"),
        ];
        let s = load(text, &env).unwrap();
        let p = &s.publisher;
        let names: Vec<&str> = p.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["X-Client", "authorization", "x-api-key"]);
        assert_eq!(p.headers[1].1.expose(), "Bearer s3cret");
        assert_eq!(p.url_template.as_ref().unwrap().expand("abc"), "https://paste.example/abc");
        assert!(p.body.is_some() && !p.pointer_first);
        let debug = format!("{s:?}");
        assert!(!debug.contains("s3cret") && !debug.contains("k3y"), "header values are secrets: {debug}");

        // (config, the key the error names, a word of the reason)
        let table = [
            (
                "[publisher]\nkind = \"webhook\"\nbody = '{\"content\": {{document}}'",
                "publisher.body",
                "not valid JSON",
            ),
            ("[publisher]\nkind = \"webhook\"\nbody = '{\"c\": {{doc}}}'", "publisher.body", "unknown placeholder"),
            ("[publisher]\nkind = \"upload\"\nbody = '{}'", "publisher.body", "webhook"),
            ("[publisher]\nkind = \"webhook\"\nurl_template = \"https://p/\"", "publisher.url_template", "{value}"),
            ("[publisher]\nurl_template = \"https://p/{value}\"", "publisher.url_template", "upload"),
            ("[publisher]\nkind = \"webhook\"\nurl_from = \"pointer\"", "publisher.url_from", "url_pointer"),
            ("[publisher]\nurl_from = \"header\"", "publisher.url_from", "expected"),
            ("[publisher.headers]\n\"bad name\" = \"x\"", "publisher.headers.bad name", "header name"),
            ("[publisher.headers]\nx = \"line\\nbreak\"", "publisher.headers.x", "header value"),
        ];
        for (text, key, word) in table {
            let msg = problem(text, &[]);
            assert!(msg.contains(key) && msg.contains(word), "{text}: {msg}");
        }
    }

    #[test]
    fn example_config_is_valid() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml")).unwrap();
        let s = load(&text, &[]).unwrap();
        assert_eq!(s.redis.mode, QueueMode::List);
        assert_eq!(s.publisher.kind, PublisherKind::Pastebin);
        assert_eq!(s.publisher.max_attempts, 8);
    }

    #[test]
    fn empty_file_gives_defaults() {
        let s = load("", &[]).unwrap();
        assert_eq!(s.redis.queue, "device-lookup:tasks");
        assert_eq!(s.clickhouse.database, "devices");
        assert_eq!(s.clickhouse.lookup, LookupSource::Table);
        assert!(s.publisher.rate_limit.is_none());
        assert_eq!(s.daemon.shutdown_timeout, Duration::from_secs(30));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse_duration(" 1w "), Ok(Duration::from_secs(604_800)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        for bad in ["", "1", "s", "1x", "-1s", "99999999999999999999h"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn rejects_name_the_key() {
        let cases: &[(&str, &str)] = &[
            ("[redis]\nmode = \"queue\"", "redis.mode"),
            ("[redis]\nurl = \"http://x\"", "redis.url"),
            ("[redis]\nqueue = \"\"", "redis.queue"),
            ("[clickhouse]\ntable = \"users; DROP\"", "clickhouse.table"),
            ("[clickhouse]\nurl = \"ftp://x\"", "clickhouse.url"),
            ("[clickhouse]\nlookup = \"dictionary\"", "clickhouse.lookup"),
            ("[publisher]\nkind = \"ftp\"", "publisher.kind"),
            ("[publisher]\nurl = \"http://paste .example/api\"", "publisher.url"),
            ("[publisher]\nmax_attempts = 0", "publisher.max_attempts"),
            ("[publisher]\npaste_private = 3", "publisher.paste_private"),
            ("[publisher]\npaste_expire_date = \"2D\"", "publisher.paste_expire_date"),
            ("[publisher.rate_limit]\nrequests = 0\nper = \"1s\"", "publisher.rate_limit.requests"),
            ("[publisher.rate_limit]\nrequests = 5\nper = \"soon\"", "publisher.rate_limit.per"),
            ("[lookup]\nbatch_size = 100000", "lookup.batch_size"),
            ("[daemon]\nmain_thread_nice = 20", "daemon.main_thread_nice"),
            ("[http]\nlisten = \"nowhere\"", "http.listen"),
            ("[log]\nlevel = \"loud\"", "log.level"),
            ("[daemon]\nshutdown_timeout = \"30\"", "daemon.shutdown_timeout"),
        ];
        for (text, key) in cases {
            let msg = problem(text, &[]);
            assert!(msg.starts_with(key), "{text:?} gave {msg:?}");
        }
    }

    #[test]
    fn unknown_keys_and_syntax_errors() {
        let msg = problem("[redis]\nqueeu = \"x\"", &[]);
        assert!(msg.contains("unknown field") && msg.contains("queeu"), "{msg}");
        let msg = problem("[nosuch]\na = 1", &[]);
        assert!(msg.contains("nosuch"), "{msg}");
        let msg = problem("[redis]\nurl = ", &[]);
        assert!(msg.contains("line 2"), "{msg}");
        let msg = problem("[redis]\nfetch_batch = \"many\"", &[]);
        assert!(msg.contains("fetch_batch") || msg.contains("line 2"), "{msg}");
    }

    #[test]
    fn misspelt_values_name_the_key_the_choices_and_the_line() {
        let msg = problem("[redis]\nqueue = \"q\"\nmode = \"lsit\"", &[]);
        assert!(msg.starts_with("redis.mode:"), "{msg}");
        assert!(msg.contains("`list`") && msg.contains("`stream`") && msg.contains("line 3"), "{msg}");
        let msg = problem("", &[("DEVICE_LOOKUP__PUBLISHER__KIND", "ftp")]);
        assert!(msg.starts_with("publisher.kind:") && msg.contains("`webhook`"), "{msg}");
        let msg = problem("[log]\nformat = \"xml\"", &[]);
        assert!(msg.starts_with("log.format:") && msg.contains("`json`"), "{msg}");
        let s = load("[log]\nlevel = \"warning\"\ndependencies = \"error\"", &[]).unwrap();
        assert_eq!((s.log.level, s.log.dependencies), (slog::Level::Warning, slog::Level::Error));
        let s = load("", &[("DEVICE_LOOKUP__REDIS__MODE", "stream")]).unwrap();
        assert_eq!(s.redis.mode, QueueMode::Stream);
    }

    #[test]
    fn concurrency_is_a_number_or_adaptive() {
        assert_eq!(load("", &[]).unwrap().publisher.concurrency, Concurrency::Fixed(32));
        let s = load("[publisher]\nconcurrency = \"adaptive\"\nmax_concurrency = 64", &[]).unwrap();
        assert_eq!(s.publisher.concurrency, Concurrency::Adaptive { max: 64 });
        let s = load("", &[("DEVICE_LOOKUP__PUBLISHER__CONCURRENCY", "adaptive")]).unwrap();
        assert_eq!(s.publisher.concurrency, Concurrency::Adaptive { max: 256 });
        let s = load("", &[("DEVICE_LOOKUP__PUBLISHER__CONCURRENCY", "8")]).unwrap();
        assert_eq!(s.publisher.concurrency, Concurrency::Fixed(8));
        let msg = problem("[publisher]\nconcurrency = \"auto\"", &[]);
        assert!(msg.starts_with("publisher.concurrency:") && msg.contains("adaptive"), "{msg}");
        let msg = problem("[publisher]\nconcurrency = \"adaptive\"\nmax_concurrency = 0", &[]);
        assert!(msg.starts_with("publisher.max_concurrency:"), "{msg}");
    }

    #[test]
    fn env_overrides_apply_with_the_default_type() {
        let s = load(
            "[publisher]\napi_dev_key = \"file\"",
            &[
                ("DEVICE_LOOKUP__PUBLISHER__API_DEV_KEY", "12345"),
                ("DEVICE_LOOKUP__REDIS__FETCH_BATCH", "17"),
                ("DEVICE_LOOKUP__PUBLISHER__RATE_LIMIT__REQUESTS", "20"),
                ("DEVICE_LOOKUP__PUBLISHER__RATE_LIMIT__PER", "24h"),
                ("DEVICE_LOOKUP__CLICKHOUSE__LOOKUP", "join"),
                ("OTHER", "x"),
            ],
        )
        .unwrap();
        assert_eq!(s.publisher.api_dev_key.expose(), "12345");
        assert_eq!(s.redis.fetch_batch, 17);
        assert_eq!(s.clickhouse.lookup, LookupSource::Join);
        let rl = s.publisher.rate_limit.unwrap();
        assert_eq!((rl.requests.get(), rl.per, rl.burst.get()), (20, Duration::from_secs(86_400), 1));
    }

    #[test]
    fn env_override_errors() {
        let msg = problem("", &[("DEVICE_LOOKUP__REDIS__FETCH_BATCH", "lots")]);
        assert!(msg.contains("DEVICE_LOOKUP__REDIS__FETCH_BATCH"), "{msg}");
        let msg = problem("", &[("DEVICE_LOOKUP__REDIS__NOPE", "1")]);
        assert!(msg.contains("nope"), "{msg}");
        let msg = problem("", &[("DEVICE_LOOKUP__REDIS", "1")]);
        assert!(msg.contains("DEVICE_LOOKUP__REDIS"), "{msg}");
        let msg = problem("", &[("DEVICE_LOOKUP__LOOKUP__BATCH_SIZE", "0")]);
        assert!(msg.starts_with("lookup.batch_size"), "{msg}");
    }

    #[test]
    fn secured_connections_are_accepted() {
        let s = load(
            "[redis]\nurl = \"rediss://app:s3cret@redis.internal:6380/0\"\n[clickhouse]\nurl = \"https://ch.internal:8443\"\nuser = \"app\"\npassword = \"pw\"",
            &[],
        )
        .unwrap();
        assert_eq!(redact_url(s.redis.url.expose()), "rediss://app:***@redis.internal:6380/0");
        assert_eq!(s.clickhouse.url, "https://ch.internal:8443");
    }

    #[test]
    fn secrets_do_not_show() {
        let s = load("[publisher]\napi_dev_key = \"topsecret\"\n[clickhouse]\npassword = \"pw\"", &[]).unwrap();
        let debug = format!("{s:?}");
        assert!(!debug.contains("topsecret") && !debug.contains("\"pw\""), "{debug}");
        assert_eq!(redact_url("redis://user:pw@host:6379/0"), "redis://user:***@host:6379/0");
        assert_eq!(redact_url("redis://:pw@host/0"), "redis://:***@host/0");
        assert_eq!(redact_url("redis://host:6379/0"), "redis://host:6379/0");
    }
}
