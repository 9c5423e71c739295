//! Every guarantee of the contract under real failures: processes stopped,
//! killed and restarted, a paste server that misbehaves on purpose, duplicate
//! and hostile input. Each test waits for conditions with deadlines; where a
//! test sleeps, the sleep is the length of an outage, not synchronisation.

mod support;

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use redis::Commands;
use support::fake_paste::{reply, Answer, FakePaste};
use support::*;

const QUEUE: &str = "device-lookup:tasks";
const SEED: u64 = 21;
const ROWS: u64 = 2000;

struct World {
    dir: tempfile::TempDir,
    redis: Redis,
    ch: ClickHouse,
    config: PathBuf,
    starts: usize,
}

impl World {
    fn new(paste_api_url: &str, redis_appendonly: bool, extra: &str) -> World {
        let dir = tempfile::tempdir().unwrap();
        let redis = Redis::start(dir.path(), redis_appendonly);
        let ch = ClickHouse::start(dir.path());
        let extra = format!("timeout = \"500ms\"\nrefused_retry = \"300ms\"\nquota_cooldown = \"300ms\"\n{extra}");
        let config = write_config(dir.path(), &redis, &ch, paste_api_url, &extra);
        let (status, _, err) = run_cli(&config, &["seed", "--rows", &ROWS.to_string(), "--seed", &SEED.to_string()]);
        assert!(status.success(), "seed: {err}");
        World { dir, redis, ch, config, starts: 0 }
    }

    fn enqueue(&self, count: u64, invalid_ratio: f64, seed: u64) {
        self.enqueue_with(count, 0.9, invalid_ratio, seed)
    }

    fn enqueue_with(&self, count: u64, hit_ratio: f64, invalid_ratio: f64, seed: u64) {
        let (count, hit, invalid, seed) =
            (count.to_string(), hit_ratio.to_string(), invalid_ratio.to_string(), seed.to_string());
        let args = ["enqueue", "--count", &count, "--hit-ratio", &hit, "--invalid-ratio", &invalid, "--seed", &seed];
        let (status, _, err) = run_cli(&self.config, &args);
        assert!(status.success(), "enqueue: {err}");
    }

    fn push(&self, payload: &str) {
        let _: () = self.redis.conn().lpush(QUEUE, payload).unwrap();
    }

    /// Ids in the queue now whose device is in the table.
    fn queued_hits(&self) -> HashSet<String> {
        hits_in_list(&mut self.redis.conn(), QUEUE, SEED, ROWS)
    }

    fn daemon(&mut self) -> Daemon {
        self.starts += 1;
        Daemon::start(&self.config, &self.dir.path().join(format!("daemon-{}.log", self.starts)))
    }

    fn result_ids(&self) -> Vec<String> {
        results(self.dir.path()).iter().map(|l| l["id"].as_str().unwrap().to_owned()).collect()
    }

    fn redis_len(&self, key: &str) -> usize {
        self.redis.conn().llen(key).unwrap()
    }

    /// Tasks held in processing hashes.
    fn processing(&self) -> usize {
        tasks_in_processing(&mut self.redis.conn(), QUEUE)
    }

    /// Queue and processing hashes empty, and `n` results written.
    fn wait_done(&self, n: usize, timeout: Duration) {
        wait_until(&format!("{n} results and empty queues"), timeout, || {
            self.result_ids().len() >= n && self.redis_len(QUEUE) == 0 && self.processing() == 0
        });
    }

    fn assert_exactly(&self, hits: &HashSet<String>) {
        let ids = self.result_ids();
        let unique: HashSet<String> = ids.iter().cloned().collect();
        assert_eq!(unique.len(), ids.len(), "an id was written twice");
        assert_eq!(&unique, hits, "results differ from the hits");
    }
}

