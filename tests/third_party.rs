//! The upload and webhook sinks against real third-party paste servers
//! (pinned, installed by scripts/install-deps.sh): rustypaste with the upload
//! sink, pinnwand with the webhook sink shaped by `publisher.body`. Each end
//! to end through the daemon: every hit published once, each URL fetched back
//! from that server with the document as its content, the results file right;
//! and their real error answers classified.

mod support;

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use redis::Commands;
use support::third_party::{self, Server};
use support::*;

const QUEUE: &str = "device-lookup:tasks";
const SEED: u64 = 61;
const ROWS: u64 = 500;
const PINNWAND_BODY: &str = r#"'{"expiry": "1day", "files": [{"lexer": "json", "content": {{document}}}]}'"#;

struct World {
    dir: tempfile::TempDir,
    redis: Redis,
    _ch: ClickHouse,
    config: PathBuf,
}

impl World {
    fn new(paste_url: &str, publisher: &str) -> World {
        let dir = tempfile::tempdir().unwrap();
        let redis = Redis::start(dir.path(), false);
        let ch = ClickHouse::start(dir.path());
        let config = write_config(dir.path(), &redis, &ch, paste_url, publisher);
        assert!(run_cli(&config, &["seed", "--rows", &ROWS.to_string(), "--seed", &SEED.to_string()]).0.success());
        World { dir, redis, _ch: ch, config }
    }

    /// Enqueues `n` hits; answers their ids.
    fn enqueue_hits(&self, n: u64) -> HashSet<String> {
        let args = ["enqueue", "--count", &n.to_string(), "--hit-ratio", "1", "--seed", "7"];
        let (status, _, err) = run_cli(&self.config, &args);
        assert!(status.success(), "{err}");
        hits_in_list(&mut self.redis.conn(), QUEUE, SEED, ROWS)
    }

    fn dead(&self) -> Vec<serde_json::Value> {
        let entries: Vec<String> = self.redis.conn().lrange(format!("{QUEUE}:dead"), 0, -1).unwrap();
        entries.iter().map(|e| serde_json::from_str(e).unwrap()).collect()
    }

    /// Runs a daemon until every task is settled (`published` lines and
    /// `dead` dead letters); answers its log.
    fn drain(&self, published: usize, dead: usize) -> String {
        let mut d = Daemon::start(&self.config, &self.dir.path().join("daemon.log"));
        let mut conn = self.redis.conn();
        wait_until("every task settled", Duration::from_secs(90), || {
            let left: usize = conn.llen(QUEUE).unwrap();
            left == 0
                && tasks_in_processing(&mut conn, QUEUE) == 0
                && results(self.dir.path()).len() >= published
                && self.dead().len() >= dead
        });
        d.sigterm();
        assert!(d.wait(Duration::from_secs(30)).success(), "{}", d.log_text());
        d.log_text()
    }

    /// Each line's URL (through `fetch`, which maps it to where the server
    /// serves the raw content) answers the document the line is about.
    fn check_lines(&self, hits: &HashSet<String>, fetch: impl Fn(&str) -> String) {
        let lines = results(self.dir.path());
        let ids: Vec<&str> = lines.iter().map(|l| l["id"].as_str().unwrap()).collect();
        assert_eq!(ids.iter().copied().collect::<HashSet<_>>().len(), ids.len(), "an id has two lines");
        assert_eq!(ids.iter().map(|s| s.to_string()).collect::<HashSet<_>>(), *hits);
        for l in &lines {
            let url = l["url"].as_str().unwrap();
            let (status, body) = http_get(&fetch(url)).unwrap();
            assert_eq!(status, 200, "{url}: {body}");
            let doc: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{url}: {e}: {body}"));
            for key in ["id", "ipv4", "mac", "username"] {
                assert_eq!(doc[key], l[key], "{url}: {key}");
            }
        }
    }
}

/// pinnwand with `create_per_second` pastes a second, and a world publishing
/// to its API with `body` (a TOML string) and more publisher keys.
fn pinnwand_world(dir: &std::path::Path, create_per_second: u32, body: &str, more: &str) -> (Server, World) {
    let pw = third_party::pinnwand(dir, create_per_second);
    let publisher = format!("kind = \"webhook\"\nbody = {body}\nurl_pointer = \"/link\"\n{more}");
    let w = World::new(&format!("{}/api/v1/paste", pw.base), &publisher);
    (pw, w)
}

fn pinnwand_raw(server: &Server) -> impl Fn(&str) -> String + '_ {
    move |link: &str| format!("{}/raw/{}", server.base, link.rsplit('/').next().unwrap())
}

#[test]
fn rustypaste_with_the_upload_sink() {
    let dir = tempfile::tempdir().unwrap();
    // A document with a long id is over this limit; the others are well under.
    let rp = third_party::rustypaste(dir.path(), "600B");
    let w = World::new(&format!("{}/", rp.base), "kind = \"upload\"\nmax_attempts = 2");
    let hits = w.enqueue_hits(300);
    let long_id = format!("long-{}", "x".repeat(250));
    let _: () = w.redis.conn().lpush(QUEUE, task_payload(SEED, &long_id, 3)).unwrap();

    w.drain(hits.len(), 1);
    w.check_lines(&hits, |url| url.to_owned());
    let dead = w.dead();
    assert_eq!(dead.len(), 1);
    let error = dead[0]["error"].as_str().unwrap();
    assert!(error.contains("HTTP 413") && error.contains("2 times"), "rustypaste's size limit: {error}");
    assert!(dead[0]["payload"].as_str().unwrap().contains(&long_id));
    drop(dir);
}

#[test]
fn pinnwand_with_a_shaped_webhook() {
    let dir = tempfile::tempdir().unwrap();
    let (pw, w) = pinnwand_world(dir.path(), 100_000, PINNWAND_BODY, "concurrency = 4");
    let hits = w.enqueue_hits(200);
    w.drain(hits.len(), 0);
    w.check_lines(&hits, pinnwand_raw(&pw));
    assert!(w.dead().is_empty());
}

/// pinnwand refuses a body it cannot take with 400 and a JSON reason: the
/// task's own failure, dead-lettered after `max_attempts`.
#[test]
fn pinnwand_refusing_the_body() {
    let dir = tempfile::tempdir().unwrap();
    let body = r#"'{"expiry": "1day", "files": [{"lexer": "no-such-lexer", "content": {{document}}}]}'"#;
    let (_pw, w) = pinnwand_world(dir.path(), 100_000, body, "max_attempts = 2");
    let hits = w.enqueue_hits(10);
    w.drain(0, hits.len());
    assert!(results(w.dir.path()).is_empty());
    for d in w.dead() {
        let error = d["error"].as_str().unwrap();
        assert!(error.contains("HTTP 400") && error.contains("invalid lexer"), "{error}");
    }
}

/// pinnwand's rate limit answers HTTP 500 (its API lets the limiter's
/// exception through): transient for us, so the publisher backs off and
/// retries, and every task is still published once, none dead-lettered.
#[test]
fn pinnwand_rate_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (pw, w) = pinnwand_world(dir.path(), 10, PINNWAND_BODY, "concurrency = 8");
    let hits = w.enqueue_hits(60);
    let log = w.drain(hits.len(), 0);
    w.check_lines(&hits, pinnwand_raw(&pw));
    assert!(w.dead().is_empty());
    assert!(log.contains("HTTP 500"), "pinnwand's rate limit was never hit");
}
