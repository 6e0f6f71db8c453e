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
. bench/common.sh

SIZES=${SIZES:-"5120 102400"}
CONCURRENCY=${CONCURRENCY:-"1 20 100"}
PORT=${PORT:-$(free_port)}
features=()
[ "${NOOP:-0}" = 1 ] && features=(--features noop)

need smtp-source bc
build_mq "${features[@]}"

run() {
    local size=$1 concurrency=$2 messages dir pid start end
    messages=$(messages_for "$size")
    dir=$(mktemp -d)
    base_config "$PORT" "$dir" > "$dir/mq.toml"
    cat >> "$dir/mq.toml" <<CONF
$([ -n "${WORKERS:-}" ] && printf '[engine]\nworkers = %s\n' "$WORKERS")
# Acceptance alone is measured: nothing is delivered while the load runs.
[delivery]
enabled = false
CONF
    "$mq" --config "$dir/mq.toml" serve 2>"$dir/log" &
    pid=$!
    wait_for_port "$PORT"
    start=$(date +%s.%N)
    smtp-source ${REUSE:+-d} -s "$concurrency" -l "$size" -m "$messages" -f sender@client.test -t user@localhost "127.0.0.1:$PORT"
    end=$(date +%s.%N)
    local rss
    rss=$(peak_rss_mb "$pid")
    stop_mq "$pid"
    printf '%7d B  c=%-4d %6d msgs  %8.0f msg/s  peak RSS %6.1f MB  (queued %d)\n' \
        "$size" "$concurrency" "$messages" "$(echo "$messages / ($end - $start)" | bc -l)" \
        "$rss" "$(accepted "$dir/log")"
    rm -rf "$dir"
}

run_all