/// A failing test shows the end of each daemon log, and keeps its directory.
impl Drop for World {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let kept = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap()).keep();
            eprintln!("--- test directory kept: {}", kept.display());
            self.dir = tempfile::TempDir::new_in(&kept).unwrap();
            for n in 1..=self.starts {
                let log = std::fs::read_to_string(kept.join(format!("daemon-{n}.log"))).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(25).collect();
                eprintln!("--- daemon-{n}.log (last lines but debug) ---");
                for l in tail.iter().rev() {
                    eprintln!("{l}");
                }
            }
        }
    }
}

fn stop(mut d: Daemon) {
    d.sigterm();
    let status = d.wait(Duration::from_secs(40));
    assert!(status.success(), "exit {status:?}\n{}", d.log_text());
}

fn task_json(id: &str, i: u64) -> String {
    task_payload(SEED, id, i)
}

#[test]
fn transient_paste_failures_are_retried_never_dead_lettered() {
    // The first requests fail in every transient way; then the service recovers.
    let paste = FakePaste::start(|_, n| match n {
        0 => reply(500, "Internal Server Error"),
        1 => reply(200, "<!DOCTYPE html><html><body>Pastebin is down for maintenance</body></html>"),
        2 => Answer::Hang(Duration::from_secs(5)),
        3 => reply(503, ""),
        4 => reply(408, "Request Timeout"),
        5 => reply(502, "<html>Bad Gateway</html>"),
        6 => Answer::Slow(Duration::from_millis(300)),
        _ => Answer::Create,
    });
    let mut w = World::new(&paste.api_url(), false, "");
    w.enqueue(200, 0.0, 1);
    let hits = w.queued_hits();
    let d = w.daemon();
    w.wait_done(hits.len(), Duration::from_secs(60));
    stop(d);
    w.assert_exactly(&hits);
    assert_eq!(w.redis_len(&format!("{QUEUE}:dead")), 0, "nothing dead-lettered for transient failures");
    let created: HashSet<String> = paste.created_ids().into_iter().collect();
    assert_eq!(created, hits);
}

#[test]
fn rejected_documents_count_toward_max_attempts() {
    let paste = FakePaste::start(|form, _| {
        if form["api_paste_name"].starts_with("rejected") {
            reply(422, "Bad API request, maximum paste file size exceeded")
        } else {
            Answer::Create
        }
    });
    let mut w = World::new(&paste.api_url(), false, "max_attempts = 3");
    w.push(&task_json("rejected-1", 1));
    w.push(&task_json("fine-1", 2));
    let d = w.daemon();
    wait_until("the rejected task to be dead-lettered", Duration::from_secs(30), || {
        w.redis_len(&format!("{QUEUE}:dead")) == 1 && w.result_ids() == ["fine-1"]
    });
    stop(d);
    let tries = paste.requests().iter().filter(|r| r.form["api_paste_name"] == "rejected-1").count();
    assert_eq!(tries, 3, "max_attempts = 3");
    let dead: String = w.redis.conn().lindex(format!("{QUEUE}:dead"), 0).unwrap();
    let dead: serde_json::Value = serde_json::from_str(&dead).unwrap();
    assert!(dead["error"].as_str().unwrap().contains("maximum paste file size exceeded"), "{dead}");
    assert!(dead["payload"].as_str().unwrap().contains("rejected-1"));
}

