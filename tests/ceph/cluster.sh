#!/usr/bin/env bash
# A one-node Ceph cluster for the RBD tests and bench, from Debian's
# packages (ceph-mon, ceph-mgr, ceph-osd): one monitor, one manager, one
# bluestore OSD on a sparse file, pool size 1, cephx on, everything (data,
# sockets, logs, keyrings) under DIR and on 127.0.0.1 only.
#
#   tests/ceph/cluster.sh start DIR   up in about 15 s; prints the env lines
#   tests/ceph/cluster.sh env DIR     CEPH_CONF=DIR/ceph.conf and the pool
#   tests/ceph/cluster.sh stop DIR    kills the daemons, removes DIR
#
# The pool "rbd" is created and ready for I/O when start returns; clients
# use DIR/ceph.conf, which names the admin keyring (DIR/keyring).
set -euo pipefail

usage() {
	echo "usage: $0 start|stop|env DIR" >&2
	exit 2
}
[ $# -eq 2 ] || usage
cmd=$1
dir=$2
conf=$dir/ceph.conf

die() {
	echo "cluster.sh: $*" >&2
	exit 1
}

# A TCP port nothing listens on now (the monitor's).
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

write_conf() {
	local fsid=$1 port=$2
	cat >"$conf" <<EOF
[global]
fsid = $fsid
mon host = [v2:127.0.0.1:$port]
mon initial members = a
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
run dir = $dir/run
admin socket = $dir/run/\$name.asok
pid file = $dir/run/\$name.pid
log file = $dir/log/\$name.log
crash dir = $dir/crash
public addr = 127.0.0.1
ms bind msgr1 = false
ms bind ipv6 = false
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
osd crush chooseleaf type = 0
# The OSD is not on a real disk: no point in the safety waits of one.
mon osd report timeout = 900
auth allow insecure global id reclaim = false
mgr initial modules =

[client]
keyring = $dir/keyring

[mon]
mon data = $dir/mon.\$id

[mgr]
mgr data = $dir/mgr.\$id
keyring = $dir/mgr.\$id/keyring

[osd]
osd data = $dir/osd.\$id
keyring = $dir/osd.\$id/keyring
osd objectstore = bluestore
# bluestore makes its block file itself (sparse) at --mkfs.
bluestore block create = true
bluestore block size = 8589934592
bluestore fsck on mkfs = false
bluestore fsck on mount = false
osd memory target = 1073741824
osd max object name len = 256
osd crush update on start = true
EOF
}

start() {
	[ ! -e "$dir" ] || [ -z "$(ls -A "$dir")" ] || die "$dir exists and is not empty"
	for b in ceph-mon ceph-mgr ceph-osd ceph ceph-authtool monmaptool uuidgen; do
		command -v "$b" >/dev/null || die "$b is missing (scripts/setup.sh installs ceph-mon ceph-mgr ceph-osd ceph-common)"
	done
	mkdir -p "$dir"/{run,log,crash,mon.a,mgr.x,osd.0}
	local fsid port
	fsid=$(uuidgen)
	port=$(free_port)
	write_conf "$fsid" "$port"
	local c=(-c "$conf")

	ceph-authtool --create-keyring "$dir/mon.keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
	ceph-authtool --create-keyring "$dir/keyring" --gen-key -n client.admin \
		--cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' --cap mds 'allow *' >/dev/null
	ceph-authtool "$dir/mon.keyring" --import-keyring "$dir/keyring" >/dev/null
	monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$port]" "$dir/monmap" >/dev/null
	ceph-mon "${c[@]}" --mkfs -i a --monmap "$dir/monmap" --keyring "$dir/mon.keyring" 2>>"$dir/log/setup.log"
	ceph-mon "${c[@]}" -i a 2>>"$dir/log/setup.log" || die "ceph-mon did not start (see $dir/log)"

	# Every client command is bounded: a monitor that does not answer
	# fails the start instead of hanging it.
	local cc=("${c[@]}" --connect-timeout 30)
	ceph "${cc[@]}" auth get-or-create mgr.x mon 'allow profile mgr' osd 'allow *' mds 'allow *' \
		-o "$dir/mgr.x/keyring" 2>>"$dir/log/setup.log" || die "the monitor does not answer (see $dir/log)"
	ceph-mgr "${c[@]}" -i x 2>>"$dir/log/setup.log" || die "ceph-mgr did not start (see $dir/log)"

	local uuid secret id
	uuid=$(uuidgen)
	secret=$(ceph-authtool --gen-print-key)
	id=$(echo "{\"cephx_secret\": \"$secret\"}" | ceph "${cc[@]}" osd new "$uuid" -i - 2>>"$dir/log/setup.log")
	[ "$id" = 0 ] || die "ceph osd new gave id '$id', not 0"
	ceph-authtool --create-keyring "$dir/osd.0/keyring" --name osd.0 --add-key "$secret" >/dev/null
	ceph-osd "${c[@]}" -i 0 --mkfs --osd-uuid "$uuid" >>"$dir/log/setup.log" 2>&1 || die "ceph-osd --mkfs failed (see $dir/log)"
	ceph-osd "${c[@]}" -i 0 2>>"$dir/log/setup.log" || die "ceph-osd did not start (see $dir/log)"

	ceph "${cc[@]}" osd pool create rbd 8 8 >/dev/null 2>>"$dir/log/setup.log"
	ceph "${cc[@]}" osd pool application enable rbd rbd >/dev/null 2>>"$dir/log/setup.log"
	# Ready when an object can be written: the OSD is up and the pool's
	# placement groups are active.
	local deadline=$((SECONDS + 120))
	until timeout 10 rados "${c[@]}" -p rbd put .ready "$conf" 2>/dev/null; do
		[ $SECONDS -lt $deadline ] || die "the pool is not writable after 120 s (see $dir/log)"
		sleep 0.5
	done
	rados "${c[@]}" -p rbd rm .ready
	env_lines
}

env_lines() {
	echo "CEPH_CONF=$conf"
	echo "CEPH_POOL=rbd"
}

# The daemons' pids, from their pid files.
pids() {
	local f
	for f in "$dir"/run/*.pid; do
		[ -f "$f" ] && cat "$f"
	done
	return 0
}

stop() {
	[ -d "$dir" ] || return 0
	local p ps=()
	for p in $(pids); do
		ps+=("$p")
		kill -CONT "$p" 2>/dev/null || true # a test may have stopped it
		kill -TERM "$p" 2>/dev/null || true
	done
	local deadline=$((SECONDS + 10))
	for p in "${ps[@]}"; do
		while kill -0 "$p" 2>/dev/null && [ $SECONDS -lt $deadline ]; do
			sleep 0.1
		done
		kill -KILL "$p" 2>/dev/null || true
	done
	rm -rf "$dir"
}

case $cmd in
start) start ;;
stop) stop ;;
env) env_lines ;;
*) usage ;;
esac
