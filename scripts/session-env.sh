# shellcheck shell=bash
# A private D-Bus session bus and an unlocked gnome-keyring, for tests.
#
# Source this file, then call `session_env_start`; it exports
# DBUS_SESSION_BUS_ADDRESS (plus LOOKER_AGENT_TEST_KEYRING=1 and the keyring
# password, so tests know the keyring is a disposable one) and registers nothing
# itself: call `session_env_stop` from your own EXIT trap.
#
#   . scripts/session-env.sh
#   trap session_env_stop EXIT
#   session_env_start
#
# Needs: dbus-daemon, dbus-send, gnome-keyring-daemon, secret-tool. Use
# `session_env_install_missing` to apt-get them on Debian/Ubuntu.

# systemd: busctl, systemd-analyze, systemd-socket-activate; libglib2.0-bin: gdbus; curl: raw socket checks.
# A real `systemd --user` (tests/common/user_manager.rs): systemd (the manager, journald),
# dbus-user-session (the session bus as a user unit), util-linux (unshare, nsenter,
# setpriv), passwd (useradd), procps (kill, the unit's ExecReload=).
# pass (with gnupg): the real external secret source of tests/secret_sources.rs.
SESSION_ENV_PACKAGES=(gnome-keyring libsecret-tools dbus-daemon dbus-bin systemd libglib2.0-bin curl
    dbus-user-session util-linux passwd procps pass gnupg)
session_env_dir=""
session_env_bus_pid=""
session_env_keyring_pid=""

session_env_log() { printf 'session-env: %s\n' "$*" >&2; }

# Installs the system packages when one of the commands is missing.
session_env_install_missing() {
    local missing=() cmd
    for cmd in dbus-daemon dbus-send gnome-keyring-daemon secret-tool busctl gdbus systemd-analyze \
        systemd-socket-activate curl setpriv unshare nsenter journalctl pass gpg gpgconf; do
        command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
    done
    # useradd lives in sbin, which a non-root PATH may lack; kill is also a shell builtin.
    [ -x /usr/bin/kill ] || [ -x /bin/kill ] || missing+=(kill)
    [ -x /usr/sbin/useradd ] || [ -x /sbin/useradd ] || command -v useradd >/dev/null 2>&1 || missing+=(useradd)
    [ -e /usr/lib/systemd/user/dbus.socket ] || [ -e /lib/systemd/user/dbus.socket ] || missing+=(dbus.socket)
    [ ${#missing[@]} -eq 0 ] && return 0
    session_env_log "missing ${missing[*]}: installing ${SESSION_ENV_PACKAGES[*]}"
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then
            sudo=(sudo)
        else
            session_env_log "not root and no sudo: install ${SESSION_ENV_PACKAGES[*]} yourself"
            return 1
        fi
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        session_env_log "no apt-get: install the equivalents of ${SESSION_ENV_PACKAGES[*]} (dbus, gnome-keyring, secret-tool)"
        return 1
    fi
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${SESSION_ENV_PACKAGES[@]}" >&2
}

# True when org.freedesktop.secrets has an owner on the current bus.
session_env_secrets_owned() {
    dbus-send --session --print-reply=literal --reply-timeout=1000 --dest=org.freedesktop.DBus \
        /org/freedesktop/DBus org.freedesktop.DBus.NameHasOwner string:org.freedesktop.secrets \
        2>/dev/null | grep -q true
}

# Starts the bus and the keyring, waits until the keyring serves, smoke-checks it.
session_env_start() {
    session_env_dir="$(mktemp -d "${TMPDIR:-/tmp}/looker-agent-session.XXXXXX")"
    local d="$session_env_dir"
    mkdir -m 700 "$d/runtime" "$d/data"

    # Our own bus config: like the stock session bus, but with no service
    # directories, so nothing gets D-Bus-activated behind our back (a second
    # gnome-keyring, a prompter): what the tests see is exactly what we start.
    cat >"$d/bus.conf" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <keep_umask/>
  <listen>unix:path=$d/runtime/bus</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
EOF
    # "Failed to set fd limit" is printed by every bus started as non-root or in
    # a container; it is harmless, so the bus's stderr goes to a log file.
    if ! dbus-daemon --config-file="$d/bus.conf" --fork --nopidfile \
        --print-address=3 --print-pid=4 3>"$d/bus.address" 4>"$d/bus.pid" 2>"$d/bus.log"; then
        session_env_log "dbus-daemon failed to start:"
        cat "$d/bus.log" >&2
        return 1
    fi
    session_env_bus_pid="$(tr -d '[:space:]' <"$d/bus.pid")"
    DBUS_SESSION_BUS_ADDRESS="$(head -n1 "$d/bus.address")"
    export DBUS_SESSION_BUS_ADDRESS

    # A throwaway password; exported so tests can unlock the collection again
    # after locking it (gnome-keyring's UnlockWithMasterPassword).
    LOOKER_AGENT_TEST_KEYRING_PASSWORD="test-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
    export LOOKER_AGENT_TEST_KEYRING_PASSWORD
    # --foreground: the daemonising form returns before it owns the name.
    # --unlock with a password on stdin creates and unlocks the `login` collection.
    printf '%s' "$LOOKER_AGENT_TEST_KEYRING_PASSWORD" |
        env XDG_RUNTIME_DIR="$d/runtime" XDG_DATA_HOME="$d/data" \
            gnome-keyring-daemon --foreground --unlock --components=secrets \
            >"$d/keyring.log" 2>&1 &
    session_env_keyring_pid=$!

    local i
    for ((i = 0; i < 100; i++)); do
        session_env_secrets_owned && break
        if ! kill -0 "$session_env_keyring_pid" 2>/dev/null; then
            session_env_log "gnome-keyring-daemon exited before serving org.freedesktop.secrets:"
            cat "$d/keyring.log" >&2
            return 1
        fi
        sleep 0.1
    done
    if ! session_env_secrets_owned; then
        session_env_log "org.freedesktop.secrets has no owner after 10 s; gnome-keyring-daemon log:"
        cat "$d/keyring.log" >&2
        return 1
    fi

    local got
    if ! printf 'smoke' | secret-tool store --label='looker-agent smoke check' looker-agent-smoke 1 ||
        ! got="$(secret-tool lookup looker-agent-smoke 1)" || [ "$got" != smoke ]; then
        session_env_log "secret-tool smoke check failed against the private keyring; log:"
        cat "$d/keyring.log" >&2
        return 1
    fi
    secret-tool clear looker-agent-smoke 1 || true
    export LOOKER_AGENT_TEST_KEYRING=1
    session_env_log "private bus $DBUS_SESSION_BUS_ADDRESS with an unlocked gnome-keyring"
}

# Stops the keyring and the bus and removes their files. Safe to call twice.
session_env_stop() {
    if [ -n "$session_env_keyring_pid" ]; then
        kill "$session_env_keyring_pid" 2>/dev/null || true
        wait "$session_env_keyring_pid" 2>/dev/null || true
        session_env_keyring_pid=""
    fi
    if [ -n "$session_env_bus_pid" ]; then
        kill "$session_env_bus_pid" 2>/dev/null || true
        session_env_bus_pid=""
    fi
    if [ -n "$session_env_dir" ]; then
        rm -rf "$session_env_dir"
        session_env_dir=""
    fi
}
