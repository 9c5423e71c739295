//! ClickHouse: the devices table, its schema across server versions, and the
//! batched lookup.
//!
//! ClickHouse 18.16 (Debian's package) has no `IPv4` type and needs the client
//! with validation off; modern servers have `IPv4`. [`Db::connect`] asks the
//! server what it is and what the table's `ipv4` column is, and every query
//! is written for that.
//!
//! With `clickhouse.lookup = "join"` the lookup reads `<table>_join`
//! instead: a `Join` table (a hash table in the server's memory) holding
//! every row of the table, kept current by the materialized view
//! `<table>_join_feed`, which `seed` creates ([`Db::create_join`]). A point
//! read in a MergeTree costs a granule per device, so the cost per device
//! grows with the table; a hash lookup does not (docs/performance.md).
//!
//! The batched lookup ([`KeyLookup`]) sends its keys as *external data*: a
//! temporary table `keys` in RowBinary, attached to the HTTP request, queried
//! with `(ipv4, mac) IN keys`. No producer value is ever put into SQL text, no
//! 256 KiB query limit applies, and the server parses no literal, which
//! costs far less server time than a tuple literal (docs/performance.md). The `clickhouse` crate has no way
//! to attach external data, so this one request is plain HTTP (awc); the crate
//! does everything else.

use std::time::Duration;

use foldhash::{HashMap, HashMapExt};
use serde::Deserialize;

use crate::config::{ClickhouseSettings, LookupSource};
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

/// How the lookup query reaches the devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// A MergeTree table: addresses through the primary index in `PREWHERE`,
    /// the exact device matched after grouping.
    MergeTree,
    /// Another engine (a view, a Distributed table), which may refuse
    /// `PREWHERE`: the device matched in `WHERE`.
    Scan,
    /// The in-memory `Join` table beside the table: the keys joined to it.
    Join,
}

/// What the lookup query may use, learnt from the server at connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LookupPlan {
    pub column: Ipv4Column,
    pub access: Access,
    /// The user may change settings (`readonly` is not 1), so the query can
    /// ask for the server's cache of uncompressed blocks
    /// (`use_uncompressed_cache`, off in the packaged user profile): a batch
    /// reads a granule per key and part (most of a small table's blocks), and
    /// decompressing them was a third to half of the server's time per batch
    /// (docs/performance.md).
    pub block_cache: bool,
}

#[derive(Clone)]
pub struct Db {
    client: clickhouse::Client,
    timeout: Duration,
    database: String,
    table: String,
    lookup: LookupSource,
    /// Server version, as `SELECT version()` answers.
    pub version: String,
    /// Whether the server knows the `IPv4` type.
    pub has_ipv4_type: bool,
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
            lookup: s.lookup,
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

    fn join_name(&self) -> String {
        join_name(&self.table)
    }

    fn feed_name(&self) -> String {
        feed_name(&self.table)
    }

    fn building_name(&self) -> String {
        building_name(&self.table)
    }

    /// What the lookup reads: the table, or its in-memory `Join` copy.
    pub fn lookup_ref(&self) -> String {
        match self.lookup {
            LookupSource::Table => self.table_ref(),
            LookupSource::Join => format!("`{}`.`{}`", self.database, self.join_name()),
        }
    }

    /// The engine of a table of our database, if it exists.
    async fn engine(&self, table: &str) -> Result<Option<String>, DbError> {
        let sql = format!("SELECT engine FROM system.tables WHERE database = '{}' AND name = '{table}'", self.database);
        self.timed(self.client.query(&sql).fetch_optional::<String>()).await
    }

