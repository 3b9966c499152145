#!/usr/bin/env bash
# The Looker API gateway against nginx as a token-injecting reverse proxy (issue 13), same
# run, same client (wrk, curl), same upstream (one Looker emulator), and writes the gateway
# section of BENCHMARKS.md.
#
#   scripts/bench-gateway.sh [OUTPUT]      (default OUTPUT: BENCHMARKS.md at the repo root)
#
# Three variants, measured in rounds that take turns (direct, nginx, gateway, direct, ...)
# so that load from elsewhere on a small machine hits them alike:
# - direct:  wrk -> emulator, with a real token (one login at the emulator, before any run);
# - nginx:   wrk -> nginx -> emulator; nginx adds `Authorization: token <real token>`
#            (the same token), keep-alive upstream; the client sends no Authorization;
# - gateway: wrk -> the agent's gateway (loopback TCP) -> emulator; the client logs in at the
#            gateway with a gateway credential (`lookerctl gateway credential --json`) and
#            sends its session token; the agent forwards with the real token.
# Per round and variant: one connection for latency (wrk -c1, p50), 64 keep-alive connections
# for throughput (wrk -c64), and one 256 MiB download (curl, MB/s). wrk runs
# scripts/bench/looker.lua, which logs in once and sets the header, for all three.
#
# Installs nginx and wrk when missing (apt-get; sudo when not root). nginx runs without any
# system config, on a private prefix, `daemon off`; when this script runs as root, nginx is
# started as nobody (setpriv), so it is never a root process. Nothing it starts outlives it.
#
# Environment: BENCH_GATEWAY_ROUNDS (default 7), BENCH_GATEWAY_SECONDS (per wrk run, default 5),
# BENCH_GATEWAY_VARIANTS (default direct,nginx,gateway; without gateway the section is printed,
# not written), BENCH_GATEWAY_DOWNLOAD_BYTES (default 268435456), BENCH_GATEWAY_NGINX_EXTRA
# (directives added to nginx's location block, e.g. "proxy_buffering off;", for trying
# other nginx settings; the report then names them), BENCH_GATEWAY_KINDS (default
# latency,latency_pinned,throughput,download: what each round measures; with fewer, the
# section is printed, not written: for quick experiments on one figure).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
out="${1:-$repo/BENCHMARKS.md}"
rounds="${BENCH_GATEWAY_ROUNDS:-7}"
seconds="${BENCH_GATEWAY_SECONDS:-5}"
variants_csv="${BENCH_GATEWAY_VARIANTS:-direct,nginx,gateway}"
download_bytes="${BENCH_GATEWAY_DOWNLOAD_BYTES:-268435456}"
target="${CARGO_TARGET_DIR:-$repo/target}"
bin="$target/release"
lua="$repo/scripts/bench/looker.lua"
# The call every latency and throughput run makes: an authenticated one (Looker's own
# `GET /user`), so each variant does its token work on every request.
api_path="/api/4.0/user"
IFS=, read -r -a variants <<<"$variants_csv"
kinds_csv="${BENCH_GATEWAY_KINDS:-latency,latency_pinned,throughput,download}"
IFS=, read -r -a kinds <<<"$kinds_csv"

log() { printf 'bench-gateway.sh: %s\n' "$*" >&2; }
die() {
    log "$*"
    exit 1
}
has_variant() {
    local v
    for v in "${variants[@]}"; do [ "$v" = "$1" ] && return 0; done
    return 1
}
for v in "${variants[@]}"; do
    case "$v" in direct | nginx | gateway) ;; *) die "unknown variant '$v' in BENCH_GATEWAY_VARIANTS (direct, nginx, gateway)" ;; esac
done
has_kind() {
    local k
    for k in "${kinds[@]}"; do [ "$k" = "$1" ] && return 0; done
    return 1
}
for k in "${kinds[@]}"; do
    case "$k" in latency | latency_pinned | throughput | download) ;; *) die "unknown kind '$k' in BENCH_GATEWAY_KINDS (latency, latency_pinned, throughput, download)" ;; esac
done

