#!/usr/bin/env bash
# Runs a test command N times and reports which tests failed how often: the
# way to tell a flaky test from a broken one before touching it.
#
#   scripts/flaky.sh [-n RUNS] -- cargo test --release -p flextoe-tests --test linux_interop
#   scripts/flaky.sh -n 20 -- cargo test --release -p dpu-datapath --test pipeline_bulk all_faults
#
# Each run's output is kept under a scratch directory (printed at the end)
# so a failure can be read afterwards. Exit status: 0 if every run passed.
set -uo pipefail
runs=10
while [ $# -gt 0 ]; do
    case "$1" in
        -n) runs="$2"; shift 2 ;;
        --) shift; break ;;
        *) break ;;
    esac
done
if [ $# -eq 0 ]; then
    echo "usage: $0 [-n RUNS] -- COMMAND..." >&2
    exit 2
fi
logs="$(mktemp -d /tmp/flaky.XXXXXX)"
declare -A failed=()
bad=0
for i in $(seq "$runs"); do
    start=$(date +%s)
    if "$@" >"$logs/run-$i.log" 2>&1; then
        status=pass
    else
        status=FAIL
        bad=$((bad + 1))
    fi
    # Test names the harness marked FAILED in this run.
    names="$(sed -n 's/^test \(.*\) \.\.\. FAILED$/\1/p' "$logs/run-$i.log" | sort -u)"
    for t in $names; do failed[$t]=$(( ${failed[$t]:-0} + 1 )); done
    printf 'run %3d/%d: %s in %ds%s\n' "$i" "$runs" "$status" "$(( $(date +%s) - start ))" \
        "${names:+ (}$(echo $names | tr ' ' ',')${names:+)}"
done
echo
echo "$((runs - bad)) of $runs runs passed; logs in $logs"
for t in "${!failed[@]}"; do
    printf '  %-70s failed %d/%d\n' "$t" "${failed[$t]}" "$runs"
done
[ "$bad" -eq 0 ]
