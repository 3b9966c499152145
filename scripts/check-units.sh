#!/usr/bin/env bash
# Offline checks of the systemd user units in systemd/, with systemd's own tools
# (no running systemd needed):
#
#   scripts/check-units.sh [PATH/TO/looker-agent]
#
# - `systemd-analyze --user verify` on looker-agent.socket and looker-agent.service:
#   fails on ANY output on stderr (unknown keys or sections only warn, exit status 0).
#   verify insists that ExecStart= names an existing executable, so it checks a copy
#   of the service whose ExecStart= points at the built binary (the argument, else
#   target/debug/looker-agent, built when missing);
# - `systemd-analyze --user security --offline=true` on the service: fails when the
#   overall exposure level is above LOOKER_AGENT_MAX_EXPOSURE (default 2.0);
# - with PrivateIPC=yes, every control command (ExecStartPre=, ExecStartPost=,
#   ExecReload=, ExecStop=, ExecStopPost=, ExecCondition=) must run outside the sandbox
#   ("+"): in a user unit, systemd 252 cannot set the sandbox up for a process next to
#   the main one (status=226/NAMESPACE; `systemctl --user reload` failed that way).
#   tests/systemd.rs checks the units under a real `systemd --user`;
# - the D-Bus activation file in dbus/, when present, must name looker-agent.service.
#
# Installs systemd (for systemd-analyze) with apt-get when it is missing.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
max_exposure="${LOOKER_AGENT_MAX_EXPOSURE:-2.0}"
log() { printf 'check-units.sh: %s\n' "$*" >&2; }

if ! command -v systemd-analyze >/dev/null 2>&1; then
    log "systemd-analyze missing; installing the systemd package"
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends systemd >/dev/null
fi

bin="${1:-}"
if [ -z "$bin" ]; then
    target="${CARGO_TARGET_DIR:-$repo/target}"
    bin="$target/debug/looker-agent"
    if [ ! -x "$bin" ]; then
        log "building $bin"
        (cd "$repo" && cargo build --quiet --bin looker-agent)
    fi
fi
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
[ -x "$bin" ] || { log "$bin is not an executable"; exit 1; }

work="$(mktemp -d "${TMPDIR:-/tmp}/looker-agent-units.XXXXXX")"
trap 'rm -rf "$work"' EXIT
# systemd-analyze --user needs a runtime directory; never use the caller's real one.
mkdir -m 700 "$work/runtime"
export XDG_RUNTIME_DIR="$work/runtime"

cp "$repo/systemd/looker-agent.service" "$repo/systemd/looker-agent.socket" "$work/"
grep -q '^ExecStart=%h/.cargo/bin/looker-agent$' "$work/looker-agent.service" || {
    log "systemd/looker-agent.service: expected ExecStart=%h/.cargo/bin/looker-agent (cargo install's path)"
    exit 1
}
sed -i "s|^ExecStart=%h/.cargo/bin/looker-agent\$|ExecStart=$bin|" "$work/looker-agent.service"

status=0

verify_err="$(cd "$work" && systemd-analyze --user verify looker-agent.socket looker-agent.service 2>&1 >/dev/null)" \
    || { log "systemd-analyze verify exited non-zero"; status=1; }
if [ -n "$verify_err" ]; then
    log "systemd-analyze --user verify complained (every warning counts):"
    printf '%s\n' "$verify_err" >&2
    status=1
else
    log "verify: both units clean"
fi

security="$(cd "$work" && systemd-analyze --user security --offline=true --no-pager looker-agent.service 2>&1)" || true
exposure="$(printf '%s\n' "$security" | sed -n 's/.*Overall exposure level for looker-agent.service: \([0-9.]*\).*/\1/p')"
if [ -z "$exposure" ]; then
    log "systemd-analyze security printed no exposure level:"
    printf '%s\n' "$security" >&2
    status=1
elif awk -v e="$exposure" -v m="$max_exposure" 'BEGIN { exit !(e > m) }'; then
    log "security: exposure $exposure is above $max_exposure; what is still open:"
    printf '%s\n' "$security" | grep -v '✓' >&2
    status=1
else
    log "security: exposure $exposure (at most $max_exposure)"
fi

service="$repo/systemd/looker-agent.service"
if grep -q '^PrivateIPC=yes$' "$service"; then
    sandboxed="$(grep -nE '^Exec(StartPre|StartPost|Reload|Stop|StopPost|Condition)=' "$service" |
        grep -vE '^[0-9]+:Exec[A-Za-z]+=(-|@|:|!)*\+' || true)"
    if [ -n "$sandboxed" ]; then
        log "control commands without \"+\" fail under a user manager with PrivateIPC=yes (226/NAMESPACE):"
        printf '%s\n' "$sandboxed" >&2
        status=1
    else
        log "control commands: all run outside the sandbox (\"+\")"
    fi
fi

for f in "$repo"/dbus/*.service; do
    [ -e "$f" ] || continue
    if grep -q '^SystemdService=looker-agent.service$' "$f"; then
        log "dbus: $(basename "$f") activates looker-agent.service"
    else
        log "dbus: $(basename "$f") has no SystemdService=looker-agent.service line"
        status=1
    fi
done

exit "$status"
