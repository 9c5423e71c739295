//! Each actor alone, against a recording stand-in for the actors it sends to
//! (they know messages, not each other): the ResultWriter, the
//! PublisherActor with a small local sink, the LookupActor against a real
//! ClickHouse, the QueueReader against a real Redis.

mod support;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use bytes::Bytes;
use device_lookup::actors::lookup::LookupActor;
use device_lookup::actors::publisher::PublisherActor;
use device_lookup::actors::queue_reader::{AttachLookups, QueueReader};
use device_lookup::actors::result_writer::{ResultWriter, WriterOutlets};
use device_lookup::config::Settings;
use device_lookup::lease::LeaseClock;
use device_lookup::messages::{
    Delivery, Fence, FenceAnswer, FencePurpose, Found, Job, Lookup, Outcome, Publish, Published, Record, Recovered,
    Settle, Settled,
};
use device_lookup::metrics::Metrics;
use redis::Commands;
use support::*;

/// What the stand-in was sent.
#[derive(Default)]
struct Seen {
    settled: Vec<Settled>,
    recovered: Option<Recovered>,
    fences: Vec<(FencePurpose, Vec<String>)>,
    records: Vec<Published>,
    published: Vec<Found>,
    lookups: Vec<Job>,
}

/// Stands in for every actor the one under test sends to. It answers a fence
/// as the QueueReader would: every task is ours, but those whose id starts
/// with `lost`.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Seen>>);

impl Recorder {
    fn seen<R>(&self, f: impl FnOnce(&Seen) -> R) -> R {
        f(&self.0.lock().unwrap())
    }
}

impl Actor for Recorder {
    type Context = Context<Self>;
}

impl Handler<Settle> for Recorder {
    type Result = ();
    fn handle(&mut self, msg: Settle, _: &mut Context<Self>) {
        self.0.lock().unwrap().settled.extend(msg.items);
        if let Some(durable) = msg.durable {
            let _ = durable.send(());
        }
    }
}

impl Handler<Recovered> for Recorder {
    type Result = ();
    fn handle(&mut self, msg: Recovered, _: &mut Context<Self>) {
        self.0.lock().unwrap().recovered = Some(msg);
    }
}

impl Handler<Fence> for Recorder {
    type Result = Vec<FenceAnswer>;
    fn handle(&mut self, msg: Fence, _: &mut Context<Self>) -> Vec<FenceAnswer> {
        let ids: Vec<String> = msg.jobs.iter().map(|j| j.task.id.clone()).collect();
        let answers = ids
            .iter()
            .map(|id| if id.starts_with("lost") { FenceAnswer::Dropped } else { FenceAnswer::Go { epoch: 1 } })
            .collect();
        self.0.lock().unwrap().fences.push((msg.purpose, ids));
        answers
    }
}

impl Handler<Record> for Recorder {
    type Result = ();
    fn handle(&mut self, msg: Record, _: &mut Context<Self>) {
        self.0.lock().unwrap().records.extend(msg.0);
    }
}

impl Handler<Publish> for Recorder {
    type Result = ();
    fn handle(&mut self, msg: Publish, _: &mut Context<Self>) {
        self.0.lock().unwrap().published.extend(msg.0);
    }
}

impl Handler<Lookup> for Recorder {
    type Result = ();
    fn handle(&mut self, msg: Lookup, _: &mut Context<Self>) {
        self.0.lock().unwrap().lookups.extend(msg.jobs);
    }
}

fn settings(text: &str) -> Arc<Settings> {
    Arc::new(Settings::from_toml(text, Path::new("t.toml"), Vec::new()).unwrap())
}

fn log() -> slog::Logger {
    slog::Logger::root(slog::Discard, slog::o!())
}

