#!/usr/bin/env bash
# run.sh boots the kernel-VM test tier on a folder of test binaries: it runs
# setup.sh (a no-op when everything is cached), boots Debian's kernel in
# QEMU (TCG; KVM does not work on these machines) with DIR shared at /mnt,
# and lets hack/kernel-vm/init run every DIR/*.test and DIR/*.sh.
#
# Usage: run.sh [--timeout SECONDS] DIR
#   --timeout SECONDS  wall-clock limit for the VM (default 540, or
#                      $OFFLOADD_KVM_TIMEOUT); Go tests get -test.timeout
#                      set to what is left of it when they start
#
# The console goes to stdout and DIR/console.log; results land in
# DIR/results/NAME.out, NAME.rc, NAME.time, and the kernel log in
# DIR/results/dmesg.log. OFFLOADD_* variables of the caller (for example
# OFFLOADD_KERNEL_RUN, the -test.run pattern, default ^TestKernel) are passed
# into the VM through DIR/vm.env. Exits non-zero when a binary or script
# failed, none ran, or the VM did not finish in time.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${OFFLOADD_KVM_CACHE:-$repo/.cache/kernel-vm}
timeout=${OFFLOADD_KVM_TIMEOUT:-540}

log() { printf 'kernel-vm: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}
usage() {
	echo "usage: $0 [--timeout SECONDS] DIR" >&2
	exit 2
}

dir=
while [[ $# -gt 0 ]]; do
	case $1 in
	--timeout)
		[[ $# -ge 2 ]] || usage
		timeout=$2
		shift 2
		;;
	--timeout=*)
		timeout=${1#--timeout=}
		shift
		;;
	-h | --help)
		sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
		exit 0
		;;
	-*) usage ;;
	*)
		[[ -z $dir ]] || usage
		dir=$1
		shift
		;;
	esac
done
[[ -n $dir ]] || usage
[[ $timeout =~ ^[0-9]+$ && $timeout -ge 30 ]] || die "--timeout must be a whole number of seconds, at least 30 (got $timeout)"
[[ -d $dir ]] || die "$dir is not a directory"
dir=$(cd "$dir" && pwd)

shopt -s nullglob
payload=("$dir"/*.test "$dir"/*.sh)
shopt -u nullglob
[[ ${#payload[@]} -gt 0 ]] || die "nothing to run: no *.test or *.sh in $dir"

OFFLOADD_KVM_CACHE=$cache "$here/setup.sh" || die "setup.sh failed"
[[ -f $cache/vm.env ]] || die "setup.sh wrote no $cache/vm.env"
KVM_KERNEL='' KVM_INITRD='' KVM_KERNEL_VERSION=''
# shellcheck source=/dev/null # written by setup.sh
. "$cache/vm.env"
[[ -f $KVM_KERNEL && -f $KVM_INITRD ]] || die "kernel or initramfs missing; run $here/setup.sh --refresh"

# Fresh results; the caller's OFFLOADD_* settings and the time budget go in
# through vm.env (QEMU needs a few seconds before the kernel's clock starts).
rm -rf "$dir/results" "$dir/console.log"
mkdir -p "$dir/results"
{
	echo "# written by hack/kernel-vm/run.sh"
	echo "OFFLOADD_KVM_BUDGET=$((timeout - 5))"
	while IFS= read -r -d '' kv; do
		k=${kv%%=*}
		[[ $k =~ ^OFFLOADD_[A-Za-z0-9_]*$ ]] || continue
		case $k in
		OFFLOADD_KERNEL | OFFLOADD_TC | OFFLOADD_IP | OFFLOADD_KVM_*) continue ;;
		esac
		printf 'export %s=%q\n' "$k" "${kv#*=}"
	done < <(env -0)
} >"$dir/vm.env"

command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 not found; run $here/setup.sh as root"
log "booting $KVM_KERNEL_VERSION with ${#payload[@]} file(s) from $dir (timeout ${timeout}s)"
start=$SECONDS
set +e
timeout --kill-after=10 "$timeout" \
	qemu-system-x86_64 -accel tcg -cpu max -smp 2 -m 2048 \
	-nographic -no-reboot -nic none \
	-kernel "$KVM_KERNEL" -initrd "$KVM_INITRD" \
	-append "console=ttyS0 quiet panic=-1" \
	-virtfs "local,path=$dir,mount_tag=host0,security_model=none" \
	</dev/null 2>&1 | sed -u 's/\r$//; s/\x1b\[[0-9;?]*[A-Za-z]//g; s/\x1bc//g' | tee "$dir/console.log"
rcs=("${PIPESTATUS[@]}")
set -e
elapsed=$((SECONDS - start))
qemu_rc=${rcs[0]}

status=0
finished=1
if [[ $qemu_rc -eq 124 || $qemu_rc -eq 137 ]]; then
	log "FAIL: the VM did not finish within ${timeout}s"
	finished=0
	status=1
elif [[ $qemu_rc -ne 0 ]]; then
	log "FAIL: qemu exited with status $qemu_rc"
	finished=0
	status=1
elif [[ ! -f $dir/results/summary ]]; then
	log "FAIL: the VM stopped before init finished (see $dir/console.log)"
	finished=0
	status=1
fi

shopt -s nullglob
outs=("$dir"/results/*.out)
shopt -u nullglob
for out in "${outs[@]}"; do
	name=$(basename "$out" .out)
	rc=$(cat "$dir/results/$name.rc" 2>/dev/null || echo "none")
	secs=$(cat "$dir/results/$name.time" 2>/dev/null || echo "?")
	echo "===== $name (exit $rc, ${secs}s) ====="
	cat "$out"
	echo
done

ran=0 passed=0 lines=()
for out in "${outs[@]}"; do
	name=$(basename "$out" .out)
	rc=$(cat "$dir/results/$name.rc" 2>/dev/null || echo "none")
	ran=$((ran + 1))
	if [[ $rc == 0 ]]; then
		passed=$((passed + 1))
		lines+=("PASS  $name")
	else
		status=1
		lines+=("FAIL  $name (exit $rc)")
	fi
done
if [[ $ran -eq 0 ]]; then
	log "FAIL: no test binary or script ran"
	status=1
fi

echo "===== kernel-vm results (${elapsed}s, kernel $KVM_KERNEL_VERSION) ====="
for l in ${lines[@]+"${lines[@]}"}; do
	echo "$l"
done
[[ $finished -eq 1 ]] || echo "VM did not finish: results may be partial"
echo "kernel-vm: $ran run, $passed ok, $((ran - passed)) failed"
exit "$status"
