#!/usr/bin/env bash
# Peak memory of `mq serve` under concurrent failing logins: CLIENTS TLS sessions at once, each
# sending one AUTH PLAIN with a wrong password for a user with an Argon2id hash (the default
# parameters, 19 MiB per check), then the peak resident set (VmHWM) of the server. Every check
# is a real one: the failed-login limit is raised out of the way, so that only the bound on
# verifications at once ([smtp.auth] max_verifications) stands between the clients and memory.
#
#   bench/auth-rss.sh                    # 64 and 200 clients, release build
#   COUNTS="64" MQ=target/debug/mq bench/auth-rss.sh
#   EXTRA='' MQ=/tmp/mq-old bench/auth-rss.sh   # a build without the [smtp.auth] limit keys
#
# Needs python3 and openssl.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. bench/common.sh

COUNTS=${COUNTS:-64 200}
PORT=${PORT:-$(free_port)}
EXTRA=${EXTRA-max_failures = 1000000}
need python3 openssl bc

if [ -z "${MQ:-}" ]; then
    cargo build --release -q -p mq-bin
    MQ=target/release/mq
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost -days 1 \
    -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null

# One run: CLIENTS sessions at once against a fresh server; prints the replies and peak RSS.
run() {
    local clients=$1 dir=$work/$1 pid
    mkdir -p "$dir"
    base_config "$PORT" "$dir" > "$dir/mq.toml"
    cat >> "$dir/mq.toml" <<CONF
[smtp.tls]
cert = "$work/cert.pem"
key = "$work/key.pem"
[smtp.auth]
$EXTRA
[smtp.auth.users]
alice = '\$argon2id\$v=19\$m=19456,t=2,p=1\$lmBdvyoyzLEDhXrO12K5aQ\$wiRSe2b53yL+CC0mwJApBEEyceRCUFkqQ5nmptwjlqU'
[delivery]
enabled = false
CONF
    "$MQ" --config "$dir/mq.toml" serve 2> "$dir/log" &
    pid=$!
    wait_for_port "$PORT"
    local replies
    replies=$(python3 - "$PORT" "$clients" <<'PY'
import base64, collections, smtplib, ssl, sys, threading
port, clients = int(sys.argv[1]), int(sys.argv[2])
context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE
start = threading.Barrier(clients)
codes = collections.Counter()
def login():
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=600) as smtp:
            smtp.starttls(context=context)
            smtp.ehlo()
            start.wait()
            answer = base64.b64encode(b"\0alice\0wrong password").decode()
            codes[smtp.docmd("AUTH", "PLAIN " + answer)[0]] += 1
    except Exception as error:
        codes[type(error).__name__] += 1
threads = [threading.Thread(target=login) for _ in range(clients)]
for t in threads: t.start()
for t in threads: t.join()
print(" ".join(f"{code}x{n}" for code, n in sorted(codes.items(), key=str)))
PY
)
    printf '%4d clients: replies %s, peak RSS %.0f MB\n' "$clients" "$replies" "$(peak_rss_mb "$pid")"
    stop_mq "$pid"
}

for clients in $COUNTS; do
    run "$clients"
done