    /// The table is of the MergeTree family.
    pub async fn is_merge_tree(&self) -> Result<bool, DbError> {
        Ok(self.engine(&self.table).await?.is_some_and(|e| e.ends_with("MergeTree")))
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

    /// How to write the lookup for this server, table and user; fails as
    /// [`Db::ipv4_column`] does when the table is missing or misshapen.
    pub async fn plan(&self) -> Result<LookupPlan, DbError> {
        let column = self.ipv4_column().await?;
        let access = match self.lookup {
            LookupSource::Table if self.is_merge_tree().await? => Access::MergeTree,
            LookupSource::Table => Access::Scan,
            LookupSource::Join => {
                if self.engine(&self.join_name()).await?.as_deref() != Some("Join") || !self.join_complete().await? {
                    return Err(DbError::Schema(format!(
                        "clickhouse.lookup is \"join\", but the copy {} is missing or not complete \
                         (its view `{}` absent, or `{}` present): run `device-lookup seed` to build it",
                        self.lookup_ref(),
                        self.feed_name(),
                        self.building_name()
                    )));
                }
                Access::Join
            }
        };
        let readonly = self
            .timed(
                self.client
                    .query("SELECT value FROM system.settings WHERE name = 'readonly'")
                    .fetch_optional::<String>(),
            )
            .await?;
        Ok(LookupPlan { column, access, block_cache: readonly.as_deref() != Some("1") })
    }

    /// Creates the database and table when absent (`IPv4` where the server has it).
    pub async fn create_table(&self) -> Result<(), DbError> {
        self.execute(&format!("CREATE DATABASE IF NOT EXISTS `{}`", self.database)).await?;
        self.execute(&table_statement(&self.database, &self.table, self.ip_type())).await
    }

    fn ip_type(&self) -> &'static str {
        if self.has_ipv4_type {
            "IPv4"
        } else {
            "UInt32"
        }
    }

    /// Drops the table, with the in-memory copy and its view if they exist.
    pub async fn drop_table(&self) -> Result<(), DbError> {
        for name in [self.feed_name(), self.building_name(), self.join_name(), self.table.clone()] {
            self.execute(&format!("DROP TABLE IF EXISTS `{}`.`{name}`", self.database)).await?;
        }
        Ok(())
    }

    /// Builds the in-memory copy of the table unless it is complete (its feed
    /// exists and its marker does not): the marker `<table>_join_building`,
    /// the `Join` table, the view `<table>_join_feed` that feeds it every
    /// later insert, a copy of the rows already there, and the marker
    /// dropped. A row inserted between the view and the copy lands twice,
    /// which the lookup's `argMax` does not see. Lookups fail while the copy
    /// is not complete ([`lookup_query`]), so none reads it half filled.
    /// Answers the rows copied, or `None` when the copy was complete (the
    /// rows just inserted reached it through the feed). No query timeout or
    /// memory limit applies to the copy: it takes the table's size in memory.
    pub async fn create_join(&self) -> Result<Option<u64>, DbError> {
        if self.join_complete().await? {
            return Ok(None);
        }
        for sql in join_build_statements(&self.database, &self.table, self.ip_type()) {
            // No query timeout: copying takes as long as reading the table.
            self.client.query(&sql).execute().await?;
        }
        Ok(Some(self.count().await?))
    }

