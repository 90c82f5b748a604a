#!/usr/bin/env bash
# setup.sh prepares the kernel-VM test tier on a Debian 12 host: it installs
# QEMU, busybox and iproute2, fetches the Debian kernel package that
# linux-image-amd64 depends on (cls_flower, act_ct, ... are modules there),
# and builds a busybox initramfs around hack/kernel-vm/init.
#
# Usage: setup.sh [--refresh]
#   --refresh   resolve the kernel package again even if one is cached
#
# Environment:
#   OFFLOADD_KVM_CACHE       cache directory (default: REPO/.cache/kernel-vm)
#   OFFLOADD_KVM_KERNEL_PKG  use this linux-image-* package instead of
#                            the one linux-image-amd64 depends on
#
# Idempotent: a second run with everything cached does no apt work and
# rebuilds nothing. It prints the paths it prepared and writes them to
# CACHE/vm.env for run.sh. Installing packages needs root.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${OFFLOADD_KVM_CACHE:-$repo/.cache/kernel-vm}
init_script=$here/init

# Host packages: qemu-system-x86 boots the VM; busybox-static, cpio, kmod
# (depmod), iproute2 (tc, ip), bash and netbase (/etc/protocols) go into or
# build the initramfs; gzip compresses it.
packages=(qemu-system-x86 busybox-static cpio kmod iproute2 bash netbase gzip)

# Module trees (relative to lib/modules/VERSION/kernel) copied whole into
# the initramfs; modules.dep pulls in whatever else they need.
module_trees=(
	net
	drivers/net/vxlan
	drivers/net/veth.ko
	drivers/net/geneve.ko
	drivers/net/dummy.ko
	drivers/net/ifb.ko
	drivers/net/macvlan.ko
	net/netfilter
	lib
	crypto
	arch/x86/crypto
	fs/9p
	fs/netfs
	fs/fscache
	net/9p
	drivers/virtio
)
# Parts of those trees no test needs (radio, storage and legacy protocols);
# left out unless something kept depends on them. Saves a third of the
# initramfs and of its unpacking time at boot.
module_skip='^kernel/net/(wireless|mac80211|mac802154|bluetooth|sunrpc|ceph|rxrpc|nfc|batman-adv|tipc|smc|rds|atm|can|ieee802154|6lowpan|dccp|vmw_vsock|appletalk|ax25|netrom|rose|x25|lapb|phonet|caif|qrtr|mctp|l2tp|kcm|iucv|hsr|dsa)/'

refresh=0
for arg in "$@"; do
	case $arg in
	--refresh) refresh=1 ;;
	-h | --help)
		sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "kernel-vm setup: unknown argument: $arg (try --help)" >&2
		exit 2
		;;
	esac
done

