//! ClickHouse: the devices table, its schema across server versions, and the
//! batched lookup.
//!
//! ClickHouse 18.16 (Debian's package) has no `IPv4` type and needs the client
//! with validation off; modern servers have `IPv4`. [`Db::connect`] asks the
//! server what it is and what the table's `ipv4` column is, and every query
//! is written for that. Lookup SQL is built only from typed numbers, never
//! from producer text.

use std::collections::HashMap;
use std::fmt::Write;
use std::net::Ipv4Addr;
use std::time::Duration;

use serde::Deserialize;

use crate::config::ClickhouseSettings;
use crate::gen::Device;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// Network errors, timeouts, server errors: wait and try again.
    #[error("ClickHouse is unavailable: {0}")]
    Unavailable(String),
    /// The table is missing or has the wrong shape: an operator must act
    /// (run `seed`); the daemon keeps retrying meanwhile.
    #[error("{0}")]
    Schema(String),
}

impl From<clickhouse::error::Error> for DbError {
    fn from(e: clickhouse::error::Error) -> Self {
        DbError::Unavailable(e.to_string())
    }
}

/// How the table stores addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ipv4Column {
    /// `UInt32`: ClickHouse before the `IPv4` domain type.
    UInt32,
    /// `IPv4`.
    Ipv4,
}

#[derive(Clone)]
pub struct Db {
    client: clickhouse::Client,
    timeout: Duration,
    database: String,
    table: String,
    /// Server version, as `SELECT version()` answers.
    pub version: String,
    /// Whether the server knows the `IPv4` type.
    pub has_ipv4_type: bool,
}

#[derive(clickhouse::Row, Deserialize)]
struct FoundRow {
    ip: u32,
    mac: u64,
    username: String,
}

#[derive(clickhouse::Row, serde::Serialize)]
struct SeedRow<'a> {
    username: &'a str,
    ipv4: u32,
    mac: u64,
    updated_at: u32,
}

impl Db {
    /// Connects and learns the server version. Does not require the table.
    pub async fn connect(s: &ClickhouseSettings) -> Result<Db, DbError> {
        // Validation needs RowBinaryWithNamesAndTypes, which 18.16 lacks; our row
        // types are checked against the real table by the integration tests.
        let client = clickhouse::Client::default()
            .with_url(&s.url)
            .with_user(&s.user)
            .with_password(s.password.expose())
            .with_validation(false);
        let mut db = Db {
            client,
            timeout: s.timeout,
            database: s.database.clone(),
            table: s.table.clone(),
            version: String::new(),
            has_ipv4_type: false,
        };
        db.version = db.timed(db.client.query("SELECT version()").fetch_one::<String>()).await?;
        db.has_ipv4_type = ipv4_type_since(&db.version);
        Ok(db)
    }

    /// `` `db`.`table` ``: both are plain identifiers, checked by config validation.
    pub fn table_ref(&self) -> String {
        format!("`{}`.`{}`", self.database, self.table)
    }

