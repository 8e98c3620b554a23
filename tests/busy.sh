#!/usr/bin/env bash
# Runs the test suite (`cargo test`, the README's test command) while two busy threads keep
# the CPU loaded beside it, again and again until it passes PASSES times in a row (3 by
# default), giving up after MAX_RUNS runs (8 by default; a run that takes more than
# RUN_TIMEOUT seconds, 3600 by default, fails). Each run's output is kept in
# target/busy/; the names of the tests that failed are printed after each run.
#
#   tests/busy.sh                          # the whole suite
#   tests/busy.sh --test it node_backup::  # arguments go to `cargo test`
#
# Tests must hold on a busy machine: a test that fails here waits on one thing and asserts
# on another, or gives up on a wait that should have had no time limit.
set -uo pipefail
cd "$(dirname "$0")/.."

passes_wanted=${PASSES:-3}
max_runs=${MAX_RUNS:-8}
run_timeout=${RUN_TIMEOUT:-3600}
logs="${CARGO_TARGET_DIR:-target}/busy"
mkdir -p "$logs"

# Build first, without the load: the load is for the tests, not the compiler.
if ! cargo test --no-run "$@"; then
  echo "busy: the tests do not build" >&2
  exit 1
fi

hogs=()
stop_hogs() {
  for pid in "${hogs[@]}"; do
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  hogs=()
}
suite=""
# Interrupted, the script stops its test run (`timeout` passes the signal on) and the hogs.
stop_all() {
  if [ -n "$suite" ]; then
    kill "$suite" 2>/dev/null
    wait "$suite" 2>/dev/null
  fi
  stop_hogs
}
trap stop_all EXIT
trap 'exit 130' INT TERM
start_hogs() {
  for _ in 1 2; do
    (while :; do :; done) &
    hogs+=("$!")
  done
}

in_a_row=0
for run in $(seq 1 "$max_runs"); do
  log="$logs/run-$run.log"
  start_hogs
  started=$(date +%s)
  timeout "$run_timeout" cargo test "$@" >"$log" 2>&1 &
  suite=$!
  wait "$suite"
  status=$?
  suite=""
  took=$(($(date +%s) - started))
  stop_hogs
  if [ "$status" -eq 0 ]; then
    in_a_row=$((in_a_row + 1))
    echo "busy: run $run passed in ${took} s ($in_a_row in a row)"
    if [ "$in_a_row" -ge "$passes_wanted" ]; then
      echo "busy: $passes_wanted runs in a row passed under load"
      exit 0
    fi
  else
    in_a_row=0
    echo "busy: run $run FAILED (exit $status) after ${took} s; output in $log"
    failed=$(grep -E '^test .* \.\.\. FAILED$' "$log" | sed -E 's/^test (.*) \.\.\. FAILED$/\1/')
    if [ -n "$failed" ]; then
      echo "$failed" | sed 's/^/busy:   failed: /'
      # Each failure's panic message.
      grep -E -A2 "^thread '.*' .*panicked at" "$log" | sed 's/^/busy:     /' | head -60
    else
      tail -20 "$log" | sed 's/^/busy:   /'
    fi
  fi
done
echo "busy: no $passes_wanted passing runs in a row within $max_runs runs" >&2
exit 1
