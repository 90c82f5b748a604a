#!/usr/bin/env bash
# test.sh runs the kernel-VM test tier (make test-kernel): it builds the test
# binary of every package that has TestKernel* functions, boots the VM once
# with all of them (run.sh) and prints a go-test-style line per package.
#
# Usage: test.sh [PACKAGE_DIR...]
#   Without arguments, every directory of the main module with a
#   'func TestKernel' in a *_test.go file. With arguments, just those.
#
# Environment:
#   OFFLOADD_KERNEL_RUN    -test.run pattern inside the VM (default ^TestKernel)
#   OFFLOADD_KVM_WORKDIR   where binaries and results go
#                          (default REPO/.cache/kernel-vm/run, emptied first)
#   OFFLOADD_KVM_TIMEOUT   VM time limit in seconds (default 540; lowered so
#                          that build plus VM stay under OFFLOADD_KVM_TIER_BUDGET)
#   OFFLOADD_KVM_TIER_BUDGET  whole-tier budget in seconds (default 590)
#   GO                     the go command (default: go on PATH, else
#                          /usr/local/go/bin/go)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${OFFLOADD_KVM_CACHE:-$repo/.cache/kernel-vm}
work=${OFFLOADD_KVM_WORKDIR:-$cache/run}
vm_timeout=${OFFLOADD_KVM_TIMEOUT:-540}
tier_budget=${OFFLOADD_KVM_TIER_BUDGET:-590}

log() { printf 'kernel-vm: %s\n' "$*" >&2; }
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
module=$(awk '$1 == "module" { print $2; exit }' go.mod)
[[ -n $module ]] || die "no module line in $repo/go.mod"

dirs=()
if [[ $# -gt 0 ]]; then
	for d in "$@"; do
		d=${d%/}
		d=${d#./}
		[[ -d $d ]] || die "$d is not a directory under $repo"
		dirs+=("$d")
	done
else
	while IFS= read -r f; do
		dirs+=("$(dirname "${f#./}")")
	done < <(grep -rlE --include='*_test.go' --exclude-dir=.git --exclude-dir=.cache \
		--exclude-dir=vendor --exclude-dir=testdata '^func TestKernel[A-Za-z0-9_]*\(' . | LC_ALL=C sort)
fi
mapfile -t dirs < <(printf '%s\n' ${dirs[@]+"${dirs[@]}"} | awk 'NF && !seen[$0]++')
[[ ${#dirs[@]} -gt 0 ]] || die "no package has TestKernel tests"

# in_nested_module DIR: true when DIR belongs to a go.mod below the root.
in_nested_module() {
	local d=$1
	while [[ $d != . && $d != / ]]; do
		[[ -f $d/go.mod ]] && return 0
		d=$(dirname "$d")
	done
	return 1
}

rm -rf "$work"
mkdir -p "$work"
start=$SECONDS
names=() imports=() build_failed=()
for d in "${dirs[@]}"; do
	if in_nested_module "$d"; then
		log "skipping $d: it belongs to a nested Go module"
		continue
	fi
	if [[ $d == . ]]; then
		imp=$module name=root
	else
		imp=$module/$d name=${d//\//_}
	fi
	log "building $imp"
	if ! CGO_ENABLED=0 "$go" test -c -o "$work/$name.test" "./$d"; then
		build_failed+=("$imp")
		continue
	fi
	if [[ ! -f $work/$name.test ]]; then
		log "$imp produced no test binary (build constraints?)"
		build_failed+=("$imp")
		continue
	fi
	[[ -d $d/testdata ]] && mkdir -p "$work/$name.d" && cp -a "$d/testdata" "$work/$name.d/"
	names+=("$name")
	imports+=("$imp")
done
build_secs=$((SECONDS - start))
log "built ${#names[@]} test binaries in ${build_secs}s"

vm_rc=0
if [[ ${#names[@]} -gt 0 ]]; then
	left=$((tier_budget - build_secs))
	[[ $left -lt $vm_timeout ]] && vm_timeout=$left
	[[ $vm_timeout -ge 60 ]] || die "building took ${build_secs}s; under 60s of the ${tier_budget}s tier budget are left for the VM"
	vm_start=$SECONDS
	"$here/run.sh" --timeout "$vm_timeout" "$work" || vm_rc=$?
	# Debian's 6.1 kernel can oops while it tears down a network namespace
	# (__fib6_drop_pcpu_from, fixed in later stable releases), killing the VM
	# before every binary ran. Boot once more for those that did not run.
	if [[ $vm_rc -ne 0 ]] && grep -qE 'BUG: |Oops: ' "$work/console.log" 2>/dev/null; then
		retry=$work/retry
		rm -rf "$retry" && mkdir -p "$retry"
		for name in "${names[@]}"; do
			[[ -f $work/results/$name.rc ]] && continue
			ln "$work/$name.test" "$retry/$name.test" 2>/dev/null || cp "$work/$name.test" "$retry/"
			[[ -d $work/$name.d ]] && cp -a "$work/$name.d" "$retry/"
		done
		left=$((vm_timeout - (SECONDS - vm_start)))
		if compgen -G "$retry/*.test" >/dev/null && [[ $left -ge 60 ]]; then
			log "the VM's kernel oopsed (see $work/console.log); booting again for the binaries that did not run"
			vm_rc=0
			"$here/run.sh" --timeout "$left" "$retry" || vm_rc=$?
			cp -a "$retry"/results/. "$work/results/"
		fi
	fi
fi

echo "===== kernel-vm tier: per package ====="
failed=0
for i in "${!names[@]}"; do
	name=${names[$i]} imp=${imports[$i]}
	rc=$(cat "$work/results/$name.rc" 2>/dev/null || echo none)
	secs=$(cat "$work/results/$name.time" 2>/dev/null || echo 0)
	if [[ $rc == 0 ]]; then
		printf 'ok  \t%s\t%ss\n' "$imp" "$secs"
	elif [[ $rc == none ]]; then
		printf 'FAIL\t%s [did not run]\n' "$imp"
		failed=$((failed + 1))
	else
		printf 'FAIL\t%s\t%ss\n' "$imp" "$secs"
		failed=$((failed + 1))
	fi
done
for imp in ${build_failed[@]+"${build_failed[@]}"}; do
	printf 'FAIL\t%s [build failed]\n' "$imp"
	failed=$((failed + 1))
done
total=$((SECONDS - start))
if [[ $failed -gt 0 || $vm_rc -ne 0 ]]; then
	echo "kernel-vm tier: FAIL ($failed package(s) failed; run.sh exit $vm_rc; ${total}s; output in $work)"
	exit 1
fi
echo "kernel-vm tier: PASS (${#names[@]} package(s), build ${build_secs}s, total ${total}s)"
