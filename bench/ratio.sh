#!/usr/bin/env bash
# What relaying costs beside receiving, and the highest relay ÷ inbound ratio the machine's
# cores allow. For each message size and concurrency, two runs of the same load:
#
#   inbound  smtp-source → `mq serve`, delivery off (as bench/inbound.sh)
#   relay    smtp-source → `mq serve` → smarthost → sink (as bench/relay.sh)
#
# Each prints its rate (at the sink for the relay), the CPU seconds per 1,000 messages of mq,
# smtp-source and the sink, and how many of the machine's cores were busy (all processes,
# from /proc/stat). Then:
#
#   ratio      relay rate ÷ inbound rate, as measured
#   outbound   what relaying costs mq beyond receiving: mq's CPU relaying − mq's CPU receiving
#   CPU bound  (source + mq) CPU per message receiving ÷ (source + mq + sink) relaying: the
#              ratio the cores allow when both runs keep every core busy, whatever the
#              software, since the relay run must fit more CPU per message into the same cores
#
#   bench/ratio.sh                                  # 5 KB and 100 KB at concurrency 20 and 100
#   SINK=smtp-sink bench/ratio.sh                   # Postfix's smtp-sink (default: mq's sink)
#   SIZES="5120" CONCURRENCY="20" MESSAGES=20000 bench/ratio.sh
#   MQ_BIN=/tmp/mq-other bench/ratio.sh             # a binary built beforehand
#
# Needs smtp-source (and smtp-sink for SINK=smtp-sink): shared/tools/install-smtp-tools.sh.
# Traffic stays on 127.0.0.1; every run stops by itself after MESSAGES messages (or 120 s).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. bench/common.sh

SIZES=${SIZES:-"5120 102400"}
CONCURRENCY=${CONCURRENCY:-"20 100"}
PORT=${PORT:-$(free_port)}
SINK_PORT=${SINK_PORT:-$(free_port)}
SINK=${SINK:-mq}
CORES=$(nproc)

need smtp-source bc
[ "$SINK" = mq ] || need smtp-sink
build_sink
build_mq

# Busy and total jiffies of the whole machine so far: "BUSY TOTAL".
machine_jiffies() {
    awk '/^cpu / { total = 0; for (i = 2; i <= NF; i++) total += $i; print total - $5 - $6, total }' /proc/stat
}

# Cores busy between two machine_jiffies readings.
cores_busy() {
    local before=($1) after=($2)
    echo "($((after[0] - before[0])) / $((after[1] - before[1]))) * $CORES" | bc -l
}

# One run: SIZE CONCURRENCY MODE (inbound or relay). Sets rate, mq_cpu, source_cpu,
# sink_cpu (per 1,000) and busy.
measure() {
    local size=$1 concurrency=$2 mode=$3 messages dir pid sink=0 start end got cpu before after
    messages=$(messages_for "$size")
    dir=$(mktemp -d)
    base_config "$PORT" "$dir" > "$dir/mq.toml"
    if [ "$mode" = relay ]; then
        relay_config "$SINK_PORT" >> "$dir/mq.toml"
        start_sink "$dir"
    else
        printf '[delivery]\nenabled = false\n' >> "$dir/mq.toml"
    fi
    "$mq" --config "$dir/mq.toml" serve 2>"$dir/log" &
    pid=$!
    wait_for_port "$PORT"
    before=$(machine_jiffies)
    start=$(date +%s.%N)
    cpu=$(source_cpu "$dir" "$PORT" "$size" "$concurrency" "$messages")
    got=$messages
    [ "$mode" = relay ] && got=$(wait_received "$dir/sink" "$messages")
    end=$(date +%s.%N)
    after=$(machine_jiffies)
    source_cpu=$(per_thousand "$cpu" "$messages")
    mq_cpu=$(per_thousand "$(cpu_seconds "$pid")" "$messages")
    sink_cpu=0
    if [ "$mode" = relay ]; then
        sink_cpu=$(per_thousand "$(cpu_seconds "$sink")" "$messages")
        kill "$sink"; wait "$sink" 2>/dev/null || true
    fi
    stop_mq "$pid"
    [ "$got" -ge "$messages" ] || echo "the sink received $got of $messages" >&2
    rate=$(echo "$got / ($end - $start)" | bc -l)
    busy=$(cores_busy "$before" "$after")
    rm -rf "$dir"
    printf '%7d B  c=%-4d %-7s %8.0f msg/s  CPU s per 1,000: mq %5.3f source %5.3f sink %5.3f  cores busy %.2f of %d\n' \
        "$size" "$concurrency" "$mode" "$rate" "$mq_cpu" "$source_cpu" "$sink_cpu" "$busy" "$CORES"
}

run() {
    local size=$1 concurrency=$2 in_rate in_mq in_source
    measure "$size" "$concurrency" inbound
    in_rate=$rate in_mq=$mq_cpu in_source=$source_cpu
    measure "$size" "$concurrency" relay
    printf '%7d B  c=%-4d ratio %3.0f %%  outbound %5.3f CPU s per 1,000  CPU bound %3.0f %%\n' \
        "$size" "$concurrency" "$(echo "100 * $rate / $in_rate" | bc -l)" \
        "$(echo "$mq_cpu - $in_mq" | bc -l)" \
        "$(echo "100 * ($in_source + $in_mq) / ($source_cpu + $mq_cpu + $sink_cpu)" | bc -l)"
}

run_all