work=""
ngx_dir=""
emu_pid=""
ngx_pid=""
agent_pid=""
cleanup() {
    local status=$?
    local pid
    for pid in "$agent_pid" "$ngx_pid" "$emu_pid"; do
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
    [ -n "$work" ] && rm -rf "$work"
    [ -n "$ngx_dir" ] && rm -rf "$ngx_dir"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start=$SECONDS

# --- tools -----------------------------------------------------------------------------
nginx_bin="$(command -v nginx || true)"
[ -z "$nginx_bin" ] && [ -x /usr/sbin/nginx ] && nginx_bin=/usr/sbin/nginx
missing=()
[ -n "$nginx_bin" ] || missing+=(nginx)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
for cmd in curl python3 setpriv; do command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd"); done
if [ ${#missing[@]} -gt 0 ]; then
    pkgs=()
    for m in "${missing[@]}"; do
        case "$m" in python3) pkgs+=(python3-minimal) ;; setpriv) pkgs+=(util-linux) ;; *) pkgs+=("$m") ;; esac
    done
    log "missing ${missing[*]}: installing ${pkgs[*]}"
    sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || die "not root and no sudo: install ${pkgs[*]} yourself"
        sudo=(sudo)
    fi
    command -v apt-get >/dev/null 2>&1 || die "no apt-get: install ${pkgs[*]} yourself"
    # A machine that has nginx's service manager running may start the system nginx on port 80
    # after the install; this script neither uses nor stops it.
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >&2
    nginx_bin="$(command -v nginx || echo /usr/sbin/nginx)"
fi

# --- build -----------------------------------------------------------------------------
log "building the release binaries and loadgen (its emulator)"
cargo build --release --quiet --bins --example loadgen
loadgen="$bin/examples/loadgen"

if has_variant gateway && ! "$bin/lookerctl" gateway credential --help >/dev/null 2>&1; then
    die "this lookerctl has no 'gateway credential' command: the agent in this tree has no Looker API gateway
(issue 13) to measure. Measure the others with BENCH_GATEWAY_VARIANTS=direct,nginx $0"
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/looker-agent-bench-gw.XXXXXX")"
results="$work/results.jsonl"
: >"$results"

# A free loopback port (bound and released: nothing else on this machine races for it).
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# A form body with a credential, in a private file (a secret never goes on a command line).
write_form() {
    (umask 077 && printf 'client_id=%s&client_secret=%s' "$2" "$3" >"$1")
}
# POST {base}/api/4.0/login with the form in file $2; prints the access_token.
login_token() {
    curl -sS --fail --noproxy '*' --data-binary "@$2" "$1/api/4.0/login" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])'
}
# A curl header file `Authorization: token $2` at $1.
write_header() {
    (umask 077 && printf 'Authorization: token %s\n' "$2" >"$1")
}

# --- the upstream: one emulator, one credential ------------------------------------------
client_id="benchgw$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
secret="bench-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
"$loadgen" emulator --url-file "$work/emu.url" --client-id "$client_id" --secret "$secret" 2>"$work/emu.log" &
emu_pid=$!
for _ in $(seq 100); do [ -s "$work/emu.url" ] && break; sleep 0.05; done
[ -s "$work/emu.url" ] || die "the emulator did not start: $(cat "$work/emu.log")"
emu_url="$(cat "$work/emu.url")"
emu_hostport="${emu_url#http://}"
write_form "$work/real.form" "$client_id" "$secret"
real_token="$(login_token "$emu_url" "$work/real.form")"
write_header "$work/real.hdr" "$real_token"
log "emulator at $emu_url; one real token for direct and nginx"

# --- nginx: a token-injecting reverse proxy ----------------------------------------------
# worker_processes 2: the machine has 2 cores (what `auto` picks here, nginx's own advice);
# the agent serves on one runtime thread (its choice, measured: src/daemon/startup.rs), so
# nginx may use both cores where the agent uses at most one.
# keepalive_requests: nginx closes a client connection after 1000 requests by default
# (and an upstream one likewise); raised so that "64 keep-alive connections" stays 64
# connections for the whole run, as it does with the gateway.
# Access log off: the gateway logs calls only at debug level; the error log stays on.
# Response buffering stays at nginx's default (on); scripts/bench-gateway.sh's section in
# BENCHMARKS.md says why (measured both ways).
ngx_port=""
if has_variant nginx; then
    ngx_dir="$(mktemp -d "${TMPDIR:-/tmp}/looker-agent-bench-nginx.XXXXXX")"
    ngx_port="$(free_port)"
    mkdir -p "$ngx_dir/tmp"
    (
        umask 077
        cat >"$ngx_dir/nginx.conf" <<EOF
worker_processes 2;
daemon off;
pid $ngx_dir/nginx.pid;
error_log $ngx_dir/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $ngx_dir/tmp/body;
    proxy_temp_path $ngx_dir/tmp/proxy;
    fastcgi_temp_path $ngx_dir/tmp/fastcgi;
    uwsgi_temp_path $ngx_dir/tmp/uwsgi;
    scgi_temp_path $ngx_dir/tmp/scgi;
    keepalive_requests 1000000;
    upstream looker {
        server $emu_hostport;
        keepalive 64;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$ngx_port;
        location / {
            proxy_pass http://looker;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Authorization "token $real_token";
            ${BENCH_GATEWAY_NGINX_EXTRA:-}
        }
    }
}
EOF
    )
    ngx_cmd=("$nginx_bin" -p "$ngx_dir" -c "$ngx_dir/nginx.conf" -e "$ngx_dir/error.log")
    if [ "$(id -u)" -eq 0 ]; then
        chown -R 65534:65534 "$ngx_dir"
        ngx_cmd=(setpriv --reuid=65534 --regid=65534 --clear-groups -- "${ngx_cmd[@]}")
    fi
    "${ngx_cmd[@]}" 2>"$work/nginx.stderr" &
    ngx_pid=$!
    for _ in $(seq 100); do curl -s --noproxy '*' -o /dev/null "http://127.0.0.1:$ngx_port/alive" && break; sleep 0.05; done
    curl -sS --fail --noproxy '*' -o /dev/null "http://127.0.0.1:$ngx_port$api_path" ||
        die "nginx does not forward: $(cat "$work/nginx.stderr" "$ngx_dir/error.log" 2>/dev/null)"
    log "nginx $("$nginx_bin" -v 2>&1 | sed 's/^nginx version: //') on 127.0.0.1:$ngx_port, 2 workers$([ "$(id -u)" -eq 0 ] && echo ', as nobody')"