#[test]
fn refused_key_stops_intake_and_keeps_every_task() {
    let paste = FakePaste::start(|_, _| reply(200, "Bad API request, invalid api_dev_key"));
    let mut w = World::new(&paste.api_url(), false, "");
    w.enqueue_with(100, 1.0, 0.0, 2);
    let hits = w.queued_hits();
    let d = w.daemon();
    wait_until("the refusal to be logged", Duration::from_secs(20), || d.log_text().contains("refuses us"));
    // While refused, the daemon retries every refused_retry (300 ms) with one
    // request, and keeps everything.
    wait_until("a few more probes", Duration::from_secs(20), || paste.requests().len() >= 4);
    assert_eq!(w.redis_len(&format!("{QUEUE}:dead")), 0);
    assert!(w.result_ids().is_empty());
    assert_eq!(w.redis_len(QUEUE) + w.processing(), 100, "every task is kept in Redis");
    let log = d.log_text();
    assert!(!log.contains("test-key"), "the key leaked into the log");
    let (status, body) = readyz(&w.config);
    assert_eq!(status, 503, "not ready while refused");
    assert!(body["problems"]["paste_service"].as_str().unwrap().contains("invalid api_dev_key"), "{body}");
    assert_eq!(scrape(&w.config)["device_lookup_paste_refused{}"], 1.0);

    paste.set(|_, _| Answer::Create);
    w.wait_done(hits.len(), Duration::from_secs(30));
    assert_eq!(readyz(&w.config).0, 200, "ready again once the key works");
    stop(d);
    w.assert_exactly(&hits);
}

/// A `publisher.url` that answers with a redirect is refused, not followed
/// (a 301 would turn the POST into a GET without the document): intake
/// stops, `/readyz` names where the service points, and every task is kept.
#[test]
fn a_redirecting_publisher_url_is_refused_not_followed() {
    let paste = FakePaste::start(|_, _| Answer::Raw {
        status: 301,
        headers: vec![("Location".into(), "https://paste.example/api/api_post.php".into())],
        body: String::new(),
        created: false,
    });
    let mut w = World::new(&paste.api_url(), false, "");
    w.enqueue_with(20, 1.0, 0.0, 5);
    let hits = w.queued_hits();
    let d = w.daemon();
    wait_until("not ready, naming the Location", Duration::from_secs(20), || {
        let (status, body) = readyz(&w.config);
        status == 503
            && body["problems"]["paste_service"].as_str().is_some_and(|p| p.contains("https://paste.example/api"))
    });
    assert!(w.result_ids().is_empty());
    assert_eq!(w.redis_len(&format!("{QUEUE}:dead")), 0);
    assert_eq!(w.redis_len(QUEUE) + w.processing(), 20, "every task is kept in Redis");

    paste.set(|_, _| Answer::Create);
    w.wait_done(hits.len(), Duration::from_secs(30));
    stop(d);
    w.assert_exactly(&hits);
}

#[test]
fn post_limit_pauses_for_retry_after() {
    let paste = FakePaste::start(|_, n| match n {
        0 => Answer::Reply {
            status: 422,
            body: "Post limit, maximum pastes per 24h reached".into(),
            retry_after: Some(1),
        },
        1 => Answer::Reply { status: 429, body: "Too Many Requests".into(), retry_after: Some(1) },
        _ => Answer::Create,
    });
    // One request at a time, so that each answer is seen before the next is sent.
    let mut w = World::new(&paste.api_url(), false, "concurrency = 1");
    w.enqueue(30, 0.0, 3);
    let hits = w.queued_hits();
    let d = w.daemon();
    w.wait_done(hits.len(), Duration::from_secs(30));
    stop(d);
    w.assert_exactly(&hits);
    let r = paste.requests();
    for i in 0..2 {
        let gap = r[i + 1].at.duration_since(r[i].at);
        assert!(gap >= Duration::from_millis(950), "request {} came {gap:?} after a Retry-After: 1", i + 1);
    }
    assert_eq!(w.redis_len(&format!("{QUEUE}:dead")), 0);
}

