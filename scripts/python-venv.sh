#!/usr/bin/env bash
# Create (once) a Python virtual environment holding the official Looker SDK,
# used by tests/python_sdk.rs to check the emulator against a real client.
#
# The venv lives at ${LOOKER_AGENT_VENV:-<repo>/target/pyvenv}. The script is
# idempotent: it creates the venv only if it is missing and installs
# looker_sdk only if it cannot be imported yet. It prints the venv's python
# path on stdout and nothing else; all progress goes to stderr.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${LOOKER_AGENT_VENV:-$repo/target/pyvenv}"
python="$venv/bin/python"

log() { printf 'python-venv: %s\n' "$*" >&2; }

if ! command -v python3 >/dev/null 2>&1; then
    log "python3 is not installed; install python3 and python3-venv (Debian: apt-get install python3 python3-venv)"
    exit 1
fi

if [ ! -x "$python" ] || ! "$python" -c 'import sys' >/dev/null 2>&1; then
    log "creating virtual environment in $venv"
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    if ! python3 -m venv "$venv" >&2; then
        log "python3 -m venv failed; install the venv module (Debian: apt-get install python3-venv)"
        exit 1
    fi
fi

if ! "$python" -c 'import looker_sdk' >/dev/null 2>&1; then
    log "installing looker_sdk into $venv"
    if ! "$python" -m pip --version >/dev/null 2>&1; then
        "$python" -m ensurepip --upgrade >&2 || {
            log "pip is not available in the venv; install python3-pip / python3-venv"
            exit 1
        }
    fi
    "$python" -m pip install --disable-pip-version-check --quiet looker_sdk >&2
    "$python" -c 'import looker_sdk' >&2
fi

printf '%s\n' "$python"
