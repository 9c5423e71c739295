//! The `upload` and `webhook` sinks against local servers speaking those
//! protocols, with their error answers: the same retry, quota and dead-letter
//! behaviour as pastebin.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use redis::Commands;
use support::fake_paste::{reply, Answer, FakePaste};
use support::*;

const QUEUE: &str = "device-lookup:tasks";
const SEED: u64 = 41;

fn task(id: &str, i: u64) -> String {
    task_payload(SEED, id, i)
}

/// The JSON document inside a multipart body.
fn multipart_document(body: &str) -> Option<serde_json::Value> {
    let start = body.find("\r\n\r\n")? + 4;
    let end = body[start..].find("\r\n--")? + start;
    serde_json::from_str(&body[start..end]).ok()
}

struct World {
    dir: tempfile::TempDir,
    _redis: Redis,
    _ch: ClickHouse,
    config: std::path::PathBuf,
    conn: redis::Connection,
}

fn world(paste_url: &str, publisher: &str) -> World {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path(), false);
    let ch = ClickHouse::start(dir.path());
    let config = write_config(dir.path(), &redis, &ch, paste_url, publisher);
    assert!(run_cli(&config, &["seed", "--rows", "100", "--seed", &SEED.to_string()]).0.success());
    let conn = redis.conn();
    World { dir, _redis: redis, _ch: ch, config, conn }
}

#[test]
fn upload_sink() {
    let paste = FakePaste::start(|form, n| {
        let body = form.get("_body").cloned().unwrap_or_default();
        let ct = form.get("_content_type").cloned().unwrap_or_default();
        if !ct.starts_with("multipart/form-data; boundary=") || !body.contains("name=\"file\"") {
            return reply(400, "expected a multipart upload in field `file`");
        }
        let doc = multipart_document(&body).expect("a JSON document in the part");
        if doc["id"] == "too-big" {
            return reply(413, "Payload Too Large");
        }
        match n {
            0 => reply(503, "Service Unavailable"),
            1 => reply(200, "<html>not a url</html>"),
            _ => Answer::Raw {
                status: 200,
                headers: vec![],
                body: format!("http://files.local/u/{}\n", doc["id"].as_str().unwrap()),
                created: true,
            },
        }
    });
    let mut w = world(&paste.api_url(), "kind = \"upload\"\nfield = \"file\"\nmax_attempts = 2");
    let ids: HashSet<String> = (0..20).map(|i| format!("up-{i}")).collect();
    for (i, id) in ids.iter().enumerate() {
        let _: () = w.conn.lpush(QUEUE, task(id, i as u64)).unwrap();
    }
    let _: () = w.conn.lpush(QUEUE, task("too-big", 50)).unwrap();
    let mut d = Daemon::start(&w.config, &w.dir.path().join("daemon.log"));
    wait_until("all uploaded and the rejected one dead", Duration::from_secs(30), || {
        results(w.dir.path()).len() == ids.len() && w.conn.llen::<_, usize>(format!("{QUEUE}:dead")).unwrap() == 1
    });
    d.sigterm();
    assert!(d.wait(Duration::from_secs(30)).success());
    for l in results(w.dir.path()) {
        let id = l["id"].as_str().unwrap();
        assert!(ids.contains(id));
        assert_eq!(l["url"], format!("http://files.local/u/{id}"), "the URL is the trimmed body");
    }
    let rejected =
        paste.requests().iter().filter(|r| r.form.get("_body").is_some_and(|b| b.contains("too-big"))).count();
    assert_eq!(rejected, 2, "max_attempts = 2 for the service's rejections");
    let dead: String = w.conn.lindex(format!("{QUEUE}:dead"), 0).unwrap();
    assert!(dead.contains("413"), "{dead}");
}

#[test]
fn webhook_sink() {
    let paste = FakePaste::start(|form, n| {
        if form.get("_content_type").map(String::as_str) != Some("application/json") {
            return reply(415, "expected JSON");
        }
        let doc: serde_json::Value = serde_json::from_str(&form["_body"]).expect("the document as the body");
        let id = doc["id"].as_str().unwrap().to_owned();
        match n {
            0 => Answer::Reply { status: 429, body: "slow down".into(), retry_after: Some(1) },
            1 => reply(401, "unauthorized"),
            _ if n % 3 == 0 => Answer::Raw {
                status: 201,
                headers: vec![("Location".into(), format!("http://hooks.local/loc/{id}"))],
                body: String::new(),
                created: true,
            },
            _ if n % 3 == 1 => Answer::Raw {
                status: 200,
                headers: vec![],
                body: format!(r#"{{"data":{{"url":"http://hooks.local/ptr/{id}"}}}}"#),
                created: true,
            },
            _ => reply(200, r#"{"data":{}}"#),
        }
    });
    let mut w = world(
        &paste.api_url(),
        "kind = \"webhook\"\nurl_pointer = \"/data/url\"\nrefused_retry = \"300ms\"\nconcurrency = 1",
    );
    let ids: HashSet<String> = (0..15).map(|i| format!("hook-{i}")).collect();
    for (i, id) in ids.iter().enumerate() {
        let _: () = w.conn.lpush(QUEUE, task(id, i as u64)).unwrap();
    }
    let mut d = Daemon::start(&w.config, &w.dir.path().join("daemon.log"));
    wait_until("all delivered", Duration::from_secs(30), || results(w.dir.path()).len() == ids.len());
    d.sigterm();
    assert!(d.wait(Duration::from_secs(30)).success());
    let dead: usize = w.conn.llen(format!("{QUEUE}:dead")).unwrap();
    assert_eq!(dead, 0, "429, 401 and an answer without a URL are never the task's fault");
    for l in results(w.dir.path()) {
        let id = l["id"].as_str().unwrap();
        let url = l["url"].as_str().unwrap();
        assert!(
            url == format!("http://hooks.local/loc/{id}") || url == format!("http://hooks.local/ptr/{id}"),
            "{url}"
        );
    }
    let r = paste.requests();
    assert!(r[1].at.duration_since(r[0].at) >= Duration::from_millis(950), "Retry-After: 1 honoured");
    let log = d.log_text();
    assert!(log.contains("refuses us"), "a 401 is a refusal");
}
