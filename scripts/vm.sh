#!/usr/bin/env bash
# Runs a command as root inside a VM booted on another Linux kernel (default:
# Debian's 7.3 cloud kernel from the experimental suite), with this machine's
# root filesystem shared read-only over virtiofs, so the built tree, Python,
# pytest and fio are all there at the same paths. Prints the command's output
# and exits with its status.
#
#   scripts/vm.sh [--kernel=7.3] [--timeout=S] [--smp=N] [--mem=MiB] [--accel=tcg|kvm] -- COMMAND...
#
# The kernel packages are fetched once with apt through a private sources list
# and state directory (the mirror is the one this system's own sources name)
# and cached in $FURING_VM_CACHE (default /var/cache/furing-vm), outside the
# tree. TCG by default: nested KVM does not boot recent kernels on these
# machines (doc/vm.md). Environment variables named FURING_*, ASAN_OPTIONS and
# UBSAN_OPTIONS are passed to the command. Needs root, qemu-system-x86 and
# QEMU's virtiofsd (scripts/setup.sh installs both).
set -euo pipefail
cd "$(dirname "$0")/.."
tree=$PWD

kernel=7.3 timeout=900 smp=2 mem=4096 accel=${FURING_VM_ACCEL:-tcg}
while [ $# -gt 0 ]; do
	case $1 in
	--kernel=*) kernel=${1#*=} ;;
	--timeout=*) timeout=${1#*=} ;;
	--smp=*) smp=${1#*=} ;;
	--mem=*) mem=${1#*=} ;;
	--accel=*) accel=${1#*=} ;;
	--) shift; break ;;
	-h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "vm: unknown option '$1' (see --help)" >&2; exit 2 ;;
	esac
	shift
done
[ $# -gt 0 ] || { echo "vm: no command given (scripts/vm.sh [OPTIONS] -- COMMAND...)" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "vm: run as root (virtiofsd shares / and the guest runs the command as root)" >&2; exit 2; }
case $accel in tcg|kvm) ;; *) echo "vm: --accel must be tcg or kvm, not '$accel'" >&2; exit 2 ;; esac
virtiofsd=/usr/lib/qemu/virtiofsd
for need in qemu-system-x86_64 "$virtiofsd"; do
	command -v "$need" >/dev/null || { echo "vm: $need is missing: run scripts/setup.sh (qemu-system-x86)" >&2; exit 2; }
done

for need in insmod mkfs.ext4; do
	command -v "$need" >/dev/null || { echo "vm: $need is missing: run scripts/setup.sh (kmod, e2fsprogs)" >&2; exit 2; }
done

cache=${FURING_VM_CACHE:-/var/cache/furing-vm}
flavour=cloud-amd64
vmlinuz=$cache/kernels/$kernel-$flavour/vmlinuz

# The Debian mirror this machine's own sources use (never written anywhere but
# the private sources list in the cache): system_mirror.
# shellcheck source=scripts/debian-mirror.sh
. scripts/debian-mirror.sh

# The guest loads two modules of the kernel's own package: loop (the block-device
# and loop-mounted ext4 tests) and virtio_blk (its /tmp is an ext4 disk, as on
# this machine, so fallocate's ZERO_RANGE and O_DIRECT behave as here).
moddir=$cache/kernels/$kernel-$flavour/modules
guest_modules=(drivers/block/loop.ko drivers/block/virtio_blk.ko)

# The private apt set-up for experimental/sid, its lists updated once per run
# (the kernel and its modules may both be fetched).
apt_opts=()
apt_ready() {
	local mirror apt=$cache/apt
	[ ${#apt_opts[@]} -eq 0 ] || return 0
	mirror=$(system_mirror)
	[ -n "$mirror" ] || { echo "vm: no Debian mirror found in /etc/apt/sources.list*" >&2; return 1; }
	mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$cache/debs"
	printf 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s %s main\n' \
		"$mirror" experimental "$mirror" sid >"$apt/sources.list"
	local opts=(-o Dir::Etc::SourceList="$apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
		-o Dir::State::Lists="$apt/lists" -o Dir::Cache="$apt/cache" -o APT::Sandbox::User=root)
	apt-get "${opts[@]}" -qq update >&2 || { echo "vm: apt-get update of experimental/sid failed" >&2; return 1; }
	apt_opts=("${opts[@]}")
}

# Downloads the newest Debian package $1 from experimental/sid into
# $cache/debs and prints its path (after apt_ready).
fetch_deb() {
	local pkg=$1
	echo "vm: fetching $pkg from Debian experimental/sid into $cache" >&2
	(cd "$cache/debs" && apt-get "${apt_opts[@]}" -qq download "$pkg" >&2) ||
		{ echo "vm: Debian has no package $pkg (is Linux $kernel in experimental or sid?)" >&2; return 1; }
	ls -t "$cache/debs/${pkg}_"*.deb | head -n 1
}

fetch_kernel() {
	local deb extract=$cache/extract
	apt_ready || return 1
	# linux-image-* is a meta package; the kernel itself is in linux-binary-*.
	deb=$(fetch_deb "linux-binary-$kernel-$flavour") || return 1
	rm -rf "$extract" && mkdir -p "$extract" "$(dirname "$vmlinuz")"
	dpkg-deb -x "$deb" "$extract"
	find "$extract" -name vmlinuz -exec cp {} "$vmlinuz" \;
	rm -rf "$extract"
	[ -s "$vmlinuz" ] || { echo "vm: $deb holds no vmlinuz" >&2; return 1; }
}

fetch_modules() {
	local deb extract=$cache/extract m ko
	apt_ready || return 1
	deb=$(fetch_deb "linux-modules-$kernel-$flavour") || return 1
	rm -rf "$extract" "$moddir" && mkdir -p "$extract" "$moddir"
	dpkg-deb -x "$deb" "$extract"
	for m in "${guest_modules[@]}"; do
		ko=$(find "$extract" -path "*/kernel/$m*" | head -n 1)
		[ -n "$ko" ] || { echo "vm: $deb holds no $m" >&2; rm -rf "$extract"; return 1; }
		case $ko in
		*.xz) xz -dc "$ko" ;;
		*.zst) zstd -dcq "$ko" ;;
		*) cat "$ko" ;;
		esac >"$moddir/$(basename "$m")"
	done
	rm -rf "$extract"
}

