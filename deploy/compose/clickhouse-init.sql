-- Run once by the ClickHouse image on an empty data volume. The same shape
-- `device-lookup seed` creates: IPv4 on servers that have the type (all
-- current ones), ordered by the lookup key.
CREATE DATABASE IF NOT EXISTS devices;
CREATE TABLE IF NOT EXISTS devices.users
(
    username   String,
    ipv4       IPv4,
    mac        UInt64,
    updated_at DateTime
)
ENGINE = MergeTree
ORDER BY (ipv4, mac)
SETTINGS index_granularity = 1024;