fn job(id: &str, i: u32) -> Job {
    let payload = format!(r#"{{"id":"{id}","ipv4":"10.0.0.{i}","mac":"aa:bb:cc:dd:ee:{i:02x}"}}"#);
    let task = device_lookup::task::parse_json(payload.as_bytes()).unwrap();
    Job { delivery: Delivery::from_list(1, i, Bytes::from(payload)), task }
}

fn found(id: &str, i: u32) -> Found {
    let j = job(id, i);
    Found { delivery: j.delivery, task: j.task, username: format!("user-{i}") }
}

/// Waits, yielding to the actors, until `cond` holds.
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The writer reports the file at start, asks to fence every batch for
/// writing, writes lines only for what the fence kept, and settles those.
#[actix_rt::test]
async fn result_writer_writes_only_what_the_fence_keeps() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("results.jsonl");
    let s = settings(&format!("[output]\npath = \"{}\"", path.display()));
    let rec = Recorder::default();
    let to_rec = rec.clone().start();
    let to = WriterOutlets {
        settle: to_rec.clone().recipient(),
        recovered: to_rec.clone().recipient(),
        fence: to_rec.clone().recipient(),
    };
    let writer = ResultWriter::new(s, log(), Arc::new(Metrics::default()), to).start();
    until("the start report", || rec.seen(|s| s.recovered.is_some())).await;
    assert_eq!(rec.seen(|s| s.recovered.as_ref().unwrap().file_id.len()), 32);

    let batch = ["a", "lost-b", "c"]
        .iter()
        .zip(1..)
        .map(|(id, i)| Published { found: found(id, i), url: format!("https://p/{id}") })
        .collect();
    writer.do_send(Record(batch));
    until("two settled", || rec.seen(|s| s.settled.len() == 2)).await;
    let lines: Vec<serde_json::Value> =
        std::fs::read_to_string(&path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let ids: Vec<&str> = lines.iter().map(|l| l["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["a", "c"], "no line for what the fence dropped");
    rec.seen(|s| {
        assert_eq!(s.fences, [(FencePurpose::Write, vec!["a".into(), "lost-b".into(), "c".into()])]);
        for settled in &s.settled {
            let id = settled.task_id.as_deref().unwrap();
            assert!(matches!(&settled.outcome, Outcome::Published { url } if *url == format!("https://p/{id}")));
        }
    });
}

/// The publisher fences tasks whose claim is not proven (epoch 0), sends
/// what the fence keeps, and hands the URLs on as a Record.
#[actix_rt::test]
async fn publisher_asks_before_it_sends_and_records_urls() {
    // awc's TLS needs a process-wide crypto provider, as `execute` installs.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let requests = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = requests.clone();
    let server = actix_web::HttpServer::new(move || {
        let seen = seen.clone();
        actix_web::App::new().default_service(actix_web::web::to(move |body: Bytes| {
            let seen = seen.clone();
            async move {
                let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
                let id = doc["id"].as_str().unwrap().to_owned();
                seen.lock().unwrap().push(id.clone());
                actix_web::HttpResponse::Ok().body(format!("https://sink.example/{id}"))
            }
        }))
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let port = server.addrs()[0].port();
    actix_rt::spawn(server.run());

    let s = settings(&format!("[publisher]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{port}/p\""));
    let rec = Recorder::default();
    let to_rec = rec.clone().start();
    // Epoch 1 is live, as the QueueReader's heartbeats keep it, and the
    // stand-in answers with it (the QueueReader answers only with the live one).
    let clock = Arc::new(LeaseClock::new(Duration::from_secs(15)));
    clock.confirm(std::time::Instant::now());
    let publisher = PublisherActor::new(
        s,
        log(),
        Arc::new(Metrics::default()),
        to_rec.clone().recipient(),
        to_rec.clone().recipient(),
        to_rec.clone().recipient(),
        clock,
    )
    .start();
    publisher.do_send(Publish(vec![found("x1", 1), found("lost-x2", 2), found("x3", 3)]));
    until("two recorded", || rec.seen(|s| s.records.len() == 2)).await;
    rec.seen(|s| {
        assert_eq!(s.fences, [(FencePurpose::Publish, vec!["x1".into(), "lost-x2".into(), "x3".into()])]);
        let mut urls: Vec<&str> = s.records.iter().map(|p| p.url.as_str()).collect();
        urls.sort();
        assert_eq!(urls, ["https://sink.example/x1", "https://sink.example/x3"]);
    });
    let mut sent = requests.lock().unwrap().clone();
    sent.sort();
    assert_eq!(sent, ["x1", "x3"], "nothing sent for what the fence dropped");
}

/// The lookup queries ClickHouse for a batch: found tasks go on to publish
/// with their account, the rest are settled as not found.
#[actix_rt::test]
async fn lookup_publishes_the_found_and_settles_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let ch = ClickHouse::start(dir.path());
    let config = dir.path().join("c.toml");
    let text = format!("[clickhouse]\nurl = \"{}\"\n[lookup]\nbatch_wait = \"1ms\"", ch.url());
    std::fs::write(&config, &text).unwrap();
    assert!(run_cli(&config, &["seed", "--rows", "50", "--seed", "5"]).0.success());
    let rec = Recorder::default();
    let to_rec = rec.clone().start();
    let lookup = LookupActor::new(
        settings(&text),
        log(),
        Arc::new(Metrics::default()),
        to_rec.clone().recipient(),
        to_rec.recipient(),
        0,
    )
    .start();
    let mut jobs = Vec::new();
    for i in 0..3 {
        let payload = task_payload(5, &format!("hit-{i}"), i);
        let task = device_lookup::task::parse_json(payload.as_bytes()).unwrap();
        jobs.push(Job { delivery: Delivery::from_list(1, i as u32, Bytes::from(payload)), task });
    }
    jobs.push(job("miss", 200));
    lookup.do_send(Lookup { jobs, backlog: false });
    until("the batch answered", || rec.seen(|s| s.published.len() == 3 && s.settled.len() == 1)).await;
    rec.seen(|s| {
        for (f, i) in s.published.iter().zip(0..) {
            assert_eq!(f.username, device_lookup::gen::device(5, i).username);
        }
        assert_eq!(s.settled[0].task_id.as_deref(), Some("miss"));
        assert!(matches!(s.settled[0].outcome, Outcome::NotFound));
    });
}

/// The QueueReader takes tasks from Redis once told what the results file
/// holds: malformed ones are dead-lettered, an id already published is
/// settled as a duplicate, the rest reach the lookup recipient parsed, and a
/// settle removes them from Redis.
#[actix_rt::test]
async fn queue_reader_hands_on_parsed_tasks_and_settles_them() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path(), false);
    let s = settings(&format!("[redis]\nurl = \"{}\"\nlease = \"2s\"", redis.url()));
    let mut conn = redis.conn();
    let q = "device-lookup:tasks";
    for payload in [job("t1", 1).task.id.clone(), "not json".into(), "dup".into(), "t2".into()] {
        let body = match payload.as_str() {
            "not json" => payload,
            id => format!(r#"{{"id":"{id}","ipv4":"10.0.0.1","mac":"aa:bb:cc:dd:ee:01"}}"#),
        };
        let _: () = conn.lpush(q, body).unwrap();
    }
    let _: () = conn.set(format!("{q}:id:dup"), "done:https://p/earlier").unwrap();

    let rec = Recorder::default();
    let to_rec = rec.clone().start();
    let clock = Arc::new(LeaseClock::new(Duration::from_secs(2)));
    let reader = Supervisor::start({
        let s = s.clone();
        move |_| QueueReader::new(s, log(), Arc::new(Metrics::default()), "unit".into(), clock)
    });
    reader.do_send(AttachLookups(vec![to_rec.recipient()]));
    reader.do_send(Recovered { lines: Vec::new(), file_id: "f".into() });
    until("two tasks looked up", || rec.seen(|s| s.lookups.len() == 2)).await;
    let ids: Vec<String> = rec.seen(|s| s.lookups.iter().map(|j| j.task.id.clone()).collect());
    assert_eq!(ids, ["t1", "t2"], "first in, first out; the malformed and the duplicate are not looked up");
    until("the malformed one dead, the duplicate settled", || {
        conn.llen::<_, usize>(format!("{q}:dead")).unwrap() == 1 && tasks_in_processing(&mut conn, q) == 2
    })
    .await;

    let jobs = rec.seen(|s| s.lookups.clone());
    let settled = jobs.into_iter().map(|j| Settled {
        task_id: Some(j.task.id),
        delivery: j.delivery,
        outcome: Outcome::NotFound,
    });
    reader.do_send(Settle::new(settled.collect()));
    until("nothing left in Redis", || tasks_in_processing(&mut conn, q) == 0 && conn.llen::<_, usize>(q).unwrap() == 0)
        .await;
}
