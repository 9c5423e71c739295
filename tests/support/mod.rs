//! Test harness: real Redis, ClickHouse, paste server and daemon processes on
//! free loopback ports, each under a temporary directory, stopped on drop.
//! Waiting is always for a condition with a deadline, never a bare sleep.

#![allow(dead_code)]

pub mod fake_paste;
pub mod front;
pub mod third_party;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_device-lookup");

/// Polls `cond` every 20 ms until it holds, or panics after `timeout` with `what`.
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn find_program(name: &str) -> PathBuf {
    for dir in std::env::var("PATH").unwrap_or_default().split(':').chain(["/usr/sbin", "/usr/bin", "/sbin"]) {
        let p = Path::new(dir).join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!("{name} not found: run `bash .ci/run`, which installs it");
}

fn kill(child: &mut Child, signal: i32) {
    // SAFETY: a plain system call with a pid this test spawned; no memory passed.
    unsafe {
        libc::kill(child.id() as i32, signal);
    }
}

/// A server process that is killed (SIGKILL) when stopped or dropped.
#[derive(Default)]
struct ServerProcess(Option<Child>);

impl ServerProcess {
    fn stop(&mut self) {
        if let Some(mut c) = self.0.take() {
            kill(&mut c, libc::SIGKILL);
            c.wait().unwrap();
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---------------------------------------------------------------------------

pub struct Redis {
    pub port: u16,
    dir: PathBuf,
    process: ServerProcess,
    appendonly: bool,
}

impl Redis {
    pub fn start(dir: &Path, appendonly: bool) -> Redis {
        let mut r = Redis { port: free_port(), dir: dir.join("redis"), process: ServerProcess::default(), appendonly };
        std::fs::create_dir_all(&r.dir).unwrap();
        r.spawn();
        r
    }

    fn spawn(&mut self) {
        let child = Command::new(find_program("redis-server"))
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", if self.appendonly { "yes" } else { "no" }, "--appendfsync", "always"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.process = ServerProcess(Some(child));
        let url = self.url();
        wait_until("redis to answer PING", Duration::from_secs(10), || {
            redis::Client::open(url.as_str())
                .and_then(|c| c.get_connection())
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
                .is_ok()
        });
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub fn conn(&self) -> redis::Connection {
        redis::Client::open(self.url().as_str()).unwrap().get_connection().unwrap()
    }

    pub fn stop(&mut self) {
        self.process.stop();
    }

    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

// ---------------------------------------------------------------------------

pub struct ClickHouse {
    pub http_port: u16,
    dir: PathBuf,
    process: ServerProcess,
}

impl ClickHouse {
    pub fn start(dir: &Path) -> ClickHouse {
        let dir = dir.join("clickhouse");
        std::fs::create_dir_all(dir.join("log")).unwrap();
        let http_port = free_port();
        let config = include_str!("clickhouse-config.xml")
            .replace("@DIR@", dir.to_str().unwrap())
            .replace("@HTTP_PORT@", &http_port.to_string())
            .replace("@TCP_PORT@", &free_port().to_string());
        std::fs::write(dir.join("config.xml"), config).unwrap();
        let mut ch = ClickHouse { http_port, dir, process: ServerProcess::default() };
        ch.spawn();
        ch
    }

    fn spawn(&mut self) {
        let child = Command::new(find_program("clickhouse-server"))
            .arg(format!("--config-file={}", self.dir.join("config.xml").display()))
            .current_dir(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.process = ServerProcess(Some(child));
        let port = self.http_port;
        wait_until("ClickHouse to answer /ping", Duration::from_secs(30), || {
            http_get(&format!("http://127.0.0.1:{port}/ping")).map(|(s, _)| s == 200).unwrap_or(false)
        });
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// Runs one statement over HTTP; panics on failure.
    pub fn query(&self, sql: &str) -> String {
        let (status, body) = http_post(&format!("{}/", self.url()), "text/plain", sql.as_bytes()).unwrap();
        assert_eq!(status, 200, "{sql}: {body}");
        body
    }

    pub fn stop(&mut self) {
        self.process.stop();
    }

    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

// ---------------------------------------------------------------------------

/// The bundled pastebin-protocol server (`device-lookup paste-server`).
pub struct PasteServer {
    pub base: String,
    child: Child,
}

impl PasteServer {
    pub fn start(api_dev_key: &str) -> PasteServer {
        PasteServer::start_with(api_dev_key, &[])
    }

    /// With more options (`--delay 20ms`, `--knee 8`).
    pub fn start_with(api_dev_key: &str, options: &[&str]) -> PasteServer {
        let mut child = Command::new(BIN)
            .args(["paste-server", "--listen", "127.0.0.1:0", "--api-dev-key", api_dev_key])
            .args(options)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let base = line.trim().strip_prefix("listening on ").expect("paste server announces its address").to_owned();
        PasteServer { base, child }
    }

    pub fn api_url(&self) -> String {
        format!("{}/api/api_post.php", self.base)
    }

    /// Served, refused as overloaded, and the most requests in flight at once.
    pub fn stats(&self) -> serde_json::Value {
        let (status, body) = http_get(&format!("{}/_stats", self.base)).unwrap();
        assert_eq!(status, 200);
        serde_json::from_str(&body).unwrap()
    }

    /// Every paste received so far.
    pub fn pastes(&self) -> Vec<serde_json::Value> {
        let (status, body) = http_get(&format!("{}/_pastes", self.base)).unwrap();
        assert_eq!(status, 200);
        serde_json::from_str(&body).unwrap()
    }
}

impl Drop for PasteServer {
    fn drop(&mut self) {
        kill(&mut self.child, libc::SIGKILL);
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------

/// One `device-lookup run`, its output in a log file.
pub struct Daemon {
    child: Child,
    pub log: PathBuf,
}

impl Daemon {
    pub fn start(config: &Path, log: &Path) -> Daemon {
        let out = std::fs::File::create(log).unwrap();
        let child = Command::new(BIN)
            .args(["--config", config.to_str().unwrap(), "run"])
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        Daemon { child, log: log.to_owned() }
    }

    pub fn sigterm(&mut self) {
        kill(&mut self.child, libc::SIGTERM);
    }

    /// SIGSTOP: the process stalls (as `docker pause` or a frozen VM would).
    pub fn pause(&mut self) {
        kill(&mut self.child, libc::SIGSTOP);
    }

    /// SIGCONT: the stalled process runs on.
    pub fn resume(&mut self) {
        kill(&mut self.child, libc::SIGCONT);
    }

    pub fn kill9(&mut self) {
        kill(&mut self.child, libc::SIGKILL);
        self.child.wait().unwrap();
    }

    /// Waits for the process to exit, up to `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let mut status = None;
        wait_until("the daemon to exit", timeout, || {
            status = self.child.try_wait().unwrap();
            status.is_some()
        });
        status.unwrap()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            kill(&mut self.child, libc::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

/// A list-mode task payload for row `i` of the table seeded with `seed`.
pub fn task_payload(seed: u64, id: &str, i: u64) -> String {
    let d = device_lookup::gen::device(seed, i);
    format!(
        r#"{{"id":"{id}","ipv4":"{}","mac":"{}"}}"#,
        std::net::Ipv4Addr::from(d.ipv4),
        device_lookup::task::Mac::from_u64(d.mac).unwrap()
    )
}

/// Ids of the tasks now in list `queue` whose device is among the `rows`
/// rows seeded with `seed`: the tasks that must be published.
pub fn hits_in_list(
    conn: &mut redis::Connection,
    queue: &str,
    seed: u64,
    rows: u64,
) -> std::collections::HashSet<String> {
    let owners: std::collections::HashSet<(u32, u64)> =
        (0..rows).map(|i| device_lookup::gen::device(seed, i)).map(|d| (d.ipv4, d.mac)).collect();
    let queued: Vec<Vec<u8>> = redis::Commands::lrange(conn, queue, 0, -1).unwrap();
    queued
        .iter()
        .filter_map(|p| device_lookup::task::parse_json(p).ok())
        .filter(|t| owners.contains(&t.device_key()))
        .map(|t| t.id)
        .collect()
}

/// Tasks held in the list-mode processing hashes of queue `queue`, all
/// consumers: those of each fetch entry not marked settled in its mask.
/// Counted by a script of its own, with Redis's own MessagePack decoder.
pub fn tasks_in_processing(conn: &mut redis::Connection, queue: &str) -> usize {
    let keys: Vec<String> = redis::Commands::keys(conn, format!("{queue}:processing:*")).unwrap();
    tasks_in_processing_of(conn, &keys)
}

/// Tasks held in these processing hashes (see [`tasks_in_processing`]).
fn tasks_in_processing_of(conn: &mut redis::Connection, keys: &[String]) -> usize {
    const COUNT: &str = r"
local n = 0
for _, key in ipairs(KEYS) do
  local flat = redis.call('HGETALL', key)
  for i = 1, #flat, 2 do
    local field, value = flat[i], flat[i + 1]
    if string.sub(field, 1, 1) == 'b' then
      local mask = redis.call('HGET', key, 's' .. string.sub(field, 2)) or ''
      for j = 1, #cmsgpack.unpack(value) do
        local byte = string.byte(mask, math.floor((j - 1) / 8) + 1) or 0
        if bit.band(byte, bit.lshift(1, (j - 1) % 8)) == 0 then n = n + 1 end
      end
    end
  end
end
return n";
    redis::cmd("EVAL").arg(COUNT).arg(keys.len()).arg(keys).query(conn).unwrap()
}

/// Tasks held in the list-mode processing hash of one consumer.
pub fn tasks_held_by(conn: &mut redis::Connection, queue: &str, consumer: &str) -> usize {
    tasks_in_processing_of(conn, &[format!("{queue}:processing:{consumer}")])
}

/// Runs a subcommand to completion; returns (status, stdout, stderr).
pub fn run_cli(config: &Path, args: &[&str]) -> (ExitStatus, String, String) {
    let out = Command::new(BIN).arg("--config").arg(config).args(args).output().unwrap();
    (out.status, String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A config file for these servers. `extra` goes right after the
/// `[publisher]` keys: plain `key = value` lines set publisher keys, and
/// `[section]` headers start other sections.
pub fn write_config(dir: &Path, redis: &Redis, ch: &ClickHouse, paste_url: &str, extra: &str) -> PathBuf {
    let path = dir.join("config.toml");
    let text = format!(
        r#"
[redis]
url = "{redis}"
lease = "2s"
block = "200ms"

[clickhouse]
url = "{ch}"

[publisher]
url = "{paste_url}"
api_dev_key = "test-key"
backoff_base = "20ms"
backoff_max = "500ms"
{extra}

[output]
path = "{out}"

[http]
listen = "127.0.0.1:{http}"

[log]
format = "json"
level = "debug"
"#,
        redis = redis.url(),
        ch = ch.url(),
        out = dir.join("results.jsonl").display(),
        http = free_port(),
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// One test's servers: Redis, ClickHouse and the bundled paste server on
/// free ports, and a config for them ([`write_config`] with `extra`), all
/// under one temporary directory.
pub struct Stack {
    pub redis: Redis,
    pub ch: ClickHouse,
    pub paste: PasteServer,
    pub config: PathBuf,
    /// Last, so that it is removed after the servers have stopped.
    pub dir: tempfile::TempDir,
}

impl Stack {
    pub fn start(extra: &str) -> Stack {
        let dir = tempfile::tempdir().unwrap();
        let redis = Redis::start(dir.path(), false);
        let ch = ClickHouse::start(dir.path());
        let paste = PasteServer::start("test-key");
        let config = write_config(dir.path(), &redis, &ch, &paste.api_url(), extra);
        Stack { redis, ch, paste, config, dir }
    }
}

/// Sets a key of a section (`redis`, `clickhouse`) of a config written by
/// [`write_config`].
pub fn set_key(config: &Path, section: &str, key_value: &str) {
    let header = format!("[{section}]\n");
    let text = std::fs::read_to_string(config).unwrap().replacen(&header, &format!("{header}{key_value}\n"), 1);
    std::fs::write(config, text).unwrap();
}

/// A copy of `config` for replica `n`: its own results file and HTTP port.
pub fn replica_config(dir: &Path, config: &Path, n: usize) -> (PathBuf, PathBuf) {
    let results = dir.join(format!("results-{n}.jsonl"));
    let text = std::fs::read_to_string(config).unwrap();
    let text = text
        .lines()
        .map(|l| {
            if l.starts_with("path = ") {
                format!("path = \"{}\"", results.display())
            } else if l.starts_with("listen = ") {
                format!("listen = \"127.0.0.1:{}\"", free_port())
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let path = dir.join(format!("config-{n}.toml"));
    std::fs::write(&path, text).unwrap();
    (path, results)
}

/// The base URL of the daemon's HTTP endpoints, from its config file.
pub fn http_base(config: &Path) -> String {
    let text = std::fs::read_to_string(config).unwrap();
    let listen = text.lines().find_map(|l| l.strip_prefix("listen = ")).expect("http.listen in the config");
    format!("http://{}", listen.trim_matches('"'))
}

/// `/metrics`, parsed as Prometheus text: (name, labels as `k=v,...`) -> value.
pub fn scrape(config: &Path) -> std::collections::HashMap<String, f64> {
    let (status, body) = http_get(&format!("{}/metrics", http_base(config))).unwrap();
    assert_eq!(status, 200);
    let lines = body.lines().map(|l| Ok(l.to_owned()));
    let parsed = prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text");
    parsed
        .samples
        .into_iter()
        .filter_map(|s| {
            let value = match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => return None,
            };
            let mut labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            labels.sort();
            Some((format!("{}{{{}}}", s.metric, labels.join(",")), value))
        })
        .collect()
}

/// `/readyz`: (status, body as JSON); status 0 while nothing listens yet.
pub fn readyz(config: &Path) -> (u16, serde_json::Value) {
    match http_get(&format!("{}/readyz", http_base(config))) {
        Ok((status, body)) => (status, serde_json::from_str(&body).unwrap_or(serde_json::Value::Null)),
        Err(_) => (0, serde_json::Value::Null),
    }
}

/// The complete lines of the results file. A line still being appended (no
/// newline yet) is not a result yet; any complete line must parse.
pub fn results(dir: &Path) -> Vec<serde_json::Value> {
    lines_of(&dir.join("results.jsonl"))
}

/// The complete lines of the results file at `path` (see [`results`]).
pub fn lines_of(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
    complete
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad results line {l:?}: {e}")))
        .collect()
}

// ---------------------------------------------------------------------------
// A minimal HTTP/1.1 client, enough for local test servers.

pub fn http_get(url: &str) -> std::io::Result<(u16, String)> {
    http_request("GET", url, "", b"")
}

pub fn http_post(url: &str, content_type: &str, body: &[u8]) -> std::io::Result<(u16, String)> {
    http_request("POST", url, content_type, body)
}

fn http_request(method: &str, url: &str, content_type: &str, body: &[u8]) -> std::io::Result<(u16, String)> {
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let mut s = TcpStream::connect(host)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )?;
    s.write_all(body)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body =
        if head.to_ascii_lowercase().contains("transfer-encoding: chunked") { dechunk(body) } else { body.to_owned() };
    Ok((status, body))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}