    async fn timed<T>(
        &self,
        fut: impl std::future::Future<Output = clickhouse::error::Result<T>>,
    ) -> Result<T, DbError> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(r) => Ok(r?),
            Err(_) => Err(DbError::Unavailable(format!("no answer within {:?}", self.timeout))),
        }
    }

    pub async fn execute(&self, sql: &str) -> Result<(), DbError> {
        self.timed(self.client.query(sql).execute()).await
    }

    /// The type of the table's `ipv4` column, or a schema error when the table
    /// is absent or lacks the columns the lookup needs.
    pub async fn ipv4_column(&self) -> Result<Ipv4Column, DbError> {
        let sql = format!(
            "SELECT name, type FROM system.columns WHERE database = '{}' AND table = '{}'",
            self.database, self.table
        );
        let cols: Vec<(String, String)> = self
            .timed(self.client.query(&sql).fetch_all::<ColumnRow>())
            .await?
            .into_iter()
            .map(|c| (c.name, c.r#type))
            .collect();
        if cols.is_empty() {
            return Err(DbError::Schema(format!(
                "table {} does not exist: run `device-lookup seed` first",
                self.table_ref()
            )));
        }
        let ty = |n: &str| cols.iter().find(|(name, _)| name == n).map(|(_, t)| t.as_str());
        for (name, want) in [("username", "String"), ("mac", "UInt64"), ("updated_at", "DateTime")] {
            if ty(name) != Some(want) {
                return Err(DbError::Schema(format!(
                    "{}.{name} must be {want}, found {:?}",
                    self.table_ref(),
                    ty(name)
                )));
            }
        }
        match ty("ipv4") {
            Some("UInt32") => Ok(Ipv4Column::UInt32),
            Some("IPv4") => Ok(Ipv4Column::Ipv4),
            other => Err(DbError::Schema(format!("{}.ipv4 must be UInt32 or IPv4, found {other:?}", self.table_ref()))),
        }
    }

    /// Looks up many devices in one query; the latest `updated_at` wins.
    pub async fn lookup(
        &self,
        column: Ipv4Column,
        keys: &[(u32, u64)],
    ) -> Result<HashMap<(u32, u64), String>, DbError> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let sql = lookup_sql(&self.table_ref(), column, keys);
        let rows = self.timed(self.client.query(&sql).fetch_all::<FoundRow>()).await?;
        Ok(rows.into_iter().map(|r| ((r.ip, r.mac), r.username)).collect())
    }

    /// Creates the database and table when absent (`IPv4` where the server has it).
    pub async fn create_table(&self) -> Result<(), DbError> {
        self.execute(&format!("CREATE DATABASE IF NOT EXISTS `{}`", self.database)).await?;
        let ip_type = if self.has_ipv4_type { "IPv4" } else { "UInt32" };
        self.execute(&format!(
            "CREATE TABLE IF NOT EXISTS {} (username String, ipv4 {ip_type}, mac UInt64, updated_at DateTime) \
             ENGINE = MergeTree() ORDER BY (ipv4, mac)",
            self.table_ref()
        ))
        .await
    }

    pub async fn drop_table(&self) -> Result<(), DbError> {
        self.execute(&format!("DROP TABLE IF EXISTS {}", self.table_ref())).await
    }

    /// Inserts rows in one INSERT (RowBinary: `IPv4` travels as its UInt32).
    pub async fn insert(&self, rows: &[Device]) -> Result<(), DbError> {
        let mut insert = self.client.insert_unescaped::<SeedRow<'_>>(&self.table_ref()).await?;
        for d in rows {
            insert
                .write(&SeedRow { username: &d.username, ipv4: d.ipv4, mac: d.mac, updated_at: d.updated_at })
                .await?;
        }
        self.timed(insert.end()).await
    }

    pub async fn count(&self) -> Result<u64, DbError> {
        self.timed(self.client.query(&format!("SELECT count() FROM {}", self.table_ref())).fetch_one::<u64>()).await
    }

    /// `n` devices of the table, in an order fixed by `seed`.
    pub async fn sample(&self, n: u64, seed: u64) -> Result<Vec<(u32, u64)>, DbError> {
        let sql = format!(
            "SELECT toUInt32(ipv4) AS ip, mac FROM {} ORDER BY cityHash64(ip, mac, {seed}) LIMIT {n}",
            self.table_ref()
        );
        let rows = self.timed(self.client.query(&sql).fetch_all::<KeyRow>()).await?;
        Ok(rows.into_iter().map(|r| (r.ip, r.mac)).collect())
    }
}

#[derive(clickhouse::Row, Deserialize)]
struct ColumnRow {
    name: String,
    r#type: String,
}

#[derive(clickhouse::Row, Deserialize)]
struct KeyRow {
    ip: u32,
    mac: u64,
}

/// ClickHouse added the `IPv4` domain type in 19.3.
pub fn ipv4_type_since(version: &str) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (19, 3)
}

/// The batched lookup query. Tuple `IN` lets the primary key `(ipv4, mac)`
/// prune granules on every server version; `argMax` picks the latest row.
pub fn lookup_sql(table_ref: &str, column: Ipv4Column, keys: &[(u32, u64)]) -> String {
    let mut sql = String::with_capacity(160 + keys.len() * 40);
    let _ = write!(
        sql,
        "SELECT toUInt32(ipv4) AS ip, mac, argMax(username, updated_at) AS username FROM {table_ref} WHERE (ipv4, mac) IN ("
    );
    for (i, (ip, mac)) in keys.iter().enumerate() {
        if i > 0 {
            sql.push(',');
        }
        match column {
            Ipv4Column::UInt32 => {
                let _ = write!(sql, "({ip},{mac})");
            }
            Ipv4Column::Ipv4 => {
                let _ = write!(sql, "(toIPv4('{}'),{mac})", Ipv4Addr::from(*ip));
            }
        }
    }
    sql.push_str(") GROUP BY ipv4, mac");
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_sql_for_both_schemas() {
        let keys = [(167_772_161, 0xaabb_ccdd_eeff), (1, 2)];
        assert_eq!(
            lookup_sql("`d`.`t`", Ipv4Column::UInt32, &keys),
            "SELECT toUInt32(ipv4) AS ip, mac, argMax(username, updated_at) AS username FROM `d`.`t` \
             WHERE (ipv4, mac) IN ((167772161,187723572702975),(1,2)) GROUP BY ipv4, mac"
        );
        assert!(lookup_sql("`d`.`t`", Ipv4Column::Ipv4, &keys)
            .contains("IN ((toIPv4('10.0.0.1'),187723572702975),(toIPv4('0.0.0.1'),2))"));
    }

    #[test]
    fn largest_batch_fits_the_query_limit() {
        let keys = vec![(u32::MAX, crate::task::Mac::MAX); crate::config::MAX_LOOKUP_BATCH];
        for column in [Ipv4Column::UInt32, Ipv4Column::Ipv4] {
            let len = lookup_sql("`a`.`b`", column, &keys).len();
            assert!(len < 256 * 1024, "{column:?}: {len} bytes");
        }
    }

    #[test]
    fn versions() {
        for (v, want) in [("18.16.1", false), ("19.1.6", false), ("19.3.4", true), ("24.8.4.13", true), ("x", false)] {
            assert_eq!(ipv4_type_since(v), want, "{v}");
        }
    }
}
