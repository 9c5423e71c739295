//! Stage ceilings for the end-to-end benchmark: each stage of the pipeline
//! alone, as fast as this machine lets it go, using the daemon's own code:
//! - Redis: all the daemon asks of it per task: taking (the Lua fetch into
//!   the processing hash), checking and claiming the ids, and settling them
//!   as published (done record replacing the claim, the fetch's entry
//!   removed), 256 at a time;
//! - ClickHouse: batched lookups of `lookup.batch_size` (4000) devices, two
//!   queries at a time (the daemon's batches under a backlog);
//! - the sink: the publisher's pastebin-form POSTs of found documents, on the
//!   publisher's own HTTP client and request, `publisher.concurrency` (32) in
//!   flight, each answer read and classified.
//!
//! Run by `benches/pipeline.sh`, which starts the servers and passes them in
//! BENCH_REDIS_URL, BENCH_CLICKHOUSE_URL and BENCH_SINK_URL; alone it skips.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use device_lookup::config::QueueMode;
use device_lookup::config::{PublisherSettings, Settings};
use device_lookup::db::{Db, KeyLookup};
use device_lookup::messages::{Outcome, Settled};
use device_lookup::queue::Holdings;
use device_lookup::queue::{Check, Queue};
use device_lookup::sink::request::{pastebin_form, post_request};
use device_lookup::sink::verdict::{classify_pastebin, Verdict};
use device_lookup::task::{Document, Mac, Task};

fn main() {
    let (Ok(redis), Ok(clickhouse), Ok(sink)) =
        (std::env::var("BENCH_REDIS_URL"), std::env::var("BENCH_CLICKHOUSE_URL"), std::env::var("BENCH_SINK_URL"))
    else {
        println!("stages: skipped (run through benches/pipeline.sh, which starts the servers)");
        return;
    };
    let tasks: usize = std::env::var("BENCH_TASKS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let text = format!(
        "[redis]\nurl = \"{redis}\"\nqueue = \"bench:stage\"\n[clickhouse]\nurl = \"{clickhouse}\"\n\
         [publisher]\nurl = \"{sink}\"\napi_dev_key = \"bench\"\n"
    );
    let settings = Settings::from_toml(&text, std::path::Path::new("bench"), Vec::new()).expect("bench settings");
    actix_rt::System::new().block_on(async move {
        report("redis", tasks, redis_stage(&settings, tasks).await);
        report("clickhouse", tasks, clickhouse_stage(&settings, tasks).await);
        // As many as a drain publishes, up to 100k: long enough that setting
        // up the connections does not count.
        let posts = tasks.min(100_000);
        report("sink", posts, sink_stage(&settings.publisher, posts).await);
    });
}

fn report(stage: &str, n: usize, took: Duration) {
    println!(
        "{{\"stage\":\"{stage}\",\"items\":{n},\"seconds\":{:.3},\"per_sec\":{:.0}}}",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64()
    );
}

async fn redis_stage(settings: &Settings, tasks: usize) -> Duration {
    let q = Queue::connect(&settings.redis, "bench").await.expect("redis");
    let mut conn =
        redis::Client::open(settings.redis.url.expose()).unwrap().get_multiplexed_async_connection().await.unwrap();
    // Ids new to Redis in every run: an id published by an earlier run would
    // be a duplicate.
    let run = std::process::id();
    for chunk in (0..tasks).collect::<Vec<_>>().chunks(5000) {
        let mut pipe = redis::pipe();
        for i in chunk {
            pipe.lpush("bench:stage", format!(r#"{{"id":"s{run}-{i}","ipv4":"10.0.0.1","mac":"aa:bb:cc:dd:ee:ff"}}"#))
                .ignore();
        }
        pipe.query_async::<()>(&mut conn).await.unwrap();
    }
    let started = Instant::now();
    let mut done = 0;
    let mut holdings = Holdings::new(QueueMode::List);
    while done < tasks {
        let taken = q.fetch(256).await.expect("fetch");
        holdings.took(&taken);
        let ids: Vec<String> = taken.iter().map(|d| d.parse().expect("valid task").id).collect();
        let checks = q.check(&ids, "bench").await.expect("check");
        assert!(checks.iter().all(|c| *c == Check::Mine));
        let url = "http://sink.local/p".to_owned();
        let batch: Vec<Settled> = taken
            .into_iter()
            .zip(ids)
            .map(|(delivery, id)| Settled {
                delivery,
                task_id: Some(id),
                outcome: Outcome::Published { url: url.clone() },
            })
            .collect();
        done += batch.len();
        q.run(q.settle_pipeline(&batch, &holdings)).await.expect("settle");
        holdings.settled(&batch);
    }
    started.elapsed()
}

async fn clickhouse_stage(settings: &Settings, tasks: usize) -> Duration {
    let db = Db::connect(&settings.clickhouse).await.expect("clickhouse");
    let plan = db.plan().await.expect("the seeded table");
    let keys = db.sample(tasks as u64, 7).await.expect("sample");
    let lookup = KeyLookup::new(&settings.clickhouse, plan);
    let started = Instant::now();
    let mut batches = keys.chunks(settings.lookup.batch_size);
    loop {
        let (a, b) = (batches.next(), batches.next());
        let Some(a) = a else { break };
        let fa = lookup.run(a);
        let fb = async {
            match b {
                Some(b) => lookup.run(b).await.map(|m| m.len()),
                None => Ok(0),
            }
        };
        let (ra, rb) = futures_util::join!(fa, fb);
        ra.expect("lookup");
        rb.expect("lookup");
    }
    started.elapsed()
}

async fn sink_stage(p: &PublisherSettings, posts: usize) -> Duration {
    use futures_util::StreamExt;
    let request = post_request(p, p.url.parse().expect("sink url"));
    let form = pastebin_form(p);
    let started = Instant::now();
    let mut next = 0;
    let mut running = futures_util::stream::FuturesUnordered::new();
    while next < posts || !running.is_empty() {
        while next < posts && running.len() < p.concurrency.max() {
            let task = Task {
                id: format!("stage-{next:010}"),
                ipv4: Ipv4Addr::from(0x0a00_0000 + next as u32),
                mac: Mac::from_u64(0x0200_0000_0000 + next as u64).expect("48 bits"),
            };
            let document = Document::new(&task, "user0123456").to_json();
            let sent = request.send_body(form.body(&document, &task.id));
            running.push(async move {
                let mut resp = sent.await.expect("sink answers");
                let status = resp.status().as_u16();
                let body = resp.body().limit(64 * 1024).await.expect("sink body");
                assert!(matches!(classify_pastebin(status, None, &body), Verdict::Published(_)), "sink answer");
            });
            next += 1;
        }
        running.next().await;
    }
    started.elapsed()
}
