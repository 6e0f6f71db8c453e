# Shared by the load scripts in bench/: source it, don't run it.

# Fails with the install hint when a tool is missing.
need() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null || {
            echo "$tool is missing (smtp-source and smtp-sink: run shared/tools/install-smtp-tools.sh)" >&2
            exit 1
        }
    done
}

# How many messages a run sends: MESSAGES, or enough for a few seconds at the expected rate.
messages_for() {
    if [ -n "${MESSAGES:-}" ]; then echo "$MESSAGES"; elif [ "$1" -le 10240 ]; then echo 20000; else echo 4000; fi
}

# A TCP port on 127.0.0.1 that nothing listens on now, picked by the kernel, so that two runs
# (or a run beside the tests) never collide.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits until something listens on 127.0.0.1:PORT, for at most TENTHS tenths of a second.
wait_for_port() {
    local port=$1 tenths=${2:-100}
    for _ in $(seq "$tenths"); do
        (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on 127.0.0.1:$port" >&2
    return 1
}

# The peak resident set of process PID so far, in MB.
peak_rss_mb() {
    echo "$(awk '/VmHWM/ { print $2 }' "/proc/$1/status") / 1024" | bc -l
}

# CPU seconds (user + system) process PID has used so far.
cpu_seconds() {
    awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$1/stat" 2>/dev/null || echo 0
}

# Stops `mq serve` (PID) as an operator would, and waits for it.
stop_mq() {
    kill -TERM "$1"
    wait "$1" || true
}

# How many messages `mq serve` logged as accepted in LOG.
accepted() {
    grep -c "message accepted" "$1" || true
}

# The config every load run starts from: mq on 127.0.0.1:PORT with its data in DIR/data, no
# admin port, room for many connections from one address. A script appends its own tables.
base_config() {
    cat <<CONF
[smtp]
listen = "127.0.0.1:$1"
max_connections_per_ip = 1000
max_message_size = 10240000
[queue]
data_dir = "$2/data"
[admin]
listen = ""
CONF
}

# The sink's count of messages received: the last "mesg=N" it printed.
received() {
    tr '\r' '\n' < "$1" | grep -o 'mesg=[0-9]*' | tail -1 | cut -d= -f2
}

# Starts smtp-sink on SINK_PORT, counting into DIR/sink, as $sink; returns once it listens, so
# that no message is deferred for want of it.
start_sink() {
    if [ "${SINK:-}" = mq ]; then
        target/release/examples/sink "127.0.0.1:$SINK_PORT" > "$1/sink" 2>&1 &
    else
        smtp-sink -c -u nobody "127.0.0.1:$SINK_PORT" 1024 > "$1/sink" 2>&1 &
    fi
    sink=$!
    wait_for_port "$SINK_PORT"
}

# Runs smtp-source against PORT; prints the CPU seconds it used.
source_cpu() {
    local dir=$1 port=$2 size=$3 concurrency=$4 messages=$5
    # bash's own `time`: user and system seconds of the child, on stderr.
    ( TIMEFORMAT='%3U %3S'
      time smtp-source -s "$concurrency" -l "$size" -m "$messages" -f sender@client.test \
          -t user@remote.test "127.0.0.1:$port" >/dev/null 2>&1 ) 2> "$dir/source-time"
    awk '{ print $1 + $2 }' "$dir/source-time"
}

# Waits (at most 120 s) until the sink logging to FILE received MESSAGES; prints how many it did.
wait_received() {
    local got=0
    for _ in $(seq 1200); do
        got=$(received "$1"); got=${got:-0}
        [ "$got" -ge "$2" ] && break
        sleep 0.1
    done
    echo "$got"
}

# SECONDS of CPU per 1,000 of MESSAGES.
per_thousand() {
    echo "$1 * 1000 / $2" | bc -l
}


# Sets `mq` to the binary to run: MQ_BIN, one built beforehand (to compare builds in one
# session), or target/release/mq, built now with the cargo arguments given (features).
build_mq() {
    if [ -n "${MQ_BIN:-}" ]; then
        mq=$MQ_BIN
    else
        cargo build --release -q -p mq-bin "$@"
        mq=target/release/mq
    fi
}

# Builds mq's own counting sink when SINK=mq asks for it in smtp-sink's place.
build_sink() {
    if [ "${SINK:-}" = mq ]; then
        cargo build --release -q -p mq-bin --example sink
    fi
}

# The tables that make mq on 127.0.0.1:PORT (data in DIR) relay everything to the sink on
# 127.0.0.1:SINK_PORT; appended to base_config's.
relay_config() {
    cat <<CONF
[delivery]
smarthost = "127.0.0.1:$1"
concurrency = 100
[delivery.throttle]
connections = 100
[dns]
nameservers = ["127.0.0.1:9"]
CONF
}

# Calls `run SIZE CONCURRENCY` for every size in SIZES and concurrency in CONCURRENCY.
run_all() {
    local size concurrency
    for size in $SIZES; do
        for concurrency in $CONCURRENCY; do
            run "$size" "$concurrency"
        done
    done
}
