#!/usr/bin/env bash
# make bench: performance figures, printed as one table per tier and written
# as JSON under _out/bench/. Reference runs share the process (or the VM).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${BENCH_OUT:-_out/bench}
mkdir -p "$out"
echo "== emulated backend (this host)"
go run ./hack/bench -out "$out" "$@"