fi

# --- the agent's gateway -----------------------------------------------------------------
gw_url=""
if has_variant gateway; then
    gw_port="$(free_port)"
    mkdir -m 700 "$work/config" "$work/data" "$work/state" "$work/runtime" "$work/creds"
    (
        umask 077
        cat >"$work/config/config.toml" <<EOF
[gateway]
listen = "127.0.0.1:$gw_port"

[profiles.bench]
base_url = "$emu_url"

[[profiles.bench.credentials]]
name = "default"
client_id = "$client_id"
EOF
        printf '%s' "$secret" >"$work/creds/looker-agent.bench.default"
    )
    agent_socket="$work/runtime/agent.sock"
    # As the loadgen agents run: memory store fed from $CREDENTIALS_DIRECTORY, no D-Bus.
    env -u LOOKER_AGENT_PROFILE -u NOTIFY_SOCKET -u LISTEN_FDS -u LISTEN_PID -u JOURNAL_STREAM \
        XDG_CONFIG_HOME="$work/config" XDG_DATA_HOME="$work/data" XDG_STATE_HOME="$work/state" \
        XDG_RUNTIME_DIR="$work/runtime" CREDENTIALS_DIRECTORY="$work/creds" RUST_LOG=warn \
        "$bin/looker-agent" --secret-store memory --no-dbus --config "$work/config/config.toml" \
        --socket "$agent_socket" 2>"$work/agent.log" &
    agent_pid=$!
    for _ in $(seq 200); do [ -S "$agent_socket" ] && break; kill -0 "$agent_pid" 2>/dev/null || break; sleep 0.05; done
    [ -S "$agent_socket" ] || die "the agent did not start: $(cat "$work/agent.log")"
    gw_json="$(LOOKER_AGENT_SOCKET="$agent_socket" LOOKER_AGENT_CONFIG="$work/config/config.toml" \
        "$bin/lookerctl" gateway credential bench --json)" ||
        die "lookerctl gateway credential failed (agent log: $(cat "$work/agent.log"))"
    read -r gw_url gw_id gw_secret < <(printf '%s' "$gw_json" |
        python3 -c 'import json, sys; c = json.load(sys.stdin); print(c["base_url"].rstrip("/"), c["client_id"], c["client_secret"])')
    [ "$gw_url" = "http://127.0.0.1:$gw_port" ] || log "note: the gateway says its URL is $gw_url (asked for 127.0.0.1:$gw_port)"
    write_form "$work/gw.form" "$gw_id" "$gw_secret"
    gw_session="$(login_token "$gw_url" "$work/gw.form")" || die "login at the gateway ($gw_url) failed"
    write_header "$work/gw.hdr" "$gw_session"
    curl -sS --fail --noproxy '*' -o /dev/null -H "@$work/gw.hdr" "$gw_url$api_path" ||
        die "the gateway does not forward $api_path (agent log: $(cat "$work/agent.log"))"
    log "agent gateway at $gw_url"
fi

# --- one variant's pieces ------------------------------------------------------------------
base_of() {
    case "$1" in
    direct) printf '%s' "$emu_url" ;;
    nginx) printf 'http://127.0.0.1:%s' "$ngx_port" ;;
    gateway) printf '%s' "$gw_url" ;;
    esac
}
header_of() {
    case "$1" in
    direct) printf '%s' "$work/real.hdr" ;;
    nginx) printf '' ;;
    gateway) printf '%s' "$work/gw.hdr" ;;
    esac
}

