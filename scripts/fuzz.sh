#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a bounded time and prints a summary:
#
#   scripts/fuzz.sh [-t SECONDS] [TARGET...]      (default: 60 s each, every target)
#
# - targets: socket_request (the agent socket, end to end), gateway_request (the
#   gateway's TCP door, end to end, to a real HTTP upstream), config_parse,
#   looker_answer (Looker's login/user answers), looker_ini (looker.ini import);
# - seeds come from fuzz/corpus/<target>/ (committed); what the fuzzer learns goes
#   to fuzz/work/<target>/ (ignored by git), so reruns start where the last one ended;
# - a crash, leak, timeout or out-of-memory input lands in fuzz/artifacts/<target>/;
#   reproduce it with `RUSTC_BOOTSTRAP=1 cargo fuzz run -O <target> <file>`;
# - the summary's run time is the fuzzing alone (the build comes first, once).
# - exit status 1 when any target found something, 0 otherwise.
#
# cargo fuzz needs nightly features (sanitizers, -Z flags). On a stable toolchain the
# script sets RUSTC_BOOTSTRAP=1, which unlocks them; cargo-fuzz is installed with
# `cargo install cargo-fuzz` when missing. Builds go to fuzz/target/, away from the
# main target/ folder. Not part of `cargo test`: the suite only replays the seeds
# (tests/hostile.rs).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
seconds="${FUZZ_SECONDS:-60}"
log() { printf 'fuzz.sh: %s\n' "$*" >&2; }
usage() { sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

while getopts ":t:h" opt; do
    case "$opt" in
        t) seconds="$OPTARG" ;;
        h) usage ;;
        *) usage ;;
    esac
done
shift $((OPTIND - 1))
[[ "$seconds" =~ ^[0-9]+$ ]] && [ "$seconds" -gt 0 ] || { log "-t wants a positive number of seconds"; exit 2; }

all_targets=(socket_request gateway_request config_parse looker_answer looker_ini gateway_state)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")
for t in "${targets[@]}"; do
    [ -f "$repo/fuzz/fuzz_targets/$t.rs" ] || { log "no fuzz target $t (have: ${all_targets[*]})"; exit 2; }
done

if ! cargo fuzz --version >/dev/null 2>&1; then
    log "cargo-fuzz missing; installing it (cargo install cargo-fuzz)"
    cargo install --quiet cargo-fuzz
fi
if ! rustc --version | grep -q nightly; then
    export RUSTC_BOOTSTRAP=1
fi

cd "$repo"
log "building the fuzz targets (release, address sanitizer) in fuzz/target/"
cargo fuzz build -O 2>&1 | tail -n 3 >&2 || { log "build failed"; exit 1; }
# Run what was just built (not `cargo fuzz run`, which would rebuild if a source
# changed meanwhile): every target fuzzes the same code, and run time is fuzzing time.
bin_dir="fuzz/target/$(rustc -vV | sed -n 's/^host: //p')/release"

summary=()
found=0
for t in "${targets[@]}"; do
    work="fuzz/work/$t"
    artifacts="fuzz/artifacts/$t"
    mkdir -p "$work" "$artifacts"
    out="$(mktemp "${TMPDIR:-/tmp}/fuzz-$t.XXXXXX")"
    before="$(find "$artifacts" -type f | wc -l)"
    log "running $t for ${seconds}s"
    start=$(date +%s)
    status=0
    # -timeout: one input taking longer is a hang (the socket harness gives up at 10 s itself).
    "$bin_dir/$t" -artifact_prefix="$artifacts/" \
        -max_total_time="$seconds" -timeout=30 -rss_limit_mb=2048 -print_final_stats=1 \
        "$work" "fuzz/corpus/$t" >"$out" 2>&1 || status=$?
    elapsed=$(( $(date +%s) - start ))
    execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$out" | tail -n 1)"
    rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$out" | tail -n 1)"
    after="$(find "$artifacts" -type f | wc -l)"
    crashes=$(( after - before ))
    if [ "$status" -ne 0 ] && [ "$crashes" -eq 0 ]; then
        # Failed without leaving an input behind (build or harness trouble): still a failure.
        crashes=1
        log "$t exited with status $status and no artifact; its output:"
        tail -n 30 "$out" >&2
    elif [ "$crashes" -gt 0 ]; then
        log "$t found $crashes problem input(s) in $artifacts:"
        grep -E 'panicked|ERROR: libFuzzer|SUMMARY' "$out" | head -n 5 >&2 || true
    fi
    [ "$crashes" -eq 0 ] || found=1
    summary+=("$(printf '%-16s %8ss %14s %10s %8s' "$t" "$elapsed" "${execs:-?}" "${rate:-?}" "$crashes")")
    rm -f "$out"
done

printf '\n%-16s %9s %14s %10s %8s\n' target "run time" executions "execs/s" crashes
printf '%s\n' "${summary[@]}"
exit "$found"
