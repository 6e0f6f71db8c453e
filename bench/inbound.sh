#!/usr/bin/env bash
# Inbound load benchmark: Postfix's smtp-source → `mq serve` (durable queue, fsync on) over
# loopback. For each message size and concurrency it prints messages/s accepted and the
# server's peak RSS; with NOOP=1 the server is built with eight no-op plugins on every hook.
#
#   bench/inbound.sh                 # 5 KB and 100 KB at concurrency 1, 20, 100
#   NOOP=1 bench/inbound.sh          # the same with the noop plugins compiled in
#   SIZES="5120" CONCURRENCY="20" MESSAGES=20000 bench/inbound.sh
#   MQ_BIN=/tmp/mq-other bench/inbound.sh      # a binary built beforehand
#   WORKERS=1 bench/inbound.sh                  # [engine] workers (default: one per core)
#   REUSE=1 bench/inbound.sh                    # clients send all their messages over one
#                                               # connection each (smtp-source -d) instead of
#                                               # one connection per message
#
# Needs smtp-source (shared/tools/install-smtp-tools.sh installs it). Traffic stays on
# 127.0.0.1; every run stops by itself after MESSAGES messages.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SIZES=${SIZES:-"5120 102400"}
CONCURRENCY=${CONCURRENCY:-"1 20 100"}
PORT=${PORT:-2599}
features=()
[ "${NOOP:-0}" = 1 ] && features=(--features noop)

command -v smtp-source >/dev/null || { echo "smtp-source is missing: run shared/tools/install-smtp-tools.sh" >&2; exit 1; }
# MQ_BIN runs a binary built beforehand (to compare builds in one session) instead.
if [ -n "${MQ_BIN:-}" ]; then
    mq=$MQ_BIN
else
    cargo build --release -q -p mq-bin "${features[@]}"
    mq=target/release/mq
fi

# How many messages a run sends: enough for a few seconds at the expected rate.
messages_for() {
    if [ -n "${MESSAGES:-}" ]; then echo "$MESSAGES"; elif [ "$1" -le 10240 ]; then echo 20000; else echo 4000; fi
}

run() {
    local size=$1 concurrency=$2 messages dir pid start end
    messages=$(messages_for "$size")
    dir=$(mktemp -d)
    cat > "$dir/mq.toml" <<CONF
$([ -n "${WORKERS:-}" ] && printf '[engine]\nworkers = %s\n' "$WORKERS")
[smtp]
listen = "127.0.0.1:$PORT"
max_connections_per_ip = 1000
max_message_size = 10240000
[queue]
data_dir = "$dir/data"
[admin]
listen = ""
# Acceptance alone is measured: nothing is delivered while the load runs.
[delivery]
enabled = false
CONF
    "$mq" --config "$dir/mq.toml" serve 2>"$dir/log" &
    pid=$!
    for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
    start=$(date +%s.%N)
    smtp-source ${REUSE:+-d} -s "$concurrency" -l "$size" -m "$messages" -f sender@client.test -t user@localhost "127.0.0.1:$PORT"
    end=$(date +%s.%N)
    local rss
    rss=$(awk '/VmHWM/ { print $2 }' "/proc/$pid/status")
    kill -TERM "$pid"
    wait "$pid" || true
    local queued
    queued=$(grep -c "message accepted" "$dir/log" || true)
    printf '%7d B  c=%-4d %6d msgs  %8.0f msg/s  peak RSS %6.1f MB  (queued %d)\n' \
        "$size" "$concurrency" "$messages" "$(echo "$messages / ($end - $start)" | bc -l)" \
        "$(echo "$rss / 1024" | bc -l)" "$queued"
    rm -rf "$dir"
}

for size in $SIZES; do
    for concurrency in $CONCURRENCY; do
        run "$size" "$concurrency"
    done
done