# Every process (and thread) serving a call: the emulator, nginx's master and workers, the agent.
server_pids() {
    local p
    for p in "$emu_pid" "$ngx_pid" "$agent_pid"; do
        [ -n "$p" ] || continue
        echo "$p"
        pgrep -P "$p" || true
    done
}
# pin_servers CPULIST: moves all of them (every thread: taskset -a) to CPULIST.
pin_servers() {
    local p
    for p in $(server_pids); do taskset -a -p -c "$1" "$p" >/dev/null; done
}
all_cpus="0-$(($(nproc) - 1))"
clk_tck="$(getconf CLK_TCK)"

# The processes of one variant's proxy (none for direct).
proxy_pids() {
    case "$1" in
    nginx)
        echo "$ngx_pid"
        pgrep -P "$ngx_pid" || true
        ;;
    gateway) echo "$agent_pid" ;;
    esac
}
# CPU time (user + system, every thread, in clock ticks) used so far by the processes named.
cpu_ticks() {
    local p t=0 f
    for p in "$@"; do
        # Past the command name (which may hold spaces), fields 14 and 15 (utime, stime)
        # are the 12th and 13th.
        read -r -a f < <(sed 's/.*) //' "/proc/$p/stat")
        t=$((t + f[11] + f[12]))
    done
    echo "$t"
}

# run_wrk VARIANT KIND ROUND CONNS THREADS SECONDS [CPU]: one wrk run, one JSON line in
# $results; with CPU, wrk runs on that CPU only (the servers are pinned by the caller).
run_wrk() {
    local v="$1" kind="$2" round="$3" conns="$4" threads="$5" secs="$6" cpu="${7:-}" line
    local pin=()
    [ -n "$cpu" ] && pin=(taskset -c "$cpu")
    local id="" sec="" tok=""
    case "$v" in
    direct) tok="$real_token" ;;
    gateway) id="$gw_id" sec="$gw_secret" ;;
    esac
    local proxy emu0 proxy0 cpu_json=""
    proxy="$(proxy_pids "$v" | tr '\n' ' ')"
    emu0="$(cpu_ticks "$emu_pid")"
    # shellcheck disable=SC2086 # a list of pids
    proxy0="$(cpu_ticks $proxy)"
    # Prefix assignments: the credential is in wrk's environment, not on its command line.
    line="$(BENCH_TOKEN="$tok" BENCH_CLIENT_ID="$id" BENCH_CLIENT_SECRET="$sec" BENCH_TAG="$v" \
        "${pin[@]}" wrk -t"$threads" -c"$conns" -d"${secs}s" --timeout 10s -s "$lua" "$(base_of "$v")$api_path" |
        sed -n 's/^BENCH_JSON //p')"
    [ -n "$line" ] || die "wrk printed no result for $v ($kind)"
    printf '%s' "$line" | python3 -c '
import json, sys
r = json.load(sys.stdin)
bad = {k: n for k, n in r["errors"].items() if n}
if bad or r["requests"] == 0:
    sys.exit("%s: %d requests, errors %s: not a valid run" % (r["tag"], r["requests"], bad))
' || die "$v ($kind): the run had errors; nothing is reported from it"
    # shellcheck disable=SC2086 # a list of pids
    cpu_json="$(printf '"emulator_cpu_s":%s,"proxy_cpu_s":%s' \
        "$(awk -v a="$emu0" -v b="$(cpu_ticks "$emu_pid")" -v hz="$clk_tck" 'BEGIN { print (b - a) / hz }')" \
        "$(awk -v a="$proxy0" -v b="$(cpu_ticks $proxy)" -v hz="$clk_tck" 'BEGIN { print (b - a) / hz }')")"
    printf '{"variant":"%s","kind":"%s","round":%s,"wrk":%s,%s}\n' "$v" "$kind" "$round" "$line" "$cpu_json" >>"$results"
}

# run_download VARIANT ROUND: one timed download to /dev/null.
run_download() {
    local v="$1" round="$2" hdr args=() got code size speed
    hdr="$(header_of "$v")"
    [ -n "$hdr" ] && args=(-H "@$hdr")
    got="$(curl -sS --noproxy '*' "${args[@]}" -o /dev/null -w '%{http_code} %{size_download} %{speed_download}' \
        "$(base_of "$v")/api/4.0/emulator/download?bytes=$download_bytes")" || die "$v: the download failed"
    read -r code size speed <<<"$got"
    if [ "$code" != 200 ] || [ "$size" != "$download_bytes" ]; then
        die "$v: download answered $code with $size of $download_bytes bytes"
    fi
    printf '{"variant":"%s","kind":"download","round":%s,"status":%s,"bytes":%s,"bytes_per_s":%s}\n' \
        "$v" "$round" "$code" "$size" "$speed" >>"$results"
}