log() { printf 'kernel-vm setup: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

export DEBIAN_FRONTEND=noninteractive
apt_updated=0

need_root() {
	[[ $EUID -eq 0 ]] || die "$1 needs root; run: sudo $0"
}

apt_update() {
	[[ $apt_updated -eq 1 ]] && return 0
	need_root "apt-get update"
	log "apt-get update"
	apt-get update -qq || die "apt-get update failed"
	apt_updated=1
}

apt_lists_present() {
	compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null
}

# apt_try CMD...: run an apt command on the current package lists, fetching
# the lists first when there are none, and once more after an update when
# the command fails on stale lists.
apt_try() {
	apt_lists_present || apt_update
	if "$@"; then
		return 0
	fi
	[[ $apt_updated -eq 1 ]] && return 1
	log "retrying after apt-get update: $*"
	apt_update
	"$@"
}

install_packages() {
	local missing=() p status
	for p in "${packages[@]}"; do
		status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
		[[ $status == installed ]] || missing+=("$p")
	done
	[[ ${#missing[@]} -eq 0 ]] && return 0
	need_root "installing ${missing[*]}"
	log "installing ${missing[*]}"
	apt_try apt-get install -y -qq -o Dpkg::Use-Pty=0 --no-install-recommends "${missing[@]}" ||
		die "apt-get install ${missing[*]} failed"
}

# kernel_dep prints the linux-image-VERSION package that linux-image-amd64
# depends on in the current package lists, or nothing.
kernel_dep() {
	apt-cache depends --no-recommends --no-suggests --no-conflicts --no-breaks \
		--no-replaces --no-enhances linux-image-amd64 2>/dev/null |
		awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }'
}

# resolve_kernel_pkg sets kernel_pkg: the override, else the cached choice,
# else what linux-image-amd64 depends on now.
kernel_pkg=
resolve_kernel_pkg() {
	local pkg=
	if [[ -n ${OFFLOADD_KVM_KERNEL_PKG:-} ]]; then
		pkg=$OFFLOADD_KVM_KERNEL_PKG
	elif [[ $refresh -eq 0 && -s $cache/kernel.pkg ]]; then
		pkg=$(<"$cache/kernel.pkg")
		[[ -f $cache/kernel/$pkg/.unpacked ]] || pkg=
	fi
	if [[ -z $pkg ]]; then
		apt_lists_present || apt_update
		pkg=$(kernel_dep)
		if [[ -z $pkg && $apt_updated -eq 0 ]]; then
			apt_update
			pkg=$(kernel_dep)
		fi
		[[ -n $pkg ]] || die "cannot resolve the kernel package: linux-image-amd64 has no linux-image-<version> dependency in the apt lists"
	fi
	[[ $pkg =~ ^linux-image-[0-9][0-9.]*-[0-9]+-amd64(-unsigned)?$ ]] ||
		die "unexpected kernel package name: $pkg"
	kernel_pkg=$pkg
}

# modules_dir ROOT VERSION prints where the unpacked package keeps modules.
modules_dir() {
	local d
	for d in "$1/lib/modules/$2" "$1/usr/lib/modules/$2"; do
		[[ -d $d ]] && {
			printf '%s\n' "$d"
			return 0
		}
	done
	return 1
}

fetch_kernel() {
	local pkg=$1 ver=$2 root=$cache/kernel/$1
	[[ -f $root/.unpacked ]] && return 0
	local dl=$cache/download
	rm -rf "$dl" "$root.tmp"
	mkdir -p "$dl" "$root.tmp"
	log "downloading $pkg"
	# The sandbox user cannot write into a root-owned cache; download as
	# the invoking user instead.
	pushd "$dl" >/dev/null
	apt_try apt-get -qq -o APT::Sandbox::User="$(id -un)" download "$pkg" ||
		die "apt-get download $pkg failed"
	popd >/dev/null
	local deb
	deb=$(find "$dl" -maxdepth 1 -name "${pkg}_*.deb" -print -quit)
	[[ -n $deb ]] || die "apt-get download $pkg left no .deb in $dl"
	log "unpacking $(basename "$deb")"
	dpkg-deb -x "$deb" "$root.tmp" || die "dpkg-deb -x $deb failed"
	[[ -f $root.tmp/boot/vmlinuz-$ver ]] || die "$pkg has no boot/vmlinuz-$ver"
	modules_dir "$root.tmp" "$ver" >/dev/null || die "$pkg has no modules for $ver"
	if [[ ! -d $root.tmp/lib/modules/$ver ]]; then
		# depmod -b looks under BASE/lib/modules.
		mkdir -p "$root.tmp/lib"
		ln -s ../usr/lib/modules "$root.tmp/lib/modules"
	fi
	depmod -b "$root.tmp" "$ver" || die "depmod -b $root.tmp $ver failed"
	touch "$root.tmp/.unpacked"
	rm -rf "$root" "$dl"
	mv "$root.tmp" "$root"
	# Drop kernels fetched before this one.
	find "$cache/kernel" -mindepth 1 -maxdepth 1 ! -name "$pkg" -exec rm -rf {} +
}

# copy_with_libs SRC DEST STAGE copies an ELF binary to STAGE/DEST with the
# shared libraries and loader that ldd lists, at the same paths.
copy_with_libs() {
	local src=$1 dest=$2 stage=$3 lib
	install -D -m 0755 "$src" "$stage/$dest"
	while read -r lib; do
		[[ -e $stage$lib ]] && continue
		install -D -m 0755 "$(readlink -f "$lib")" "$stage$lib"
	done < <(ldd "$src" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
}

# select_modules MODDIR prints the module paths (relative to MODDIR) of the
# listed trees plus every dependency modules.dep records for them.
select_modules() {
	local moddir=$1 t
	{
		for t in "${module_trees[@]}"; do
			if [[ -d $moddir/kernel/$t ]]; then
				(cd "$moddir" && find "kernel/$t" -name '*.ko*' -type f)
			elif compgen -G "$moddir/kernel/$t*" >/dev/null; then
				(cd "$moddir" && find "kernel/$t"* -maxdepth 0 -type f)
			else
				log "warning: no module tree kernel/$t in this kernel"
			fi
		done
	} | grep -Ev "$module_skip" | sort -u >"$cache/selected.tmp"
	# modules.dep lists each module's full dependency closure.
	awk -F': *' 'NR == FNR { want[$1] = 1; print $1; next }
		{ sub(/:$/, "", $1) }
		($1 in want) && NF > 1 { n = split($2, d, / +/); for (i = 1; i <= n; i++) if (d[i] != "") print d[i] }' \
		"$cache/selected.tmp" "$moddir/modules.dep" | sort -u
	rm -f "$cache/selected.tmp"
}

build_initramfs() {
	local ver=$1 root=$2 out=$3
	local moddir stage=$cache/stage.tmp
	moddir=$(modules_dir "$root" "$ver")
	rm -rf "$stage"
	mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,run,mnt,root,var}
	ln -s ../run "$stage/var/run"

	ldd /bin/busybox >/dev/null 2>&1 &&
		die "/bin/busybox is dynamically linked; install busybox-static"
	install -m 0755 /bin/busybox "$stage/bin/busybox"
	local applet
	while read -r applet; do
		case ${applet##*/} in
		busybox | ip | tc) continue ;;
		esac
		[[ -e $stage/$applet || -L $stage/$applet ]] && continue
		mkdir -p "$stage/$(dirname "$applet")"
		ln -s /bin/busybox "$stage/$applet"
	done < <(/bin/busybox --list-full)

	# Real iproute2 under -real names (busybox sh would run its own applets
	# for bare ip/tc), and as /sbin/ip, /sbin/tc for PATH lookups by tests.
	local bin
	for bin in tc ip; do
		local src
		src=$(command -v "$bin" || true)
		[[ -n $src ]] || die "$bin not found; install iproute2"
		copy_with_libs "$src" "sbin/$bin-real" "$stage"
		ln -s "$bin-real" "$stage/sbin/$bin"
	done
	[[ -d /etc/iproute2 ]] && cp -a /etc/iproute2 "$stage/etc/"
	[[ -d /usr/share/iproute2 ]] && mkdir -p "$stage/usr/share" && cp -a /usr/share/iproute2 "$stage/usr/share/"
	# bash for ad-hoc scripts that ask for it; busybox sh is /bin/sh.
	copy_with_libs "$(command -v bash)" bin/bash "$stage"
	local f
	for f in protocols services; do
		[[ -f /etc/$f ]] && cp "/etc/$f" "$stage/etc/$f"
	done
	printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$stage/etc/passwd"
	printf 'root:x:0:\nnogroup:x:65534:\n' >"$stage/etc/group"
	printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$stage/etc/hosts"
	printf 'kvm\n' >"$stage/etc/hostname"

	# Modules: the selected trees with their dependencies, uncompressed (the
	# busybox modprobe needs no decompressor then), indexed by depmod.
	local smod=$stage/lib/modules/$ver m n=0
	mkdir -p "$smod"
	while read -r m; do
		install -D -m 0644 "$moddir/$m" "$smod/$m"
		case $m in
		*.ko.xz) xz -d "$smod/$m" ;;
		*.ko.zst) zstd -q --rm -d "$smod/$m" ;;
		*.ko.gz) gzip -d "$smod/$m" ;;
		esac
		n=$((n + 1))
	done < <(select_modules "$moddir")
	[[ $n -gt 0 ]] || die "no modules selected from $moddir"
	for f in modules.order modules.builtin modules.builtin.modinfo; do
		[[ -f $moddir/$f ]] && sed 's/\.ko\.\(xz\|zst\|gz\)$/.ko/' "$moddir/$f" >"$smod/$f"
	done
	depmod -b "$stage" "$ver" || die "depmod -b $stage $ver failed"
	log "initramfs: $n modules"

	install -m 0755 "$init_script" "$stage/init"

	(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) |
		gzip -6 >"$out.tmp" || die "building $out failed"
	mv "$out.tmp" "$out"
	rm -rf "$stage"
}

