#!/usr/bin/env bash
# Measures everything issue 8 asks for, side by side in one run, and writes BENCHMARKS.md.
#
#   scripts/bench.sh [OUTPUT]        (default OUTPUT: BENCHMARKS.md at the repo root)
#
# - builds the release binaries, examples/loadgen and benches/hot_path;
# - installs what it lacks (secret-tool, gnome-keyring, dbus; apt-get, sudo when
#   not root) and a Python venv with the official looker_sdk (scripts/python-venv.sh);
# - starts a private session bus with an unlocked gnome-keyring (scripts/session-env.sh),
#   a Looker emulator, and a release looker-agent using that keyring, all in a temp tree;
# - times `lookerctl token`, `secret-tool lookup` of the same client secret and a Python
#   looker_sdk login as whole processes taking turns (loadgen procs); keep-alive socket latency and throughput against a
#   raw ping-pong baseline, D-Bus GetToken against Peer.Ping, the cold herd, memory,
#   shutdown and start-to-READY with examples/loadgen; the in-process parts with criterion;
# - writes the report (machine, date, baselines, medians, ratios, PASS/MISS per target).
#
# About 5 minutes once built. Nothing it starts outlives it; nothing outside the temp tree
# and target/ is touched except OUTPUT. Environment: BENCH_SECONDS (default 3) scales the
# socket and D-Bus runs; BENCH_SKIP_CRITERION=1 skips criterion.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
out="${1:-$repo/BENCHMARKS.md}"
seconds="${BENCH_SECONDS:-3}"
target="${CARGO_TARGET_DIR:-$repo/target}"
# shellcheck source=scripts/session-env.sh
. "$repo/scripts/session-env.sh"

log() { printf 'bench.sh: %s\n' "$*" >&2; }

