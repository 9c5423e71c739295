//! `enqueue`: pushes generated tasks. Hits are devices drawn from the table,
//! misses are addresses the generator never produces (198.18.0.0/15), and the
//! malformed ones cycle through the ways a producer can get a task wrong.

use std::net::Ipv4Addr;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::cli::CommandError;
use crate::config::{QueueMode, Settings};
use crate::db::Db;
use crate::gen::{spell_mac, Rng};
use crate::task::Mac;

/// Payloads (list mode) that must be dead-lettered, one of each kind.
pub fn malformed(i: u64, id: &str) -> String {
    match i % 10 {
        0 => "this is not json".to_owned(),
        1 => json!([id, "10.0.0.1", "aa:bb:cc:dd:ee:ff"]).to_string(),
        2 => json!({"ipv4": "10.0.0.1", "mac": "aa:bb:cc:dd:ee:ff"}).to_string(),
        3 => json!({"id": "", "ipv4": "10.0.0.1", "mac": "aa:bb:cc:dd:ee:ff"}).to_string(),
        4 => json!({"id": id, "ipv4": "999.1.1.1", "mac": "aa:bb:cc:dd:ee:ff"}).to_string(),
        5 => json!({"id": id, "ipv4": "1.2.3", "mac": "aa:bb:cc:dd:ee:ff"}).to_string(),
        6 => json!({"id": id, "ipv4": 167772161, "mac": "aa:bb:cc:dd:ee:ff"}).to_string(),
        7 => json!({"id": id, "ipv4": "10.0.0.1", "mac": "aa:bb:cc:dd:ee"}).to_string(),
        8 => json!({"id": id, "ipv4": "10.0.0.1", "mac": "zz:bb:cc:dd:ee:ff"}).to_string(),
        _ => json!({"id": 1.5, "ipv4": "10.0.0.1", "mac": "aa:bb:cc:dd:ee:ff"}).to_string(),
    }
}

enum Generated {
    Task { id: String, ipv4: String, mac: String },
    Malformed(String),
}

pub async fn enqueue(
    settings: &Settings,
    count: u64,
    hit_ratio: f64,
    invalid_ratio: f64,
    seed: u64,
    prefix: &str,
) -> Result<(), CommandError> {
    let mut rng = Rng::new(seed ^ 0x5e_ed0f_7a5c);
    let hits_wanted = ((count as f64) * (1.0 - invalid_ratio) * hit_ratio).ceil() as u64;
    let sample = if hits_wanted > 0 {
        let db = Db::connect(&settings.clickhouse).await?;
        let sample = db.sample(hits_wanted.min(10_000_000), seed).await?;
        if sample.is_empty() {
            return Err(CommandError::Failed(format!(
                "{} is empty, so no task can be a hit: run `device-lookup seed` first",
                db.table_ref()
            )));
        }
        sample
    } else {
        Vec::new()
    };

    let client = redis::Client::open(settings.redis.url.expose())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let bar = ProgressBar::new(count)
        .with_style(ProgressStyle::with_template("{bar:40} {pos}/{len} tasks, {per_sec}").expect("valid template"));
    let (mut hits, mut misses, mut bad) = (0u64, 0u64, 0u64);
    let mut i = 0;
    while i < count {
        let end = (i + 1000).min(count);
        let mut pipe = redis::pipe();
        for n in i..end {
            let id = format!("{prefix}{n}");
            let task = if rng.chance(invalid_ratio) {
                bad += 1;
                Generated::Malformed(malformed(bad - 1, &id))
            } else if !sample.is_empty() && rng.chance(hit_ratio) {
                let (ip, mac) = sample[(hits % sample.len() as u64) as usize];
                hits += 1;
                let mac = Mac::from_u64(mac)
                    .ok_or_else(|| CommandError::Failed(format!("mac {mac} in the table is over 48 bits")))?;
                Generated::Task { id, ipv4: Ipv4Addr::from(ip).to_string(), mac: spell_mac(&mut rng, mac) }
            } else {
                misses += 1;
                let ip = Ipv4Addr::from((198u32 << 24) | (18 << 16) | (rng.below(1 << 17) as u32));
                let mac = Mac::from_u64(rng.below(Mac::MAX + 1)).expect("below 2^48");
                Generated::Task { id, ipv4: ip.to_string(), mac: spell_mac(&mut rng, mac) }
            };
            match (settings.redis.mode, task) {
                (QueueMode::List, Generated::Task { id, ipv4, mac }) => {
                    pipe.lpush(&settings.redis.queue, json!({"id": id, "ipv4": ipv4, "mac": mac}).to_string()).ignore();
                }
                (QueueMode::List, Generated::Malformed(payload)) => {
                    pipe.lpush(&settings.redis.queue, payload).ignore();
                }
                (QueueMode::Stream, Generated::Task { id, ipv4, mac }) => {
                    pipe.cmd("XADD")
                        .arg(&settings.redis.queue)
                        .arg("*")
                        .arg("id")
                        .arg(id)
                        .arg("ipv4")
                        .arg(ipv4)
                        .arg("mac")
                        .arg(mac)
                        .ignore();
                }
                (QueueMode::Stream, Generated::Malformed(payload)) => {
                    pipe.cmd("XADD").arg(&settings.redis.queue).arg("*").arg("payload").arg(payload).ignore();
                }
            }
        }
        pipe.query_async::<()>(&mut conn).await?;
        bar.inc(end - i);
        i = end;
    }
    bar.finish_and_clear();
    eprintln!("enqueued {count} tasks on {}: {hits} hits, {misses} misses, {bad} malformed", settings.redis.queue);
    Ok(())
}
