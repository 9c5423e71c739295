//! The list-mode queue against a real Redis, below the actors: what a fetch
//! moves into the processing hash, what settling removes, what a reconcile
//! puts back, and that the idle wait leaves the queue as it was.

mod support;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use device_lookup::config::Settings;
use device_lookup::messages::{Delivery, Outcome, Settled};
use device_lookup::queue::{Check, Queue};
use redis::Commands;
use support::*;

const QUEUE: &str = "device-lookup:tasks";
const CONSUMER: &str = "unit";

fn settings(redis: &Redis) -> Settings {
    let text = format!("[redis]\nurl = \"{}\"\nconsumer = \"{CONSUMER}\"\n", redis.url());
    Settings::from_toml(&text, Path::new("test.toml"), Vec::new()).unwrap()
}

fn payload(i: usize) -> String {
    format!(r#"{{"id":"t{i}","ipv4":"10.0.0.1","mac":"aa:bb:cc:dd:ee:ff"}}"#)
}

fn payloads(items: &[Delivery]) -> Vec<String> {
    items
        .iter()
        .map(|d| match &d.payload {
            device_lookup::messages::Payload::Json(b) => String::from_utf8(b.to_vec()).unwrap(),
            other => panic!("list mode gives JSON, got {other:?}"),
        })
        .collect()
}

fn not_found(d: &Delivery) -> Settled {
    Settled { delivery: d.clone(), task_id: Some("t".into()), outcome: Outcome::NotFound }
}

#[actix_rt::test]
async fn fetch_settle_reconcile_and_the_idle_wait() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path(), false);
    let s = settings(&redis);
    let processing = format!("{QUEUE}:processing:{CONSUMER}");
    let mut conn = redis.conn();
    for i in 0..10 {
        let _: () = conn.lpush(QUEUE, payload(i)).unwrap();
    }
    let q = Queue::connect(&s.redis, CONSUMER).await.unwrap();

    // First in, first out; each task in the processing hash under its number.
    let first = q.fetch(4).await.unwrap();
    assert_eq!(payloads(&first), (0..4).map(payload).collect::<Vec<_>>());
    let held: HashMap<String, String> = conn.hgetall(&processing).unwrap();
    assert_eq!(held.len(), 4);
    for d in &first {
        let field = String::from_utf8(d.receipt.key().to_vec()).unwrap();
        assert_eq!(Some(&payloads(std::slice::from_ref(d))[0]), held.get(&field));
    }
    assert_eq!(conn.llen::<_, usize>(QUEUE).unwrap(), 6);

    // Settling removes exactly the settled tasks.
    let pipe = q.settle_pipeline(&[not_found(&first[0]), not_found(&first[1])]);
    q.run(pipe).await.unwrap();
    assert_eq!(conn.hlen::<_, usize>(&processing).unwrap(), 2);

    // A reconcile puts back what we do not hold, first in line, oldest first.
    let ours: HashMap<Bytes, usize> = [(first[3].receipt.key(), 1)].into_iter().collect();
    let (returned, _) = q.reconcile(&ours).await.unwrap();
    assert_eq!(returned, 1);
    assert_eq!(conn.hlen::<_, usize>(&processing).unwrap(), 1);
    let next = q.fetch(2).await.unwrap();
    assert_eq!(payloads(&next), vec![payload(2), payload(4)]);

    // Numbers are never given twice, even to a task that came back.
    let mut keys: Vec<Bytes> = first.iter().chain(&next).map(|d| d.receipt.key()).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 6);

    // The idle wait: with tasks queued it takes them; on an empty queue it
    // times out and changes nothing.
    let got = q.fetch_blocking(100, Duration::from_millis(200)).await.unwrap();
    assert_eq!(payloads(&got), (5..10).map(payload).collect::<Vec<_>>());
    let none = q.fetch_blocking(100, Duration::from_millis(200)).await.unwrap();
    assert!(none.is_empty());
    assert_eq!(conn.llen::<_, usize>(QUEUE).unwrap(), 0);

    // A clean release returns everything still held, oldest first in line.
    let held = conn.hlen::<_, usize>(&processing).unwrap();
    assert_eq!(q.release().await.unwrap(), held);
    let order: Vec<String> = conn.lrange(QUEUE, 0, -1).unwrap();
    let mut expected = vec![payload(3), payload(2), payload(4)];
    expected.extend((5..10).map(payload));
    expected.reverse();
    assert_eq!(order, expected, "taken from the right: the oldest is last");
    assert_eq!(conn.hlen::<_, usize>(&processing).unwrap(), 0);
}

/// The check before work: a fresh id is claimed; a published one is a
/// duplicate; one claimed by another consumer is theirs; one we claimed
/// before (a check repeated after a reconnect) stays ours, its claim renewed.
#[actix_rt::test]
async fn check_claims_fresh_ids_and_tells_whose_the_others_are() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path(), false);
    let s = settings(&redis);
    let mut conn = redis.conn();
    let _: () = conn.set(format!("{QUEUE}:done:published"), "http://paste/1").unwrap();
    let _: () = conn.set(format!("{QUEUE}:claim:theirs"), "other-consumer").unwrap();
    let _: () = conn.set(format!("{QUEUE}:claim:ours-before"), CONSUMER).unwrap();
    let q = Queue::connect(&s.redis, CONSUMER).await.unwrap();

    let ids: Vec<String> = ["fresh", "published", "theirs", "ours-before"].map(String::from).to_vec();
    let checks = q.check(&ids).await.unwrap();
    assert_eq!(checks, vec![Check::Mine, Check::Published, Check::Elsewhere, Check::Mine]);

    let owner: String = conn.get(format!("{QUEUE}:claim:fresh")).unwrap();
    assert_eq!(owner, CONSUMER);
    let theirs: String = conn.get(format!("{QUEUE}:claim:theirs")).unwrap();
    assert_eq!(theirs, "other-consumer", "another consumer's claim is left alone");
    let ttl: i64 = conn.pttl(format!("{QUEUE}:claim:ours-before")).unwrap();
    assert!(ttl > 0, "our earlier claim now expires with the lease (pttl {ttl})");
}