[ -s "$vmlinuz" ] || fetch_kernel || exit 2
for m in "${guest_modules[@]}"; do
	[ -s "$moddir/$(basename "$m")" ] || { fetch_modules || exit 2; break; }
done

run=$(mktemp -d /run/furing-vm.XXXXXX)
scratch=$run/scratch
mkdir -p "$scratch/modules"
disk=
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$run"
	[ -z "$disk" ] || rm -f "$disk"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for m in "${guest_modules[@]}"; do cp "$moddir/$(basename "$m")" "$scratch/modules/"; done
# The guest's /tmp: a sparse ext4 disk in the cache (on this machine's disk,
# not in its memory), made here because mkfs under TCG is slow; inode tables
# written now so the guest's kernel does not spend its CPU zeroing them.
disk=$(mktemp "$cache/tmp-disk.XXXXXX")
truncate -s 8G "$disk"
mkfs.ext4 -q -F -i 32768 -E lazy_itable_init=0,lazy_journal_init=0,nodiscard -L furing-vm-tmp "$disk" ||
	{ echo "vm: mkfs.ext4 of the guest's /tmp disk failed" >&2; exit 2; }

# What the guest runs: the command, its directory and environment.
{
	printf 'cd %q\n' "$tree"
	{ env | grep -E '^(FURING_[A-Z0-9_]*|ASAN_OPTIONS|UBSAN_OPTIONS)=' || true; } | while IFS= read -r kv; do
		printf 'export %q\n' "$kv"
	done
	printf '%q ' "$@"
	echo
} >"$scratch/cmd"

# The host's / read-only (the guest mounts it ro; chroot sandboxing because
# pivot_root into / itself is refused) and a writable scratch folder for the
# command, its status and the guest's log.
"$virtiofsd" --socket-path="$run/root.sock" -o source=/ -o cache=auto -o sandbox=chroot \
	>"$run/virtiofsd-root.log" 2>&1 &
pids+=($!)
"$virtiofsd" --socket-path="$run/scratch.sock" -o source="$scratch" -o cache=none \
	>"$run/virtiofsd-scratch.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do
	[ -S "$run/root.sock" ] && [ -S "$run/scratch.sock" ] && break
	sleep 0.1
done
[ -S "$run/root.sock" ] && [ -S "$run/scratch.sock" ] ||
	{ echo "vm: virtiofsd did not start: $(tail -n 1 "$run"/virtiofsd-*.log)" >&2; exit 2; }

cpu=max
[ "$accel" = kvm ] && cpu=host
status=0
timeout --foreground -k 5 "$timeout" qemu-system-x86_64 \
	-accel "$accel" -cpu "$cpu" -smp "$smp" -m "$mem" \
	-object memory-backend-memfd,id=mem,size="${mem}M",share=on -numa node,memdev=mem \
	-chardev socket,id=root,path="$run/root.sock" -device vhost-user-fs-pci,chardev=root,tag=root \
	-chardev socket,id=scratch,path="$run/scratch.sock" -device vhost-user-fs-pci,chardev=scratch,tag=scratch \
	-drive file="$disk",if=none,id=tmp,format=raw,cache=unsafe,discard=unmap -device virtio-blk-pci,drive=tmp \
	-kernel "$vmlinuz" \
	-append "rootfstype=virtiofs root=root ro console=ttyS0 quiet loglevel=3 panic=-1 init=$tree/scripts/vm-guest-init" \
	-display none -serial stdio -monitor none -nodefaults -no-reboot </dev/null || status=$?

if [ -f "$scratch/rc" ]; then
	exit "$(cat "$scratch/rc")"
fi
if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
	echo "vm: the guest did not finish within $timeout s (Linux $kernel, $accel); stopped it" >&2
elif [ -f "$scratch/booted" ]; then
	echo "vm: the guest stopped before the command finished (qemu exit $status; a guest panic prints above)" >&2
else
	echo "vm: Linux $kernel did not boot to its init under $accel (qemu exit $status)" >&2
fi
exit 2