    /// The copy's feed exists and its build marker does not.
    async fn join_complete(&self) -> Result<bool, DbError> {
        Ok(self.engine(&self.feed_name()).await?.as_deref() == Some("MaterializedView")
            && self.engine(&self.building_name()).await?.is_none())
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

    /// Merges the table into one part per partition (`OPTIMIZE ... FINAL`)
    /// and answers the active parts left. A lookup reads a granule per key in
    /// every active part, so a bulk load should end with this
    /// (docs/performance.md). It takes as long as the data takes to rewrite:
    /// no query timeout applies.
    pub async fn optimize(&self) -> Result<u64, DbError> {
        // OPTIMIZE does nothing, and says nothing, while the server's own
        // merges hold some of the parts: wait for those, then ask again.
        let sql = format!("OPTIMIZE TABLE {} FINAL", self.table_ref());
        let merging = format!(
            "SELECT count() FROM system.merges WHERE database = '{}' AND table = '{}'",
            self.database, self.table
        );
        let mut passes = 0;
        loop {
            while self.timed(self.client.query(&merging).fetch_one::<u64>()).await? > 0 {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            self.client.query(&sql).execute().await?;
            passes += 1;
            let (parts, partitions) = self.parts().await?;
            if parts <= partitions || passes == OPTIMIZE_PASSES {
                return Ok(parts);
            }
        }
    }

    /// The table's active parts (MergeTree; 0 for other engines).
    pub async fn active_parts(&self) -> Result<u64, DbError> {
        Ok(self.parts().await?.0)
    }

    /// The table's active parts, and the partitions they make up.
    async fn parts(&self) -> Result<(u64, u64), DbError> {
        let sql = format!(
            "SELECT count(), uniqExact(partition) FROM system.parts WHERE active AND database = '{}' AND table = '{}'",
            self.database, self.table
        );
        self.timed(self.client.query(&sql).fetch_one::<(u64, u64)>()).await
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

/// Rows per index mark. Measured on 1M rows with 1000-key lookups (docs/performance.md):
/// 8192 (the default) reads every granule; 1024 reads an eighth of the rows
/// and is fastest; smaller ones read less still but spend more time matching
/// marks against the key set.
pub const INDEX_GRANULARITY: u32 = 1024;

/// How often `optimize` asks again when the server's own merges got in the way.
const OPTIMIZE_PASSES: usize = 20;

/// `merge_tree_max_rows_to_use_cache` for the lookup: any batch may use the
/// block cache. The server's limit keeps large scans from evicting the cache;
/// a lookup batch reads a few granules per key, however large the table.
pub const BLOCK_CACHE_MAX_ROWS: &str = "1000000000000";

/// The batched lookup: one HTTP request per batch, keys as external data.
/// Holds an awc client, so it lives on the arbiter that built it.
pub struct KeyLookup {
    http: awc::Client,
    /// The server's URL with the query, the external table's structure and
    /// the settings as parameters: the same for every batch, encoded once.
    url: String,
    user: String,
    password: String,
    timeout: Duration,
}

impl KeyLookup {
    pub fn new(s: &ClickhouseSettings, plan: LookupPlan) -> KeyLookup {
        let http = awc::Client::builder().timeout(s.timeout).finish();
        let structure = match plan.column {
            Ipv4Column::UInt32 => "ipv4 UInt32, mac UInt64",
            Ipv4Column::Ipv4 => "ipv4 IPv4, mac UInt64",
        };
        let mut params = form_urlencoded::Serializer::new(String::new());
        params
            .append_pair("query", &lookup_query(&s.database, &s.table, plan.access))
            .append_pair("keys_structure", structure)
            .append_pair("keys_format", "RowBinary");
        if plan.block_cache {
            // The cache's row limit (1M by default) is per query: past it, a
            // batch on a large table would decompress every granule it reads.
            params
                .append_pair("use_uncompressed_cache", "1")
                .append_pair("merge_tree_max_rows_to_use_cache", BLOCK_CACHE_MAX_ROWS);
        }
        KeyLookup {
            http,
            url: format!("{}/?{}", s.url, params.finish()),
            user: s.user.clone(),
            password: s.password.expose().to_owned(),
            timeout: s.timeout,
        }
    }

    /// The account bound to each device found; the latest `updated_at` wins.
    pub async fn run(&self, keys: &[(u32, u64)]) -> Result<HashMap<(u32, u64), String>, DbError> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let (content_type, body) =
            crate::multipart::one_file("keys", "keys", "application/octet-stream", &encode_keys(keys));
        let request = self
            .http
            .post(&self.url)
            .basic_auth(&self.user, &self.password)
            .insert_header(("content-type", content_type))
            .timeout(self.timeout)
            .send_body(body);
        let answer = async {
            let mut resp = request.await.map_err(|e| DbError::Unavailable(format!("network error: {e}")))?;
            let status = resp.status();
            let body = resp.body().limit(256 * 1024 * 1024).await.map_err(|e| DbError::Unavailable(e.to_string()))?;
            if !status.is_success() {
                // ClickHouse's text ("Code: 60, ...") for the failure classification.
                return Err(DbError::Unavailable(format!("bad response: {}", String::from_utf8_lossy(&body).trim())));
            }
            decode_rows(&body)
        };
        match tokio::time::timeout(self.timeout, answer).await {
            Ok(r) => r,
            Err(_) => Err(DbError::Unavailable(format!("no answer within {:?}", self.timeout))),
        }
    }
}

/// The devices table, as `seed` creates it.
pub fn table_statement(database: &str, table: &str, ip_type: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS `{database}`.`{table}` (username String, ipv4 {ip_type}, mac UInt64, \
         updated_at DateTime) ENGINE = MergeTree() ORDER BY (ipv4, mac) SETTINGS index_granularity = {INDEX_GRANULARITY}"
    )
}

/// What builds the in-memory copy of `table`, in order ([`Db::create_join`]).
pub fn join_build_statements(database: &str, table: &str, ip_type: &str) -> [String; 7] {
    let name = |n: &str| format!("`{database}`.`{n}`");
    let (source, join) = (name(table), name(&join_name(table)));
    let (building, feed) = (name(&building_name(table)), name(&feed_name(table)));
    let columns = "ipv4, mac, username, updated_at";
    [
        format!("CREATE TABLE IF NOT EXISTS {building} (since DateTime) ENGINE = Memory"),
        // What an earlier build left: a copy that may miss rows.
        format!("DROP TABLE IF EXISTS {feed}"),
        format!("DROP TABLE IF EXISTS {join}"),
        format!(
            "CREATE TABLE {join} (ipv4 {ip_type}, mac UInt64, username String, updated_at DateTime) \
             ENGINE = Join(ALL, INNER, ipv4, mac)"
        ),
        format!("CREATE MATERIALIZED VIEW {feed} TO {join} AS SELECT {columns} FROM {source}"),
        // No memory limit: the copy takes the table's size in memory.
        format!("INSERT INTO {join} SELECT {columns} FROM {source} SETTINGS max_memory_usage = 0"),
        format!("DROP TABLE {building}"),
    ]
}

/// The in-memory copy of `table`.
fn join_name(table: &str) -> String {
    format!("{table}_join")
}

/// The view that feeds the copy.
fn feed_name(table: &str) -> String {
    format!("{table}_join_feed")
}

/// A marker that exists while the copy is being built.
fn building_name(table: &str) -> String {
    format!("{table}_join_building")
}

/// The lookup query; its keys come as the external table `keys`.
///
/// On a MergeTree table the rows are selected by address alone,
/// in `PREWHERE`, against the scalar set of the batch's addresses: the
/// primary index narrows the read to a granule per key and part, and the
/// other columns are read only where an address matched. The exact device
/// is matched after grouping, in `HAVING`, on a few rows per key: a tuple
/// set in `WHERE` made the index analysis and every row read cost more
/// (about half the server's time per device on 100M rows,
/// docs/performance.md). Other engines may refuse `PREWHERE`.
///
/// A `Join` copy is probed once per key; it holds every row, so grouping
/// still picks the latest binding. Unless the feed exists and the build
/// marker does not, the copy may be half filled or falling behind, and the
/// query fails (`throwIf`, once per key, so a batch of misses fails too)
/// rather than answer "not found". Current servers require the subquery's
/// alias (`joined_subquery_requires_alias`).
pub fn lookup_query(database: &str, table: &str, access: Access) -> String {
    let from = match access {
        Access::MergeTree => {
            format!(
                "`{database}`.`{table}` PREWHERE ipv4 IN (SELECT ipv4 FROM keys) GROUP BY ipv4, mac HAVING (ipv4, mac) IN keys"
            )
        }
        Access::Scan => format!("`{database}`.`{table}` WHERE (ipv4, mac) IN keys GROUP BY ipv4, mac"),
        Access::Join => format!(
            "(SELECT ipv4, mac FROM keys WHERE throwIf((SELECT countIf(name = '{feed}') - countIf(name = '{building}') \
             FROM system.tables WHERE database = '{database}') != 1) = 0) AS k \
             ALL INNER JOIN `{database}`.`{join}` USING (ipv4, mac) GROUP BY ipv4, mac",
            feed = feed_name(table),
            building = building_name(table),
            join = join_name(table)
        ),
    };
    format!("SELECT toUInt32(ipv4) AS ip, mac, argMax(username, updated_at) AS username FROM {from} FORMAT RowBinary")
}

/// The keys in RowBinary: a little-endian u32 and u64 per device (an `IPv4`
/// travels as its u32).
pub fn encode_keys(keys: &[(u32, u64)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(keys.len() * 12);
    for (ip, mac) in keys {
        out.extend_from_slice(&ip.to_le_bytes());
        out.extend_from_slice(&mac.to_le_bytes());
    }
    out
}

/// Rows of (UInt32, UInt64, String) in RowBinary; a String is a LEB128 length
/// and its bytes.
pub fn decode_rows(mut b: &[u8]) -> Result<HashMap<(u32, u64), String>, DbError> {
    let bad = |what: &str| DbError::Unavailable(format!("malformed RowBinary answer: {what}"));
    let mut out = HashMap::new();
    while !b.is_empty() {
        if b.len() < 12 {
            return Err(bad("truncated key"));
        }
        let ip = u32::from_le_bytes(b[0..4].try_into().expect("4 bytes"));
        let mac = u64::from_le_bytes(b[4..12].try_into().expect("8 bytes"));
        b = &b[12..];
        let (mut len, mut shift) = (0usize, 0);
        loop {
            let (&byte, rest) = b.split_first().ok_or_else(|| bad("truncated length"))?;
            b = rest;
            len |= ((byte & 0x7f) as usize) << shift;
            if byte & 0x80 == 0 {
                break;
            }
            shift += 7;
            if shift > 35 {
                return Err(bad("length too long"));
            }
        }
        if b.len() < len {
            return Err(bad("truncated string"));
        }
        let name = String::from_utf8_lossy(&b[..len]).into_owned();
        b = &b[len..];
        out.insert((ip, mac), name);
    }
    Ok(out)
}

/// ClickHouse added the `IPv4` domain type in 19.3.
pub fn ipv4_type_since(version: &str) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (19, 3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_rows_in_rowbinary() {
        let keys = encode_keys(&[(0x0a00_0001, 0xaabb_ccdd_eeff)]);
        assert_eq!(keys, [1, 0, 0, 10, 0xff, 0xee, 0xdd, 0xcc, 0xbb, 0xaa, 0, 0]);
        let mut answer = keys.clone();
        answer.push(4);
        answer.extend_from_slice(b"anna");
        let long = "x".repeat(200);
        answer.extend(encode_keys(&[(2, 3)]));
        answer.extend([200, 1]); // 200 as LEB128
        answer.extend_from_slice(long.as_bytes());
        let rows = decode_rows(&answer).unwrap();
        assert_eq!(rows[&(0x0a00_0001, 0xaabb_ccdd_eeff)], "anna");
        assert_eq!(rows[&(2, 3)], long);
        assert!(decode_rows(&answer[..answer.len() - 1]).is_err(), "truncated string");
        assert!(decode_rows(&answer[..5]).is_err(), "truncated key");
        assert!(decode_rows(&[]).unwrap().is_empty());
    }

    #[test]
    fn the_query_carries_no_values() {
        let q = lookup_query("d", "t", Access::Scan);
        assert!(q.contains("WHERE (ipv4, mac) IN keys") && q.ends_with("FORMAT RowBinary"), "{q}");
        assert!(!q.contains("PREWHERE"), "{q}");
        let q = lookup_query("d", "t", Access::Join);
        assert!(q.contains("ALL INNER JOIN `d`.`t_join` USING (ipv4, mac) GROUP BY ipv4, mac"), "{q}");
        assert!(q.contains(
            "throwIf((SELECT countIf(name = 't_join_feed') - countIf(name = 't_join_building') \
             FROM system.tables WHERE database = 'd') != 1)"
        ));
        let q = lookup_query("d", "t", Access::MergeTree);
        assert!(
            q.contains("PREWHERE ipv4 IN (SELECT ipv4 FROM keys) GROUP BY ipv4, mac HAVING (ipv4, mac) IN keys"),
            "{q}"
        );
        assert!(!q.contains("WHERE (ipv4"), "the tuple is matched after grouping: {q}");
    }

    #[test]
    fn versions() {
        for (v, want) in [("18.16.1", false), ("19.1.6", false), ("19.3.4", true), ("24.8.4.13", true), ("x", false)] {
            assert_eq!(ipv4_type_since(v), want, "{v}");
        }
    }
}
