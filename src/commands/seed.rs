//! `seed`: creates the devices table if absent, fills it with generated rows,
//! merges it, and builds its in-memory copy when `clickhouse.lookup = "join"`.

use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::CommandError;
use crate::config::{LookupSource, Settings};
use crate::db::Db;
use crate::gen::device;

/// What `seed` is asked to do.
pub struct SeedOptions {
    pub rows: u64,
    pub seed: u64,
    pub truncate: bool,
    pub batch: u64,
    /// Merge the table into one part at the end, as a bulk load should.
    pub optimize: bool,
}

pub async fn seed(settings: &Settings, o: SeedOptions) -> Result<(), CommandError> {
    let SeedOptions { rows, seed, truncate, batch, optimize } = o;
    let db = Db::connect(&settings.clickhouse).await?;
    if truncate {
        db.drop_table().await?;
    }
    db.create_table().await?;
    eprintln!(
        "ClickHouse {} ({} type for ipv4): seeding {} with {rows} rows, seed {seed}",
        db.version,
        if db.has_ipv4_type { "IPv4" } else { "UInt32" },
        db.table_ref()
    );
    let bar = ProgressBar::new(rows).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} rows, {per_sec}, eta {eta}").expect("valid template"),
    );
    let started = Instant::now();
    let mut next = 0;
    while next < rows {
        let end = (next + batch).min(rows);
        let chunk: Vec<_> = (next..end).map(|i| device(seed, i)).collect();
        db.insert(&chunk).await?;
        bar.inc(end - next);
        next = end;
    }
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "inserted {rows} rows in {secs:.1} s ({:.0} rows/s); the table now holds {} rows",
        rows as f64 / secs.max(1e-9),
        db.count().await?
    );
    if optimize && db.is_merge_tree().await? {
        let started = Instant::now();
        let parts = db.optimize().await?;
        eprintln!(
            "merged into {parts} part(s) in {:.1} s (lookups read a granule per key in every part)",
            started.elapsed().as_secs_f64()
        );
    }
    if settings.clickhouse.lookup == LookupSource::Join {
        let started = Instant::now();
        match db.create_join().await? {
            Some(rows) => eprintln!(
                "built the in-memory copy {} from {rows} rows in {:.1} s; a materialized view feeds it every later insert",
                db.lookup_ref(),
                started.elapsed().as_secs_f64()
            ),
            None => eprintln!("the in-memory copy {} received these rows through its view", db.lookup_ref()),
        }
    }
    Ok(())
}
