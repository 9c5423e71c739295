//! `check`: validates the configuration and reaches Redis and ClickHouse,
//! publishing nothing. Prints a report; fails when a dependency is unreachable.

use crate::cli::CommandError;
use crate::config::{redact_url, QueueMode, Settings};
use crate::db::{Access, Db};

pub async fn check(s: &Settings) -> Result<(), CommandError> {
    println!("configuration: ok");
    println!("  redis       {} queue {:?} ({:?} mode)", redact_url(s.redis.url.expose()), s.redis.queue, s.redis.mode);
    println!("  clickhouse  {} table {}.{}", s.clickhouse.url, s.clickhouse.database, s.clickhouse.table);
    println!(
        "  publisher   {:?} at {} (api_dev_key {}), rate limit {}",
        s.publisher.kind,
        s.publisher.url,
        if s.publisher.api_dev_key.is_empty() { "empty" } else { "set" },
        match s.publisher.rate_limit {
            Some(rl) => format!("{} per {:?}, burst {}", rl.requests, rl.per, rl.burst),
            None => "none".into(),
        }
    );
    println!("  output      {}", s.output.path.display());
    let mut failures = Vec::new();

    match redis_report(s).await {
        Ok(line) => println!("redis: ok, {line}"),
        Err(e) => {
            println!("redis: FAILED, {}", chain(&e));
            failures.push("redis");
        }
    }
    match clickhouse_report(s).await {
        Ok(line) => println!("clickhouse: ok, {line}"),
        Err(e) => {
            println!("clickhouse: FAILED, {}", chain(&e));
            failures.push("clickhouse");
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(CommandError::Failed(format!("unreachable: {}", failures.join(", "))))
    }
}

/// An error with its causes, as `main` prints them: "ClickHouse: … : …".
fn chain(e: &CommandError) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

async fn redis_report(s: &Settings) -> Result<String, CommandError> {
    let mut c = crate::queue::connection(s.redis.url.expose(), s.redis.response_timeout).await?;
    let queued: u64 = match s.redis.mode {
        QueueMode::List => redis::cmd("LLEN").arg(&s.redis.queue).query_async(&mut c).await?,
        QueueMode::Stream => redis::cmd("XLEN").arg(&s.redis.queue).query_async(&mut c).await?,
    };
    let dead: u64 = redis::cmd("LLEN").arg(crate::queue::keys::dead(&s.redis.queue)).query_async(&mut c).await?;
    let consumers: u64 =
        redis::cmd("SCARD").arg(crate::queue::keys::consumers(&s.redis.queue)).query_async(&mut c).await?;
    Ok(format!("{queued} queued, {dead} dead letters, {consumers} consumers registered"))
}

async fn clickhouse_report(s: &Settings) -> Result<String, CommandError> {
    let db = Db::connect(&s.clickhouse).await?;
    let plan = db.plan().await?;
    let rows = db.count().await?;
    let parts = db.active_parts().await?;
    let access = match plan.access {
        Access::MergeTree => "by the primary index (PREWHERE)".to_owned(),
        Access::Scan => "by WHERE (not a MergeTree)".to_owned(),
        Access::Join => format!("in memory, through {}", db.lookup_ref()),
    };
    Ok(format!(
        "version {}, {} has {rows} rows in {parts} active parts (ipv4 as {:?}; lookups {access}; block cache {})",
        db.version,
        db.table_ref(),
        plan.column,
        if plan.block_cache { "asked for" } else { "not allowed (readonly user)" }
    ))
}
