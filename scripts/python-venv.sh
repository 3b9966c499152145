#!/usr/bin/env bash
# Create (once) a Python virtual environment holding the official Looker SDK,
# used by tests/python_sdk.rs to check the Looker API emulator against a real
# client.
#
#   scripts/python-venv.sh            -> prints e.g. /repo/target/pyvenv/bin/python
#
# The venv lives at ${LOOKER_AGENT_VENV:-<repo>/target/pyvenv}. The script is
# idempotent: it creates the venv only when it is missing and installs
# looker_sdk (from PyPI) only when it cannot be imported yet. It prints the
# venv's python path on stdout and nothing else; all progress goes to stderr.
# Needs python3 with the venv module and pip (Debian: python3-venv).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${LOOKER_AGENT_VENV:-$repo/target/pyvenv}"
python="$venv/bin/python"

log() { printf 'python-venv: %s\n' "$*" >&2; }
die() {
    log "$*"
    exit 1
}

command -v python3 >/dev/null 2>&1 ||
    die "python3 is not installed; install it (Debian: apt-get install python3 python3-venv)"

mkdir -p "$(dirname "$venv")"
# Two test runs may get here at once: let one build the venv.
if command -v flock >/dev/null 2>&1; then
    exec 9>"$venv.lock"
    flock 9
fi

if [ ! -x "$python" ] || ! "$python" -c 'import sys' >/dev/null 2>&1; then
    if [ -e "$venv" ]; then
        # Only ever delete what is recognisably a (broken) venv of ours.
        if [ -f "$venv/pyvenv.cfg" ] || [ -z "$(ls -A "$venv")" ]; then
            rm -rf "$venv"
        else
            die "$venv exists and is not a virtual environment; remove it or set LOOKER_AGENT_VENV"
        fi
    fi
    log "creating virtual environment in $venv"
    if ! python3 -m venv "$venv" >&2; then
        # Debian's python3 without python3-venv cannot bootstrap pip into a
        # venv; a venv without pip still works if the system pip can
        # install into it (below).
        rm -rf "$venv"
        python3 -m venv --without-pip "$venv" >&2 ||
            die "python3 -m venv failed; install the venv module (Debian: apt-get install python3-venv)"
    fi
fi

if ! "$python" -c 'import looker_sdk' >/dev/null 2>&1; then
    log "installing looker_sdk into $venv"
    pip_args=(install --disable-pip-version-check --quiet looker_sdk)
    if "$python" -m pip --version >/dev/null 2>&1; then
        "$python" -m pip "${pip_args[@]}" >&2
    elif "$python" -m ensurepip --upgrade >&2 2>/dev/null; then
        "$python" -m pip "${pip_args[@]}" >&2
    elif python3 -m pip --version >/dev/null 2>&1; then
        # pip >= 22.3 can install into another interpreter's environment.
        python3 -m pip --python "$python" "${pip_args[@]}" >&2
    else
        die "no pip for $venv; install pip (Debian: apt-get install python3-pip python3-venv)"
    fi
    "$python" -c 'import looker_sdk' >&2 ||
        die "looker_sdk was installed but cannot be imported by $python"
fi

printf '%s\n' "$python"