#[test]
fn clickhouse_outage_mid_run() {
    // A slow sink and a small in-flight bound, so lookups are still going on
    // when ClickHouse goes away.
    let paste = FakePaste::start(|_, _| Answer::Slow(Duration::from_millis(5)));
    let mut w = World::new(&paste.api_url(), false, "concurrency = 2\n[daemon]\nmax_in_flight = 100");
    w.enqueue(3000, 0.0, 4);
    let hits = w.queued_hits();
    let d = w.daemon();
    wait_until("some progress", Duration::from_secs(30), || w.result_ids().len() >= 100);
    w.ch.stop();
    wait_until("the outage to be noticed", Duration::from_secs(20), || d.log_text().contains("ClickHouse failed"));
    let (status, body) = readyz(&w.config);
    assert_eq!(status, 503, "not ready while ClickHouse is down");
    assert!(body["problems"]["clickhouse"].is_string(), "{body}");
    assert_eq!(scrape(&w.config)["device_lookup_dependency_failing{dependency=clickhouse}"], 1.0);
    std::thread::sleep(Duration::from_secs(3)); // the outage
    let restarted = Instant::now();
    w.ch.restart();
    wait_until("ready again", Duration::from_secs(10), || readyz(&w.config).0 == 200);
    w.wait_done(hits.len(), Duration::from_secs(60));
    let resumed_in = restarted.elapsed();
    stop(d);
    w.assert_exactly(&hits);
    assert_eq!(w.redis_len(&format!("{QUEUE}:dead")), 0);
    assert!(resumed_in < Duration::from_secs(30), "took {resumed_in:?}");
}

#[test]
fn redis_restart_mid_run() {
    let paste = FakePaste::start(|_, _| Answer::Create);
    let mut w = World::new(&paste.api_url(), true, "");
    w.enqueue(3000, 0.05, 5);
    let hits = w.queued_hits();
    let d = w.daemon();
    wait_until("some progress", Duration::from_secs(30), || w.result_ids().len() >= 200);
    w.redis.stop();
    wait_until("the outage to be noticed", Duration::from_secs(20), || d.log_text().contains("Redis failed"));
    std::thread::sleep(Duration::from_secs(2)); // the outage
    w.redis.restart();
    w.wait_done(hits.len(), Duration::from_secs(60));
    stop(d);
    w.assert_exactly(&hits);
    let dead: Vec<String> = w.redis.conn().lrange(format!("{QUEUE}:dead"), 0, -1).unwrap();
    assert!(dead.iter().all(|e| !e.contains("Redis")), "only malformed tasks are dead");
}

#[test]
fn kill_9_at_random_moments_loses_and_duplicates_nothing() {
    let paste = FakePaste::start(|_, _| Answer::Create);
    let mut w = World::new(&paste.api_url(), false, "[lookup]\nbatch_size = 50\n[daemon]\nmax_in_flight = 300");
    w.enqueue(4000, 0.02, 6);
    let hits = w.queued_hits();
    let mut rng = device_lookup::gen::Rng::new(std::process::id() as u64);
    for round in 0..3 {
        let mut d = w.daemon();
        let target = w.result_ids().len() + 300 + rng.below(700) as usize;
        wait_until("progress before the kill", Duration::from_secs(60), || w.result_ids().len() >= target);
        // A random moment a little later, mid-write or mid-settle.
        std::thread::sleep(Duration::from_millis(rng.below(40)));
        d.kill9();
        eprintln!("round {round}: killed at {} results", w.result_ids().len());
    }
    let d = w.daemon();
    w.wait_done(hits.len(), Duration::from_secs(90));
    stop(d);
    w.assert_exactly(&hits);
    // Every line points at a paste that exists; a paste is made twice only for
    // tasks that were in flight to the paste service at a kill.
    let created = paste.created_ids();
    let created_set: HashSet<&String> = created.iter().collect();
    assert!(hits.iter().all(|h| created_set.contains(h)));
    assert!(created.len() <= hits.len() + 3 * 300, "{} pastes for {} hits", created.len(), hits.len());
    let urls: HashSet<String> = results(w.dir.path()).iter().map(|l| l["url"].as_str().unwrap().to_owned()).collect();
    assert_eq!(urls.len(), hits.len(), "each line has its own paste");
}