# Once per variant, untimed: the downloaded body is whole and is the emulator's pattern (byte i
# is i % 251), so a fast variant is not one that drops or garbles data.
check_download() {
    local v="$1" hdr args=()
    hdr="$(header_of "$v")"
    [ -n "$hdr" ] && args=(-H "@$hdr")
    curl -sS --fail --noproxy '*' "${args[@]}" "$(base_of "$v")/api/4.0/emulator/download?bytes=$download_bytes" |
        python3 -c '
import sys
want = int(sys.argv[1])
pattern = bytes(range(251)) * 300
off = 0
while True:
    chunk = sys.stdin.buffer.read(65536)
    if not chunk:
        break
    s = off % 251
    if chunk != pattern[s:s + len(chunk)]:
        sys.exit(f"byte pattern differs within bytes {off}..{off + len(chunk)}")
    off += len(chunk)
if off != want:
    sys.exit(f"{off} bytes, not {want}")
' "$download_bytes"
}

download=1
code="$(curl -s --noproxy '*' -o /dev/null -w '%{http_code}' -H "@$work/real.hdr" "$emu_url/api/4.0/emulator/download?bytes=1")"
if [ "$code" != 200 ]; then
    log "the emulator has no /api/4.0/emulator/download (answered $code): the download comparison is skipped"
    download=0
fi

# --- warm-up, then the rounds ----------------------------------------------------------------
log "warm-up and checks: ${variants[*]}"
for v in "${variants[@]}"; do
    run_wrk "$v" warmup 0 64 2 1
    if [ "$download" = 1 ] && has_kind download; then
        check_download "$v" || die "$v: the downloaded body is not the emulator's"
    fi
done
: >"$results"

log "$rounds rounds of ${variants[*]}, measuring ${kinds[*]} (latency: wrk -c1, free and on one CPU; throughput: wrk -c64; ${seconds}s each; download: $download_bytes bytes)"
for r in $(seq "$rounds"); do
    if has_kind latency; then
        for v in "${variants[@]}"; do run_wrk "$v" latency "$r" 1 1 "$seconds"; done
    fi
    # The same with client and servers on one CPU: on this kind of VM a call costs far more
    # when client and server sit on different vCPUs (each wake-up of a halted vCPU goes
    # through the hypervisor), and the scheduler picks one or the other for a while; on one
    # CPU, what a proxy adds is its own work and its context switches (BENCHMARKS.md says more
    # under "Where the floor is").
    if has_kind latency_pinned; then
        pin_servers 0
        for v in "${variants[@]}"; do run_wrk "$v" latency_pinned "$r" 1 1 "$seconds" 0; done
        pin_servers "$all_cpus"
    fi
    if has_kind throughput; then
        for v in "${variants[@]}"; do run_wrk "$v" throughput "$r" 64 2 "$seconds"; done
    fi
    if [ "$download" = 1 ] && has_kind download; then
        for v in "${variants[@]}"; do run_download "$v" "$r"; done
    fi
    log "round $r of $rounds done"
done

# --- the report ------------------------------------------------------------------------------
cpu="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
section="$work/section.md"
python3 "$repo/scripts/bench/gateway-report.py" --results "$results" --out "$section" \
    --date "$(date -u '+%Y-%m-%d %H:%M UTC')" --machine "$cpu, $(nproc) cores, $(uname -s) $(uname -r)" \
    --nginx "$("$nginx_bin" -v 2>&1 | sed 's/^nginx version: //')" --wrk "$(wrk -v 2>&1 | head -1 | awk '{print $2}')" \
    --agent "$("$bin/looker-agent" --version 2>/dev/null || echo looker-agent)" \
    --seconds "$seconds" --rounds "$rounds" --download-bytes "$download_bytes" --nginx-extra "${BENCH_GATEWAY_NGINX_EXTRA:-}"
if has_variant gateway && has_variant nginx && has_variant direct && [ ${#kinds[@]} -eq 4 ]; then
    python3 "$repo/scripts/bench/gateway-report.py" --splice "$section" --into "$out"
    log "done in $((SECONDS - start)) s; wrote the gateway section of $out"
else
    cat "$section"
    log "done in $((SECONDS - start)) s; not all three variants and four kinds ran, so $out is left as it was"
fi
