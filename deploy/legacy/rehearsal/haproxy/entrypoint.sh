#!/bin/sh
# REHEARSAL STAND-IN for proxysql/entrypoint.sh: the same MYSQL_SERVERS;
# FENCED_SERVERS disables those.
set -eu
servers=${MYSQL_SERVERS:-mysql-a,mysql-b}
server1=${servers%%,*}
server2=${servers#*,}
fence() { case ",${FENCED_SERVERS:-}," in *",$1,"*) echo disabled ;; *) echo "" ;; esac; }
sed -e "s|@SERVER1@|$server1|g" -e "s|@FENCE1@|$(fence "$server1")|" \
    -e "s|@SERVER2@|$server2|g" -e "s|@FENCE2@|$(fence "$server2")|" \
    /etc/haproxy/haproxy.cfg.tmpl > /run/proxysql/haproxy.cfg
exec "$@"