/// With a fixed consumer name (`redis.consumer`) a restarted daemon is the
/// same consumer, so no other consumer recovers what its killed life held:
/// it takes those tasks again itself, at start.
#[test]
fn a_fixed_consumer_takes_its_own_tasks_again_after_kill_9() {
    let paste = FakePaste::start(|_, _| Answer::Slow(Duration::from_millis(5)));
    let mut w = World::new(&paste.api_url(), false, "concurrency = 2\n[daemon]\nmax_in_flight = 200");
    set_key(&w.config, "redis", "consumer = \"fixed\"");
    w.enqueue(1000, 0.0, 8);
    let hits = w.queued_hits();
    let mut d = w.daemon();
    wait_until("progress", Duration::from_secs(30), || w.result_ids().len() >= 100);
    d.kill9();
    assert!(w.processing() > 0, "the killed daemon held tasks");
    let d = w.daemon();
    w.wait_done(hits.len(), Duration::from_secs(60));
    stop(d);
    w.assert_exactly(&hits);
}

#[test]
fn sigterm_under_load_exits_0_and_loses_nothing() {
    let paste = FakePaste::start(|_, _| Answer::Slow(Duration::from_millis(5)));
    let mut w = World::new(
        &paste.api_url(),
        false,
        "concurrency = 4\n[daemon]\nshutdown_timeout = \"10s\"\nmax_in_flight = 200",
    );
    w.enqueue(3000, 0.0, 7);
    let hits = w.queued_hits();
    let mut d = w.daemon();
    wait_until("load", Duration::from_secs(30), || w.result_ids().len() >= 300);
    let asked = Instant::now();
    d.sigterm();
    let status = d.wait(Duration::from_secs(15));
    assert!(status.success(), "{status:?}\n{}", d.log_text());
    assert!(asked.elapsed() < Duration::from_secs(12), "shutdown took {:?}", asked.elapsed());
    assert_eq!(w.processing(), 0, "a clean stop leaves no task in processing");
    let during = w.result_ids().len();
    assert!(during < hits.len(), "the test stopped the daemon too late to mean anything");
    let d = w.daemon();
    w.wait_done(hits.len(), Duration::from_secs(60));
    stop(d);
    w.assert_exactly(&hits);
}

#[test]
fn the_same_id_twice_gives_one_paste_and_one_line() {
    let paste = FakePaste::start(|_, _| Answer::Slow(Duration::from_millis(50)));
    let mut w = World::new(&paste.api_url(), false, "");
    let task = task_json("twice", 7);
    w.push(&task);
    w.push(&task);
    w.push(&task_json("twice", 8)); // same id, another device
    let d = w.daemon();
    w.wait_done(1, Duration::from_secs(30));
    w.push(&task); // and once more, after it was published
    w.wait_done(1, Duration::from_secs(30));
    wait_until("all four settled", Duration::from_secs(30), || {
        d.log_text().contains("\"tasks\"") || {
            let dup: usize = w.redis_len(QUEUE);
            dup == 0 && w.processing() == 0
        }
    });
    stop(d);
    assert_eq!(w.result_ids(), ["twice"]);
    assert_eq!(paste.created_ids(), ["twice"]);
    let log = std::fs::read_to_string(w.dir.path().join("daemon-1.log")).unwrap();
    assert!(log.contains("published=1 not_found=0 dead=0 duplicate=3"), "{log}");
}

