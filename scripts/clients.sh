#!/usr/bin/env bash
# Install (once) the real Looker clients the tests run against the emulator
# and the gateway, and print where they are:
#
#   scripts/clients.sh [node] [spectacles] [mcp] [toolbox]     (no argument: all four)
#   -> LOOKER_AGENT_NODE_MODULES=/repo/target/node-clients/node_modules
#      LOOKER_AGENT_SPECTACLES=/repo/target/venv-spectacles/bin/spectacles
#      LOOKER_AGENT_MCP=/repo/target/venv-looker-mcp/bin/looker-mcp-server
#      LOOKER_AGENT_TOOLBOX=/repo/target/node-toolbox/node_modules/.bin/toolbox
#
# - node:       @looker/sdk + @looker/sdk-node (npm) into target/node-clients
# - spectacles: spectacles (PyPI) in a venv of its own, target/venv-spectacles
# - mcp:        looker-mcp-server (PyPI, Python >= 3.11) in target/venv-looker-mcp
# - toolbox:    Google's MCP Toolbox (npm @toolbox-sdk/server: a Go binary on Looker's
#               Go SDK, the MCP server Looker's docs set up; about 300 MB) into
#               target/node-toolbox
#
# Versions are pinned (the ones /work/shared/notes/looker-clients.md measured);
# LOOKER_AGENT_CLIENTS_DIR moves the whole cache (default <repo>/target).
# Idempotent: a client is installed only when its stamp file (the pinned
# requirement) is missing or different, under a lock per client so that two
# test runs do not install into the same place at once. stdout carries only
# the NAME=PATH lines of the clients that are ready; progress and errors go
# to stderr. Exit status: 0 when every client asked for is ready, 1 otherwise
# (the lines of those that are ready are still printed).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${LOOKER_AGENT_CLIENTS_DIR:-$repo/target}"

NODE_PACKAGES=("@looker/sdk@26.12.0" "@looker/sdk-node@26.12.0")
TOOLBOX_PACKAGES=("@toolbox-sdk/server@1.12.0")
SPECTACLES_REQ="spectacles==2.4.20"
MCP_REQ="looker-mcp-server==0.25.0"

log() { printf 'clients: %s\n' "$*" >&2; }

# lock DIR: creates DIR's parent and holds an exclusive lock on DIR.lock
# (fd 9) until the caller's subshell ends (each installer runs in one).
# The installers run as `if` conditions, where `set -e` does not apply:
# every step checks its own status.
lock() {
    mkdir -p "$(dirname "$1")" || {
        log "cannot create $(dirname "$1")"
        return 1
    }
    if command -v flock >/dev/null 2>&1; then
        { exec 9>"$1.lock"; } 2>/dev/null || {
            log "cannot open the lock file $1.lock"
            return 1
        }
        flock 9 || return 1
    fi
}

# python_for_venv: a python3 >= 3.11 (looker-mcp-server needs it; one is
# enough for both venvs).
python_for_venv() {
    local py
    for py in python3 python3.13 python3.12 python3.11; do
        if command -v "$py" >/dev/null 2>&1 &&
            "$py" -c 'import sys, venv; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; then
            command -v "$py"
            return 0
        fi
    done
    return 1
}

