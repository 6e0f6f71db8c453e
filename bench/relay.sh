#!/usr/bin/env bash
# End-to-end relay benchmark: Postfix's smtp-source → `mq serve` (durable queue, fsync on) →
# smarthost → Postfix's smtp-sink, all over loopback. For each message size and concurrency it
# prints messages/s arriving at the sink (from the first message sent to the last one
# received), mq's peak RSS, and the CPU seconds per 1,000 messages of mq, the sink and the
# source. Then the same load from smtp-source straight into smtp-sink, with no mq between:
# the rate the sink and the source reach alone on this machine, which bounds the relay's.
#
#   bench/relay.sh                     # 5 KB and 100 KB at concurrency 20 and 100
#   SIZES="5120" CONCURRENCY="20" MESSAGES=20000 bench/relay.sh
#   MQ_BIN=/tmp/mq-other bench/relay.sh   # a binary built beforehand
#   SINK=mq bench/relay.sh             # mq's own counting sink (mq-bin/examples/sink.rs)
#                                      # instead of smtp-sink, which reads and parses every
#                                      # line and costs here about as much CPU per 100 KB
#                                      # message as mq's whole relaying
#
# Needs smtp-source and smtp-sink (shared/tools/install-smtp-tools.sh). Traffic stays on
# 127.0.0.1; every run stops by itself after MESSAGES messages (or 120 s).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. bench/common.sh

SIZES=${SIZES:-"5120 102400"}
CONCURRENCY=${CONCURRENCY:-"20 100"}
PORT=${PORT:-$(free_port)}
SINK_PORT=${SINK_PORT:-$(free_port)}

need smtp-source smtp-sink bc
build_sink
build_mq

run() {
    local size=$1 concurrency=$2 messages dir pid sink start end got=0 rss cpu_mq cpu_sink cpu_source
    messages=$(messages_for "$size")
    dir=$(mktemp -d)
    base_config "$PORT" "$dir" > "$dir/mq.toml"
    relay_config "$SINK_PORT" >> "$dir/mq.toml"
    start_sink "$dir"
    "$mq" --config "$dir/mq.toml" serve 2>"$dir/log" &
    pid=$!
    wait_for_port "$PORT"
    start=$(date +%s.%N)
    cpu_source=$(source_cpu "$dir" "$PORT" "$size" "$concurrency" "$messages")
    got=$(wait_received "$dir/sink" "$messages")
    end=$(date +%s.%N)
    rss=$(peak_rss_mb "$pid")
    cpu_mq=$(cpu_seconds "$pid")
    cpu_sink=$(cpu_seconds "$sink")
    stop_mq "$pid"
    kill "$sink"; wait "$sink" 2>/dev/null || true
    printf '%7d B  c=%-4d %6d msgs  %8.0f msg/s at the sink  peak RSS %6.1f MB  CPU s per 1,000: mq %5.2f sink %5.2f source %5.2f  (received %d)\n' \
        "$size" "$concurrency" "$messages" "$(echo "$got / ($end - $start)" | bc -l)" "$rss" \
        "$(per_thousand "$cpu_mq" "$messages")" "$(per_thousand "$cpu_sink" "$messages")" \
        "$(per_thousand "$cpu_source" "$messages")" "$got"
    rm -rf "$dir"
    alone "$size" "$concurrency" "$messages"
}

# The same load from smtp-source straight into smtp-sink: what the two reach with no mq.
alone() {
    local size=$1 concurrency=$2 messages=$3 dir sink start end got cpu_sink cpu_source
    dir=$(mktemp -d)
    start_sink "$dir"
    start=$(date +%s.%N)
    cpu_source=$(source_cpu "$dir" "$SINK_PORT" "$size" "$concurrency" "$messages")
    got=$(wait_received "$dir/sink" "$messages")
    end=$(date +%s.%N)
    cpu_sink=$(cpu_seconds "$sink")
    kill "$sink"; wait "$sink" 2>/dev/null || true
    printf '%7d B  c=%-4d %6d msgs  %8.0f msg/s source straight into the sink       CPU s per 1,000: sink %5.2f source %5.2f  (received %d)\n' \
        "$size" "$concurrency" "$messages" "$(echo "$got / ($end - $start)" | bc -l)" \
        "$(per_thousand "$cpu_sink" "$messages")" "$(per_thousand "$cpu_source" "$messages")" "$got"
    rm -rf "$dir"
}

run_all