#[test]
fn hostile_input_is_dead_lettered_and_the_daemon_goes_on() {
    let paste = FakePaste::start(|_, _| Answer::Create);
    let mut w = World::new(&paste.api_url(), false, "");
    let mut c = w.redis.conn();
    let mut hostile: Vec<Vec<u8>> = vec![
        b"not json".to_vec(),
        b"[]".to_vec(),
        br#"{"ipv4":"10.0.0.1","mac":"aabbccddeeff"}"#.to_vec(),
        br#"{"id":"","ipv4":"10.0.0.1","mac":"aabbccddeeff"}"#.to_vec(),
        format!(r#"{{"id":"{}","ipv4":"10.0.0.1","mac":"aabbccddeeff"}}"#, "i".repeat(1000)).into_bytes(),
        br#"{"id":{"a":1},"ipv4":"10.0.0.1","mac":"aabbccddeeff"}"#.to_vec(),
        br#"{"id":"h1","ipv4":"999.1.1.1","mac":"aabbccddeeff"}"#.to_vec(),
        br#"{"id":"h2","ipv4":"1.2.3","mac":"aabbccddeeff"}"#.to_vec(),
        br#"{"id":"h3","ipv4":167772161,"mac":"aabbccddeeff"}"#.to_vec(),
        br#"{"id":"h4","ipv4":"10.0.0.1","mac":"aa:bb:cc"}"#.to_vec(),
        br#"{"id":"h5","ipv4":"10.0.0.1","mac":"gg:bb:cc:dd:ee:ff"}"#.to_vec(),
        b"{\"id\":\"h6\xc3\x28\",\"ipv4\":\"10.0.0.1\",\"mac\":\"aabbccddeeff\"}".to_vec(),
        vec![0xff; 100],
        vec![b'{'; 1 << 20],
    ];
    hostile.push(task_json("good", 3).into_bytes());
    for p in &hostile {
        let _: () = c.lpush(QUEUE, p).unwrap();
    }
    let d = w.daemon();
    w.wait_done(1, Duration::from_secs(30));
    wait_until("every hostile payload dead-lettered", Duration::from_secs(10), || {
        w.redis_len(&format!("{QUEUE}:dead")) == hostile.len() - 1
    });
    stop(d);
    assert_eq!(w.result_ids(), ["good"]);
}

/// The results file on a tiny tmpfs that fills up: writes fail with ENOSPC,
/// intake pauses, nothing is lost or dead-lettered, and everything is written
/// once space returns. Needs root for `mount`; skipped elsewhere.
#[test]
fn full_disk_pauses_and_resumes() {
    let paste = FakePaste::start(|_, _| Answer::Create);
    let mut w = World::new(&paste.api_url(), false, "");
    let disk = w.dir.path().join("disk");
    std::fs::create_dir_all(&disk).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
        .arg(&disk)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(disk.clone());
    // Fill the disk but for a few KiB.
    let filler = disk.join("filler");
    let _ = std::fs::write(&filler, vec![0u8; 250 * 1024]);
    let config = std::fs::read_to_string(&w.config).unwrap().replace(
        &format!("path = \"{}\"", w.dir.path().join("results.jsonl").display()),
        &format!("path = \"{}\"", disk.join("results.jsonl").display()),
    );
    std::fs::write(&w.config, config).unwrap();
    w.enqueue_with(300, 1.0, 0.0, 8);
    let hits = w.queued_hits();
    let d = w.daemon();
    wait_until("the full disk to be noticed", Duration::from_secs(30), || d.log_text().contains("results file failed"));
    assert_eq!(w.redis_len(&format!("{QUEUE}:dead")), 0);
    std::fs::remove_file(&filler).unwrap();
    let text = || std::fs::read_to_string(disk.join("results.jsonl")).unwrap_or_default();
    // The lines up to the last newline: while the daemon runs, the file may
    // end in a line it is appending at that moment.
    let lines = |text: &str| {
        text[..text.rfind('\n').map_or(0, |i| i + 1)]
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["id"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    wait_until("every result written after space returned", Duration::from_secs(30), || {
        lines(&text()).len() == hits.len() && w.redis_len(QUEUE) == 0 && w.processing() == 0
    });
    stop(d);
    let text = text();
    assert!(text.is_empty() || text.ends_with('\n'), "a torn last line: {:?}", text.lines().last());
    let ids = lines(&text);
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len(), "an id written twice");
    assert_eq!(ids.into_iter().collect::<HashSet<_>>(), hits);
    assert!(w.result_ids().is_empty());
    assert_eq!(w.redis_len(&format!("{QUEUE}:dead")), 0);
}
