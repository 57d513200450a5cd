#!/usr/bin/env bash
# A throw-away PostgreSQL server for the tests: its own data folder, a Unix socket in that folder, no TCP.
#   pg_cluster.sh start DIR   creates (initdb) and starts a server in DIR; prints its URL (also in DIR/url)
#   pg_cluster.sh stop DIR    stops it and removes DIR
# initdb refuses to run as root, so as root (CI) the server runs as the `postgres` user that Debian's
# postgresql package creates. Exit 2 when PostgreSQL is not installed.
set -euo pipefail
cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop DIR" >&2; exit 64; }
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
[ -x "$bin/initdb" ] || { echo "PostgreSQL is not installed (apt-get install postgresql)" >&2; exit 2; }
as=()
if [ "$(id -u)" -eq 0 ]; then
  id postgres >/dev/null 2>&1 || { echo "running as root and there is no postgres user" >&2; exit 2; }
  as=(runuser -u postgres --)
fi
case $cmd in
  start)
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    [ ${#as[@]} -eq 0 ] || chown postgres "$dir"
    chmod 700 "$dir"
    port=$(( 20000 + RANDOM % 20000 ))
    "${as[@]}" "$bin/initdb" -D "$dir/data" -U postgres --auth=trust --no-sync -E UTF8 --locale=C >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; exit 1; }
    # fsync off by default: a test server's data need not survive a power cut, and commits are ~10x faster.
    # Benchmarks set FACEKIT_PG_FSYNC=on, so that a commit costs what it costs in production.
    "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
      -o "-k $dir -p $port -c listen_addresses='' -c fsync=${FACEKIT_PG_FSYNC:-off} -c max_connections=200" start >/dev/null \
      || { cat "$dir/server.log" >&2; exit 1; }
    url="postgresql:///postgres?host=$dir&port=$port&user=postgres"
    echo "$url" > "$dir/url"
    chmod 644 "$dir/url"
    echo "$url"
    ;;
  stop)
    [ -d "$dir/data" ] && "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$dir"
    ;;
  restart)  # an immediate stop (as a crash: no clean shutdown) and a start with the same options
    "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -m immediate -w -t 60 restart >/dev/null
    ;;
  *) echo "usage: $0 start|stop|restart DIR" >&2; exit 64 ;;
esac