# venv_install DIR REQUIREMENT EXECUTABLE: a venv at DIR holding REQUIREMENT,
# whose bin/EXECUTABLE must exist afterwards.
venv_install() (
    local dir="$1" req="$2" exe="$3"
    lock "$dir" || return 1
    if [ -x "$dir/bin/$exe" ] && [ "$(cat "$dir/.installed" 2>/dev/null)" = "$req" ]; then
        return 0
    fi
    local py
    py="$(python_for_venv)" || {
        log "no python3 >= 3.11 with the venv module for $req (Debian: apt-get install python3 python3-venv)"
        return 1
    }
    if [ -e "$dir" ]; then
        # Only ever delete what is recognisably a venv of ours.
        if [ -f "$dir/pyvenv.cfg" ] || [ -z "$(ls -A "$dir")" ]; then
            rm -rf "$dir"
        else
            log "$dir exists and is not a virtual environment; remove it or set LOOKER_AGENT_CLIENTS_DIR"
            return 1
        fi
    fi
    log "installing $req into $dir"
    "$py" -m venv "$dir" >&2 || {
        log "$py -m venv $dir failed (Debian: apt-get install python3-venv)"
        return 1
    }
    "$dir/bin/python" -m pip install --disable-pip-version-check --quiet "$req" >&2 || {
        log "pip install $req failed (see above)"
        return 1
    }
    [ -x "$dir/bin/$exe" ] || {
        log "$req installed but $dir/bin/$exe is missing"
        return 1
    }
    printf '%s\n' "$req" >"$dir/.installed" || return 1
)

# npm_install DIR CHECK PACKAGE...: the npm PACKAGEs in DIR/node_modules, after
# which the function CHECK, run in DIR, must succeed.
npm_install() (
    local dir="$1" check="$2"
    shift 2
    local want="$*"
    lock "$dir" || return 1
    if [ "$(cat "$dir/.installed" 2>/dev/null)" = "$want" ] && (cd "$dir" && "$check") >/dev/null 2>&1; then
        return 0
    fi
    command -v npm >/dev/null 2>&1 || {
        log "npm is not installed (Debian: apt-get install nodejs npm; Node >= 20)"
        return 1
    }
    log "installing $want into $dir"
    rm -rf "$dir/node_modules" "$dir/package.json" "$dir/package-lock.json" "$dir/.installed"
    mkdir -p "$dir" && printf '{"name":"looker-agent-test-clients","private":true}\n' >"$dir/package.json" || {
        log "cannot write $dir/package.json"
        return 1
    }
    (cd "$dir" && npm install --no-audit --no-fund --loglevel=error "$@" >&2) || {
        log "npm install $want failed (see above)"
        return 1
    }
    (cd "$dir" && "$check" >&2) || {
        log "$want installed but does not run ($check failed)"
        return 1
    }
    printf '%s\n' "$want" >"$dir/.installed" || return 1
)

# The checks of npm_install, run in the install folder.
node_sdk_loads() { node -e 'require("@looker/sdk-node"); require("@looker/sdk")'; }
toolbox_runs() { node_modules/.bin/toolbox --version; }

wanted=("$@")
[ ${#wanted[@]} -eq 0 ] && wanted=(node spectacles mcp toolbox)
status=0
for client in "${wanted[@]}"; do
    case "$client" in
    node)
        if npm_install "$cache/node-clients" node_sdk_loads "${NODE_PACKAGES[@]}"; then
            printf 'LOOKER_AGENT_NODE_MODULES=%s\n' "$cache/node-clients/node_modules"
        else
            status=1
        fi
        ;;
    spectacles)
        if venv_install "$cache/venv-spectacles" "$SPECTACLES_REQ" spectacles; then
            printf 'LOOKER_AGENT_SPECTACLES=%s\n' "$cache/venv-spectacles/bin/spectacles"
        else
            status=1
        fi
        ;;
    mcp)
        if venv_install "$cache/venv-looker-mcp" "$MCP_REQ" looker-mcp-server; then
            printf 'LOOKER_AGENT_MCP=%s\n' "$cache/venv-looker-mcp/bin/looker-mcp-server"
        else
            status=1
        fi
        ;;
    toolbox)
        if npm_install "$cache/node-toolbox" toolbox_runs "${TOOLBOX_PACKAGES[@]}"; then
            printf 'LOOKER_AGENT_TOOLBOX=%s\n' "$cache/node-toolbox/node_modules/.bin/toolbox"
        else
            status=1
        fi
        ;;
    *)
        log "unknown client '$client' (known: node spectacles mcp toolbox)"
        status=1
        ;;
    esac
done
exit "$status"
