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

    // The largest fetch the configuration allows, in one call.
    let mut pipe = redis::pipe();
    for i in 0..10_000 {
        pipe.lpush(QUEUE, payload(i)).ignore();
    }
    let _: () = pipe.query(&mut conn).unwrap();
    let all = q.fetch(10_000).await.unwrap();
    assert_eq!(all.len(), 10_000);
    assert_eq!(conn.hlen::<_, usize>(&processing).unwrap(), 10_000);
}

/// The id record through a task's life: a fresh id is claimed; a published
/// one is a duplicate; one claimed by another consumer is theirs; one we
/// claimed before (a check repeated after a reconnect) stays ours, renewed.
/// Publishing replaces our claim with the URL for `dedup_ttl`; settling
/// otherwise drops our claim, and never a record that is not our claim.
#[actix_rt::test]
async fn the_id_record_from_claim_to_done() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path(), false);
    let s = settings(&redis);
    let mut conn = redis.conn();
    let record = |id: &str| format!("{QUEUE}:id:{id}");
    let _: () = conn.set(record("published"), "done:http://paste/1").unwrap();
    let _: () = conn.set(record("theirs"), "claim:other-consumer").unwrap();
    let _: () = conn.set(record("ours-before"), format!("claim:{CONSUMER}")).unwrap();
    let q = Queue::connect(&s.redis, CONSUMER).await.unwrap();

    let ids: Vec<String> = ["fresh", "published", "theirs", "ours-before", "miss"].map(String::from).to_vec();
    let checks = q.check(&ids).await.unwrap();
    assert_eq!(checks, vec![Check::Mine, Check::Published, Check::Elsewhere, Check::Mine, Check::Mine]);

    let owner: String = conn.get(record("fresh")).unwrap();
    assert_eq!(owner, format!("claim:{CONSUMER}"));
    let theirs: String = conn.get(record("theirs")).unwrap();
    assert_eq!(theirs, "claim:other-consumer", "another consumer's claim is left alone");
    let ttl: i64 = conn.pttl(record("ours-before")).unwrap();
    assert!(ttl > 0, "our earlier claim now expires with the lease (pttl {ttl})");

    // While we hold "miss", our lease runs out and another consumer publishes it.
    let _: () = conn.set(record("miss"), "done:http://paste/other").unwrap();
    let settled = |id: &str, outcome: Outcome| Settled {
        delivery: Delivery::from_list(1, Bytes::from_static(b"{}")),
        task_id: Some(id.to_owned()),
        outcome,
    };
    let batch = [
        settled("fresh", Outcome::Published { url: "http://paste/2".into() }),
        settled("published", Outcome::Duplicate),
        settled("ours-before", Outcome::NotFound),
        settled("miss", Outcome::NotFound),
    ];
    q.run(q.settle_pipeline(&batch)).await.unwrap();
    let done: String = conn.get(record("fresh")).unwrap();
    assert_eq!(done, "done:http://paste/2");
    let ttl: i64 = conn.ttl(record("fresh")).unwrap();
    assert!(ttl > 3600, "a done record is kept for dedup_ttl (ttl {ttl})");
    let kept: String = conn.get(record("published")).unwrap();
    assert_eq!(kept, "done:http://paste/1", "a duplicate leaves the record alone");
    assert!(!conn.exists::<_, bool>(record("ours-before")).unwrap(), "our claim is dropped");
    let other: String = conn.get(record("miss")).unwrap();
    assert_eq!(other, "done:http://paste/other", "a record that is no longer our claim is never dropped");

    // The heartbeat renews our claims only.
    let _: () = conn.set(record("claimed"), format!("claim:{CONSUMER}")).unwrap();
    q.heartbeat(vec!["claimed".into(), "published".into(), "theirs".into()], Vec::new(), 0).await.unwrap();
    assert!(conn.pttl::<_, i64>(record("claimed")).unwrap() > 0);
    assert_eq!(conn.pttl::<_, i64>(record("theirs")).unwrap(), -1, "not ours: untouched");
    assert_eq!(conn.pttl::<_, i64>(record("published")).unwrap(), -1, "a done record keeps its own expiry");
}
