#!/usr/bin/env bash
# Runs one or more fuzz targets for a fixed time each, at the lowest CPU priority, on stable Rust.
# Usage: fuzz/run.sh SECONDS TARGET...   (logs to fuzz/logs/<target>-<HHMM>.log, crashes to fuzz/artifacts/)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=$1
shift
export RUSTC_BOOTSTRAP=1 # cargo fuzz passes -Z flags; this lets stable rustc take them
export CARGO_TARGET_DIR=${FUZZ_TARGET_DIR:-/root/.cache/flamedb/fuzz-target}
python3 fuzz/seed.py >/dev/null
mkdir -p fuzz/logs
for t in "$@"; do
  extra=()
  [ "$t" = jfr ] && extra+=(-max_len=262144)
  [ "$t" = pprof ] && extra+=(-max_len=65536)
  log="fuzz/logs/$t-$(date -u +%H%M).log"
  nice -n 19 cargo fuzz run -s none -a "$t" -- \
    -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 "${extra[@]}" \
    >"$log" 2>&1 || echo "$t: exited non-zero (see $log and fuzz/artifacts/$t/)"
done
