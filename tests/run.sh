#!/usr/bin/env bash
# The test command: checks formatting and lints, builds the control plane binaries
# (cached by version), starts a real control plane on 127.0.0.1, runs every test against
# it, and stops it. Extra arguments go to `cargo test` (e.g. a test name filter).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

# A clean run peaks at ~5 GB (builds for five platforms): say so up front rather than let a
# test fail later on "no space left on device".
free_kb=$(df -Pk . | awk 'NR == 2 { print $4 }')
if [ "${free_kb:-0}" -lt $((6 * 1024 * 1024)) ]; then
  echo "warning: only $((free_kb / 1024)) MiB free on $(df -P . | awk 'NR == 2 { print $6 }'); a clean run needs about 6 GiB" >&2
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== test control plane"
bash tests/cluster/build.sh >/dev/null
state=$(mktemp -d "${TMPDIR:-/tmp}/kubectl-gitops-test.XXXXXX")
# One closing line with the totals of every test binary (cargo prints one line each, the
# last ones for crates without doc tests), printed last.
totals() {
  [ -f "$state/cargo-test.log" ] || return 0
  awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;/) p += $(i-1); if ($i ~ /^failed;/) f += $(i-1) } }
       END { printf "tests: %d passed, %d failed\n", p, f }' "$state/cargo-test.log"
}
cleanup() {
  local rc=$?
  bash tests/cluster/cluster.sh down "$state" || rc=1
  totals
  if [ "$rc" -eq 0 ]; then rm -rf "$state"; else echo "control plane logs kept in $state/logs" >&2; fi
  exit "$rc"
}
trap cleanup EXIT
bash tests/cluster/cluster.sh up "$state"
# shellcheck disable=SC1091
. "$state/env"

echo "== cargo test"
cargo test --workspace --locked -- "$@" 2>&1 | tee "$state/cargo-test.log"

# Last: no plugin run of the whole suite printed a canary (a Secret value in the fixtures,
# a test user's bearer token) unless asked to with --show-secrets. The harness recorded
# every run under $state/plugin-runs/.
if [ $# -eq 0 ]; then
  echo "== canary check"
  cargo test -p kubectl-gitops-tests --test e2e --locked -- --ignored \
    canary::canary_values_appear_in_no_recorded_output 2>&1 | tee -a "$state/cargo-test.log"
fi

# The release archives of every krew platform: builds the workspace once per platform, so
# it runs alone rather than beside the cluster tests.
if [ $# -eq 0 ]; then
  echo "== release archives for every platform"
  cargo test -p kubectl-gitops-tests --test e2e --locked -- --ignored \
    release_archives::release_archives_for_every_krew_platform_hold_a_binary_that_runs_there 2>&1 | tee -a "$state/cargo-test.log"
fi

# The benchmark's small mode, so it cannot rot (timings are printed, never asserted).
if [ $# -eq 0 ]; then
  echo "== benchmark smoke run"
  python3 bench/bench.py --smoke --profile dev --state "$state"
fi
