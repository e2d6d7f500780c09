#!/usr/bin/env bash
# The main job, end to end: set up, build, make a 64 MiB image, export it over
# FUSE-over-io_uring, write and read it back through the mount, check it
# against the image, print the daemon's summary, unmount.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
scripts/build.sh

work=$(mktemp -d /tmp/furing-demo.XXXXXX)
img=$work/disk.img
mnt=$work/disk
log=$work/furing.log
pid=
cleanup() {
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	grep -q " $mnt " /proc/self/mounts && umount -l "$mnt"
	rm -rf "$work"
}
trap cleanup EXIT

truncate -s 64M "$img"
echo "== exporting $img at $mnt over io_uring"
build/furing export --writable --io-uring=on "$img" "$mnt" 2>"$log" &
pid=$!
for _ in $(seq 100); do
	grep -q " $mnt fuse.furing " /proc/self/mounts && break
	kill -0 "$pid" 2>/dev/null || { cat "$log"; exit 1; }
	sleep 0.1
done
sed 's/^/   /' "$log"

echo "== writing 16 MiB of random data at 1 MiB offset through the mount"
head -c 16M /dev/urandom >"$work/data"
dd if="$work/data" of="$mnt" bs=1M seek=1 conv=notrunc,fsync status=none
echo "== reading it back through the mount and from the image"
cmp <(dd if="$mnt" bs=1M skip=1 count=16 status=none) "$work/data"
cmp <(dd if="$img" bs=1M skip=1 count=16 status=none) "$work/data"
echo "   identical"
echo "== fio: 4k random writes at iodepth 32, verified with crc32c"
fio --name=demo --filename="$mnt" --ioengine=libaio --direct=1 --iodepth=32 --rw=randwrite --bs=4k \
	--size=32M --verify=crc32c --do_verify=1 --verify_state_save=0 --output-format=terse --terse-version=3 |
	awk -F';' '{printf "   write %s IOPS, verify read %s IOPS, errors %s\n", $49, $8, $5}'
echo "== stopping (SIGTERM): the daemon unmounts and prints its summary"
kill -TERM "$pid"
wait "$pid"
pid=
grep -E "summary" "$log" | sed 's/^/   /'
grep -q " $mnt " /proc/self/mounts && { echo "mount left behind"; exit 1; }
echo "== done: unmounted"
