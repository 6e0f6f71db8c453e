#!/usr/bin/env bash
# Times queue surgery on a large queue: `mq queue list` and `mq queue summary` with N entries
# (default 10,000), and deleting 2,000 of them, one `mq queue delete ID` per message and in
# one `mq queue delete -` (ids on stdin), with the server stopped and running (one call each
# with the server stopped: a tenth of them, since each call replays the whole queue).
#
#   bench/queue-ops.sh [MQ_BINARY]     (default: target/release/mq)
#
# ENTRIES and DELETES change the sizes. Summary and bulk delete are skipped for a binary
# without them. Loopback only, free ports, delivery off.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh
MQ=${1:-target/release/mq}
ENTRIES=${ENTRIES:-10000}
DELETES=${DELETES:-2000}
work=$(mktemp -d)
trap 'kill "${server:-}" 2>/dev/null || true; rm -rf "$work"' EXIT
smtp=$(free_port)
admin=$(free_port)
cat >"$work/mq.toml" <<TOML
[smtp]
listen = "127.0.0.1:$smtp"
[queue]
data_dir = '$work/data'
fsync = false
[admin]
listen = "127.0.0.1:$admin"
[delivery]
enabled = false
TOML
mkdir -p "$work/data"
start() {
    "$MQ" -c "$work/mq.toml" serve 2>"$work/serve.log" &
    server=$!
    wait_for_port "$smtp" && wait_for_port "$admin"
}
stop() { kill -TERM "$server"; wait "$server" || true; server=; }
seconds() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null; t1=$(date +%s.%N); echo "$t1 - $t0" | bc -l | xargs printf '%.3f'; }

start
python3 - "$smtp" "$ENTRIES" <<'PY'
import smtplib, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
s = smtplib.SMTP("127.0.0.1", port)
for i in range(n):
    s.sendmail("alice@example.org", [f"u{i}@d{i % 40}.example"], f"Subject: {i}\r\n\r\nbody {i}\r\n")
s.quit()
PY
q() { "$MQ" -c "$work/mq.toml" queue "$@"; }
q --help >"$work/help"
has_summary=$(grep -c '^  summary' "$work/help" || true)
echo "entries: $(q list | tail -1)"
for where in running stopped; do
    [ "$where" = stopped ] && stop
    echo "list ($where): $(seconds q list) s"
    [ "$has_summary" = 1 ] && echo "summary ($where): $(seconds q summary) s"
done
ids() { q list >"$work/listing"; awk 'NR > 1 && $1 ~ /^[0-9A-F]+$/ { print $1 }' "$work/listing" | uniq >"$work/ids"; head -n "$DELETES" "$work/ids"; }
# Stopped, each call opens (replays) the whole queue: a tenth of the deletes tells the rate.
ids >"$work/one"
head -n "$((DELETES / 10))" "$work/one" >"$work/tenth"
t0=$(date +%s.%N)
while read -r id; do q delete "$id" >/dev/null; done <"$work/tenth"
echo "delete $((DELETES / 10)), one call each (stopped): $(echo "$(date +%s.%N) - $t0" | bc -l | xargs printf '%.3f') s"
start
ids >"$work/two"
t0=$(date +%s.%N)
while read -r id; do q delete "$id" >/dev/null; done <"$work/two"
echo "delete $DELETES, one call each (running): $(echo "$(date +%s.%N) - $t0" | bc -l | xargs printf '%.3f') s"
if [ "$has_summary" = 1 ]; then
    ids >"$work/three"
    echo "delete - of $DELETES (running): $(seconds q delete - <"$work/three") s"
    stop
    ids >"$work/four"
    echo "delete - of $DELETES (stopped): $(seconds q delete - <"$work/four") s"
else
    stop
fi
echo "left: $(q list | tail -1)"
