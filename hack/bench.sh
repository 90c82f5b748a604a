#!/usr/bin/env bash
# make bench: performance figures, printed as one table per tier and written
# as JSON under _out/bench/. Reference runs share the process (or the VM).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${BENCH_OUT:-_out/bench}
mkdir -p "$out"
echo "== emulated backend (this host)"
go run ./hack/bench -out "$out" "$@"
echo "== live-migration handoff (two emulated daemons, traffic running)"
go run ./hack/bench/migration -out "$out"
if [ -x hack/bench-kernel.sh ] && [ "${BENCH_KERNEL:-1}" = 1 ]; then
  echo "== Linux backend (real kernel in QEMU; BENCH_KERNEL=0 skips it)"
  BENCH_OUT="$out" hack/bench-kernel.sh
fi
