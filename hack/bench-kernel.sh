#!/usr/bin/env bash
# bench-kernel.sh measures the Linux backend inside the kernel VM: flower
# rule insertion by offloadd's codec (one socket, and one per vCPU),
# `tc -b`, vishvananda/netlink and the kernel floor, at 10,000 and 50,000
# rules, and the dump-and-adopt time of 10,000 rules after a restart
# (hack/bench/kernel). It builds the benchmark, boots the VM once with
# hack/kernel-vm/run.sh (setup.sh installs what is missing on first use),
# prints the table and copies the JSON to OUT/kernel.json.
#
# Usage: hack/bench-kernel.sh [BENCH_FLAGS...]
#   BENCH_FLAGS go to the benchmark, e.g. -sizes 10000 -repeat 1
#   -methods a,c,e -restart 0 (see go run ./hack/bench/kernel -h).
#
# Environment:
#   BENCH_OUT              output directory (default _out/bench)
#   OFFLOADD_KVM_TIMEOUT   VM time limit in seconds (default 1500)
#   OFFLOADD_KVM_BENCH_WORKDIR  VM share (default REPO/.cache/kernel-vm/bench)
#   BENCH_GODEBUG          GODEBUG for the benchmark in the VM (diagnostics,
#                          e.g. cpu.avx2=off)
#   GO                     the go command (default: go on PATH, else
#                          /usr/local/go/bin/go)
# The VM's console goes to OUT/kernel-vm.log, the benchmark's progress to
# stderr as it runs. The defaults take about 10 minutes on 2 cores.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
cache=${OFFLOADD_KVM_CACHE:-$repo/.cache/kernel-vm}
work=${OFFLOADD_KVM_BENCH_WORKDIR:-$cache/bench}
timeout=${OFFLOADD_KVM_TIMEOUT:-1500}

log() { printf 'bench-kernel: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

case ${1:-} in
-h | --help)
	sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
	exit 0
	;;
esac

go=${GO:-}
if [[ -z $go ]]; then
	go=$(command -v go || true)
	[[ -n $go ]] || go=/usr/local/go/bin/go
fi
[[ -x $go ]] || die "no go command (looked on PATH and at $go); set GO"

cd "$repo"
out=${BENCH_OUT:-_out/bench}
mkdir -p "$out"
out=$(cd "$out" && pwd)

# The share holds the benchmark binary (kernel.d/, copied to the script's
# working directory in the VM), the script init runs, and its arguments.
rm -rf "$work"
mkdir -p "$work/kernel.d"
log "building hack/bench/kernel"
CGO_ENABLED=0 "$go" build -o "$work/kernel.d/kernelbench" ./hack/bench/kernel
cat >"$work/kernel.sh" <<EOF
#!/bin/sh
# Run by the kernel VM's init from /tmp/run/kernel; /mnt is the share.
GODEBUG='${BENCH_GODEBUG:-}' exec ./kernelbench -out /mnt/kernel.json -table /mnt/kernel.txt "\$@"
EOF
chmod +x "$work/kernel.sh"
# init splits kernel.args into words; quote nothing.
printf '%s\n' "$*" >"$work/kernel.args"

cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
export OFFLOADD_BENCH_HOST="${cpu:-unknown CPU}, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
export OFFLOADD_BENCH_ACCEL="QEMU TCG, hack/kernel-vm/run.sh"

log "booting the kernel VM (timeout ${timeout}s); console in $out/kernel-vm.log"
"$repo/hack/kernel-vm/run.sh" --timeout "$timeout" "$work" >"$out/kernel-vm.log" 2>&1 &
vm=$!
# Progress as the VM writes it to the share; tail ends with run.sh.
tail -n +1 -F --pid="$vm" "$work/results/kernel.out" 2>/dev/null | grep --line-buffered '^kbench: ' >&2 || true
rc=0
wait "$vm" || rc=$?
if [[ $rc -ne 0 || ! -f $work/kernel.json || ! -f $work/kernel.txt ]]; then
	tail -n 40 "$out/kernel-vm.log" >&2
	die "the benchmark failed (run.sh exit $rc); see $out/kernel-vm.log"
fi
cp "$work/kernel.json" "$out/kernel.json"
cat "$work/kernel.txt"
echo
echo "(figures written to $out/kernel.json)"