work=""
agent_pid=""
emu_pid=""
cleanup() {
    local status=$?
    for pid in "$agent_pid" "$emu_pid"; do
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
    session_env_stop
    [ -n "$work" ] && rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start=$SECONDS

# --- tools -------------------------------------------------------------------------
session_env_install_missing

# --- build -------------------------------------------------------------------------
log "building release binaries, loadgen and the criterion bench"
cargo build --release --quiet --bins --example loadgen
[ "${BENCH_SKIP_CRITERION:-0}" = 1 ] || cargo bench --quiet --bench hot_path --no-run 2>/dev/null
bin="$target/release"
loadgen="$bin/examples/loadgen"

python=""
if python="$(bash "$repo/scripts/python-venv.sh")"; then
    log "python with looker_sdk: $python"
else
    log "no Python with looker_sdk (scripts/python-venv.sh failed): the Python comparison is skipped"
    python=""
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/looker-agent-bench.XXXXXX")"
results="$work/results.jsonl"
: >"$results"

# --- a private bus and keyring, an emulator, an agent ---------------------------------
session_env_start

secret="bench-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
client_id="benchclient0123456789"
"$loadgen" emulator --url-file "$work/emu.url" --client-id "$client_id" --secret "$secret" &
emu_pid=$!
for _ in $(seq 100); do [ -s "$work/emu.url" ] && break; sleep 0.05; done
[ -s "$work/emu.url" ] || { log "the emulator did not start"; exit 1; }
emu_url="$(cat "$work/emu.url")"

mkdir -m 700 "$work/config" "$work/data" "$work/state" "$work/runtime"
export XDG_CONFIG_HOME="$work/config" XDG_DATA_HOME="$work/data" XDG_STATE_HOME="$work/state" \
    XDG_RUNTIME_DIR="$work/runtime" LOOKER_AGENT_SECRET_STORE=secret-service RUST_LOG=warn
unset LOOKER_AGENT_CONFIG LOOKER_AGENT_SOCKET LOOKER_AGENT_PROFILE NOTIFY_SOCKET LISTEN_FDS LISTEN_PID \
    CREDENTIALS_DIRECTORY JOURNAL_STREAM
socket="$XDG_RUNTIME_DIR/looker-agent/agent.sock"

"$bin/lookerctl" profile add bench --base-url "$emu_url" >/dev/null
printf '%s' "$secret" | "$bin/lookerctl" credential add bench default --client-id "$client_id" >/dev/null
"$bin/looker-agent" 2>"$work/agent.log" &
agent_pid=$!
for _ in $(seq 200); do [ -S "$socket" ] && break; sleep 0.05; done
[ -S "$socket" ] || { log "the agent did not start:"; cat "$work/agent.log" >&2; exit 1; }
"$bin/lookerctl" token bench >/dev/null
got="$(secret-tool lookup application looker-agent profile bench credential default)"
[ "$got" = "$secret" ] || { log "secret-tool does not find the client secret the agent uses"; exit 1; }
# The bus name is requested after the object is served: wait until it is owned.
for _ in $(seq 100); do
    dbus-send --session --print-reply=literal --dest=org.freedesktop.DBus /org/freedesktop/DBus \
        org.freedesktop.DBus.NameHasOwner string:io.github.lookeragent.Agent1 2>/dev/null | grep -q true && break
    sleep 0.05
done
log "agent up with the Secret Service store; emulator at $emu_url"

# --- whole processes: lookerctl vs secret-tool vs the Python SDK ---------------------
# They take turns round by round (loadgen procs), so load from elsewhere on this small
# machine hits them alike. Floors: `true` (starting any process at all) and
# `lookerctl --version` (loading lookerctl and clap; no runtime, no socket).
procs=(--cmd "lookerctl=$bin/lookerctl token bench"
    --cmd "secret_tool=secret-tool lookup application looker-agent profile bench credential default"
    --cmd "floor_true=$(command -v true)"
    --cmd "floor_lookerctl_version=$bin/lookerctl --version")
if [ -n "$python" ]; then
    cat >"$work/sdk_login.py" <<'EOF'
# What a script does today without the agent: the official SDK logs in with the client secret.
import looker_sdk

sdk = looker_sdk.init40()
headers = sdk.auth.authenticate({})
assert headers["Authorization"].split()[0] in ("Bearer", "token")
EOF
    procs+=(--cmd "python_sdk/20=$python $work/sdk_login.py")
fi
log "whole processes: lookerctl token, secret-tool lookup, Python looker_sdk login, floors (interleaved)"
(cd "$work" && env LOOKERSDK_BASE_URL="$emu_url" LOOKERSDK_CLIENT_ID="$client_id" \
    LOOKERSDK_CLIENT_SECRET="$secret" LOOKERSDK_VERIFY_SSL=false LOOKERSDK_TIMEOUT=30 NO_PROXY='*' \
    "$loadgen" procs "${procs[@]}" --rounds 300 --warmup 20 --results "$results" >/dev/null)

# --- the socket and the bus ---------------------------------------------------------
log "loadgen socket (keep-alive latency, 64-connection throughput, ping-pong baseline)"
"$loadgen" socket --socket "$socket" --path /v1/profiles/bench/token --conns 64 --seconds "$seconds" --agent-pid "$agent_pid" \
    --results "$results" >/dev/null
log "loadgen dbus (GetToken vs Peer.Ping)"
"$loadgen" dbus --profile bench --seconds "$seconds" --results "$results" >/dev/null || log "D-Bus measurement failed"

kill "$agent_pid" && wait "$agent_pid" || true
agent_pid=""

# --- agents of their own: herd, memory, shutdown, READY ------------------------------
log "loadgen herd"
"$loadgen" herd --agent "$bin/looker-agent" --results "$results" >/dev/null
log "loadgen memory"
"$loadgen" memory --agent "$bin/looker-agent" --results "$results" >/dev/null
log "loadgen shutdown"
"$loadgen" shutdown --agent "$bin/looker-agent" --results "$results" >/dev/null
log "loadgen ready"
"$loadgen" ready --agent "$bin/looker-agent" --runs 20 --results "$results" >/dev/null

# --- in-process parts ----------------------------------------------------------------
crit_args=()
if [ "${BENCH_SKIP_CRITERION:-0}" != 1 ]; then
    log "criterion (benches/hot_path.rs)"
    rm -rf "$target/criterion"
    cargo bench --quiet --bench hot_path -- --warm-up-time 1 --measurement-time 2 >&2
    crit_args=(--criterion "$target/criterion")
fi

# The gateway section is scripts/bench-gateway.sh's (its own run, dated): kept across the rewrite.
gateway_section="$(sed -n '/^<!-- bench-gateway:begin/,/^<!-- bench-gateway:end -->/p' "$out" 2>/dev/null || true)"
"$loadgen" report --results "$results" "${crit_args[@]}" --out "$out"
[ -z "$gateway_section" ] || printf '\n%s\n' "$gateway_section" >>"$out"
log "done in $((SECONDS - start)) s; wrote $out"