main() {
	[[ -f $init_script ]] || die "missing $init_script"
	install_packages
	mkdir -p "$cache"

	local pkg ver root
	resolve_kernel_pkg
	pkg=$kernel_pkg
	ver=${pkg#linux-image-}
	ver=${ver%-unsigned}
	fetch_kernel "$pkg" "$ver"
	printf '%s\n' "$pkg" >"$cache/kernel.pkg"
	root=$cache/kernel/$pkg

	# The initramfs depends on the kernel, the init script, this script (the
	# module list) and the host binaries copied into it.
	local key initrd
	key=$({
		printf '%s\n' "$ver"
		sha256sum "$init_script" "${BASH_SOURCE[0]}" | awk '{ print $1 }'
		dpkg-query -W -f='${Package} ${Version}\n' busybox-static iproute2 bash
	} | sha256sum | cut -c1-16)
	initrd=$cache/initramfs-$ver-$key.cpio.gz
	if [[ ! -s $initrd ]]; then
		log "building $(basename "$initrd")"
		build_initramfs "$ver" "$root" "$initrd"
		find "$cache" -maxdepth 1 -name 'initramfs-*.cpio.gz' ! -name "$(basename "$initrd")" -delete
	fi

	cat >"$cache/vm.env.tmp" <<-ENV
		KVM_KERNEL_VERSION=$ver
		KVM_KERNEL=$root/boot/vmlinuz-$ver
		KVM_INITRD=$initrd
	ENV
	mv "$cache/vm.env.tmp" "$cache/vm.env"
	log "ready: kernel $ver, initramfs $(basename "$initrd") ($(du -h "$initrd" | cut -f1))"
}

main
