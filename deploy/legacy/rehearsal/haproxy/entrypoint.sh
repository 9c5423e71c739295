#!/bin/sh
# REHEARSAL STAND-IN for proxysql/entrypoint.sh: FENCED_SERVERS disables those.
set -eu
fence() { case ",${FENCED_SERVERS:-}," in *",$1,"*) echo disabled ;; *) echo "" ;; esac; }
sed -e "s|@FENCE:mysql-a@|$(fence mysql-a)|" -e "s|@FENCE:mysql-b@|$(fence mysql-b)|" \
    /etc/haproxy/haproxy.cfg.tmpl > /run/proxysql/haproxy.cfg
exec "$@"
