# shellcheck shell=bash
# Sourced by the mysql image's entrypoint on the first start only (an empty
# datadir), with its "${mysql[@]}" client array: the accounts, each password
# from its Swarm secret (one line), and replication from the peer. SQL_LOG_BIN=0: both nodes
# create the same accounts themselves, nothing replicates twice.
secret() { tr -d '\n' <"/run/secrets/$1"; }
PEER=${LEGACY_PEER:?LEGACY_PEER: the other node of the pair}
# shellcheck disable=SC2154 # mysql: the image entrypoint's client array
"${mysql[@]}" <<SQL
SET SQL_LOG_BIN = 0;
CREATE DATABASE IF NOT EXISTS app CHARACTER SET utf8mb4;
CREATE USER 'app'@'%' IDENTIFIED WITH mysql_native_password BY '$(secret mysql_app_password)';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX, DROP, LOCK TABLES ON app.* TO 'app'@'%';
CREATE USER 'repl'@'%' IDENTIFIED WITH caching_sha2_password BY '$(secret mysql_repl_password)' REQUIRE SSL;
GRANT REPLICATION SLAVE ON *.* TO 'repl'@'%';
CREATE USER 'monitor'@'%' IDENTIFIED WITH mysql_native_password BY '$(secret mysql_monitor_password)';
GRANT USAGE, REPLICATION CLIENT ON *.* TO 'monitor'@'%';
CREATE USER 'admin'@'%' IDENTIFIED WITH caching_sha2_password BY '$(secret mysql_admin_password)';
GRANT ALL ON *.* TO 'admin'@'%' WITH GRANT OPTION;
CHANGE REPLICATION SOURCE TO SOURCE_HOST = '$PEER', SOURCE_USER = 'repl',
  SOURCE_PASSWORD = '$(secret mysql_repl_password)', SOURCE_AUTO_POSITION = 1,
  SOURCE_SSL = 1, SOURCE_CONNECT_RETRY = 5, SOURCE_RETRY_COUNT = 86400;
SET SQL_LOG_BIN = 1;
SQL
