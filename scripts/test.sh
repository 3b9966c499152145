#!/usr/bin/env bash
# The project's test command: `scripts/test.sh [CARGO TEST ARGS...]`.
#
# Gives the tests what they need from the machine, then runs
# `cargo test --workspace --all-targets` (the agent and crates/looker-emulator):
# - installs gnome-keyring, secret-tool, the D-Bus tools and pass when missing (apt-get,
#   with sudo when not root), and what a real `systemd --user` needs (systemd,
#   dbus-user-session, util-linux, passwd, procps): as root, tests/systemd.rs runs the
#   units under one for a throw-away user (required under CI=true, skipped otherwise);
# - starts a private session bus and an unlocked gnome-keyring on it (never the
#   desktop's own), and exports DBUS_SESSION_BUS_ADDRESS;
# - exports LOOKER_AGENT_PYTHON (a venv with the Looker SDK) via scripts/python-venv.sh;
# - installs the other real Looker clients (cached under target/) via scripts/clients.sh
#   and exports LOOKER_AGENT_NODE_MODULES (@looker/sdk-node), LOOKER_AGENT_SPECTACLES,
#   LOOKER_AGENT_MCP (looker-mcp-server) and LOOKER_AGENT_TOOLBOX (Google's MCP Toolbox);
#   under CI=true a failed install fails the run,
#   otherwise the tests of a missing client skip and say why;
# - installs Debian's `chromium` when missing, for the real-browser OAuth consent tests
#   (crates/looker-emulator/tests/consent_browser.rs; they fail under CI=true without it,
#   skip otherwise) and exports LOOKER_AGENT_CHROMIUM;
# - points the XDG directories at a temporary tree, so a test that forgets to
#   isolate itself still cannot touch your real config, data or sockets.
# Everything it started is stopped on exit; the exit status is cargo's.
#
# Examples: scripts/test.sh                                    (all targets)
#           scripts/test.sh --test secret_service --test file_store (just those)
#           scripts/test.sh -- --nocapture round_trip
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
# shellcheck source=scripts/session-env.sh
. "$repo/scripts/session-env.sh"

log() { printf 'test.sh: %s\n' "$*" >&2; }

sandbox=""
cleanup() {
    local status=$?
    session_env_stop
    [ -n "$sandbox" ] && rm -rf "$sandbox"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start=$SECONDS
session_env_install_missing
session_env_start
if [ "$(id -u)" -ne 0 ]; then
    log "not root: the tests under a real systemd --user (tests/systemd.rs) will skip"
fi

if [ -f "$repo/scripts/python-venv.sh" ]; then
    if ! LOOKER_AGENT_PYTHON="$(bash "$repo/scripts/python-venv.sh")"; then
        log "scripts/python-venv.sh failed (see above)"
        exit 1
    fi
    export LOOKER_AGENT_PYTHON
    log "LOOKER_AGENT_PYTHON=$LOOKER_AGENT_PYTHON"
fi

if [ -f "$repo/scripts/clients.sh" ]; then
    clients_status=0
    clients_out="$(bash "$repo/scripts/clients.sh")" || clients_status=$?
    while IFS='=' read -r name path; do
        case "$name" in
        LOOKER_AGENT_NODE_MODULES | LOOKER_AGENT_SPECTACLES | LOOKER_AGENT_MCP | LOOKER_AGENT_TOOLBOX)
            export "$name=$path"
            log "$name=$path"
            ;;
        esac
    done <<<"$clients_out"
    if [ "$clients_status" -ne 0 ]; then
        if [ "${CI:-}" = true ] || [ "${CI:-}" = 1 ]; then
            log "scripts/clients.sh could not install every real Looker client (see above); CI must run them all"
            exit 1
        fi
        log "scripts/clients.sh could not install every real Looker client (see above): the tests of the missing ones will skip"
    fi
fi

# Headless Chromium for the OAuth consent tests (kept apart from the session packages:
# it is big, and only those tests need it).
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    chromium_sudo=()
    [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && chromium_sudo=(sudo)
    if [ "$(id -u)" -eq 0 ] || [ ${#chromium_sudo[@]} -gt 0 ]; then
        log "chromium missing: installing it (apt-get install chromium)"
        "${chromium_sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >&2 ||
            { "${chromium_sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 &&
                "${chromium_sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >&2; } ||
            log "could not install chromium: the real-browser consent tests will skip (fail under CI=true)"
    fi
fi
if command -v chromium >/dev/null 2>&1; then
    LOOKER_AGENT_CHROMIUM="$(command -v chromium)"
    export LOOKER_AGENT_CHROMIUM
    log "LOOKER_AGENT_CHROMIUM=$LOOKER_AGENT_CHROMIUM"
fi

sandbox="$(mktemp -d "${TMPDIR:-/tmp}/looker-agent-test.XXXXXX")"
mkdir -m 700 "$sandbox/config" "$sandbox/data" "$sandbox/state" "$sandbox/runtime"
export XDG_CONFIG_HOME="$sandbox/config" XDG_DATA_HOME="$sandbox/data" \
    XDG_STATE_HOME="$sandbox/state" XDG_RUNTIME_DIR="$sandbox/runtime"
unset LOOKER_AGENT_CONFIG LOOKER_AGENT_SOCKET LOOKER_AGENT_SECRET_STORE LOOKER_AGENT_PROFILE

# `--all-targets` unless the caller picked targets (cargo would run the union);
# every workspace package unless the caller picked packages.
targets=(--all-targets)
packages=(--workspace)
for arg in "$@"; do
    [ "$arg" = -- ] && break
    case "$arg" in
    --lib | --bin | --bin=* | --bins | --test | --test=* | --tests | --example | --example=* | --examples | \
        --bench | --bench=* | --benches | --doc | --all-targets) targets=() ;;
    -p | -p* | --package | --package=* | --workspace | --manifest-path | --manifest-path=*) packages=() ;;
    esac
done

log "environment ready in $((SECONDS - start)) s; running cargo test ${packages[*]} ${targets[*]} $*"
status=0
cargo test "${packages[@]}" "${targets[@]}" "$@" || status=$?
log "cargo test exited with $status after $((SECONDS - start)) s in total"
exit "$status"
