# shellcheck shell=bash
# bench/run_daemons.sh - the daemons bench/run.sh measures: how each target's
# server is started (qemu-storage-daemon 7.2 and 11, furing export in its
# variants, libfuse's passthrough_hp), checked, stopped and accounted for.
# Sourced by run.sh after its setup (the functions read its globals: TARGETS,
# OUT, WORK, FURING, LIBFUSE_HP, START_TIMEOUT...).
QEMU11_IOTHREADS=${BENCH_QEMU11_IOTHREADS:-2}
qemu_cmd() {  # qemu_cmd TARGET IMAGE MNT AIO
  local t=$1 n=0 i it=() exp
  case $t in
    qemu) echo qemu-storage-daemon ;;
    qemu11) n=$QEMU11_IOTHREADS ;;
    qemu11-it*) n=${t#qemu11-it} ;;
  esac
  # QEMU 11's FUSE export takes a list of iothreads and spreads requests
  # over them round-robin (iothread.0=..., iothread.1=...).
  exp="type=fuse,id=exp0,node-name=fmt0,mountpoint=$3,writable=on"
  for ((i = 0; i < n; i++)); do it+=(--object "iothread,id=iot$i"); exp+=",iothread.$i=iot$i"; done
  ((n == 0)) || echo "$SCRIPT_DIR/sid-root.sh" exec /usr/bin/qemu-storage-daemon "${it[@]}"
  echo --blockdev "node-name=file0,driver=file,filename=$2,aio=$4,cache.direct=on" \
    --blockdev node-name=fmt0,driver=raw,file=file0 \
    --export "$exp"
}
furing_args() {  # furing_args TARGET
  case $1 in
    furing-legacy)    echo --io-uring=off --writable ;;
    furing-uring)     echo --io-uring=on --writable ;;
    furing-uring-pin) echo --io-uring=on --writable --pin ;;
    furing-uring-float) echo --io-uring=on --writable --pin=off ;;
    furing-legacy-bd) echo --io-uring=off --writable --backend-direct ;;
    furing-uring-bd)  echo --io-uring=on --writable --backend-direct ;;
    furing-uring-nopoll) echo --io-uring=on --writable --busy-poll=0 ;;
    # read-only: kernel passthrough serves the reads; "on" refuses to start without it
    furing-uring-kpt) echo --io-uring=on --kernel-passthrough=on ;;
    furing-uring-kpt-rw) echo --io-uring=on --writable --kernel-passthrough=on ;;
    furing-uring-bp*) echo --io-uring=on --writable "--busy-poll=${1#furing-uring-bp}" ;;
  esac
}
# passthrough_hp: --foreground keeps it our child (it logs to stderr, not syslog);
# FUSE_INIT_STATUS=1 makes libfuse log what FUSE_INIT negotiated ("FUSE_INIT:
# io_uring=on", "FUSE_INIT: FUSE_CAP_PASSTHROUGH"), which stop_daemon checks.
libfuse_args() {  # libfuse_args TARGET
  case $1 in
    libfuse-legacy)      echo --foreground --nopassthrough ;;
    libfuse-uring)       echo --foreground --nopassthrough -o io_uring ;;
    libfuse-passthrough) echo --foreground ;;
  esac
}
ring_cqes() {   # completions reaped so far on all io_uring instances of PID (sum of CqHead)
  local fd n=0 c
  for fd in /proc/"$1"/fd/*; do
    [[ $(readlink "$fd" 2>/dev/null) == 'anon_inode:[io_uring]' ]] || continue
    c=$(awk '$1 == "CqHead:" { print $2 }' "/proc/$1/fdinfo/${fd##*/}" 2>/dev/null) || continue
    n=$((n + ${c:-0}))
  done
  echo "$n"
}

ensure_enable_uring() {   # another user of the machine may have switched it off
  local v
  v=$(cat "$ENABLE_URING_PARAM" 2>/dev/null || echo '?')
  [[ $v == Y ]] && return 0
  echo Y >"$ENABLE_URING_PARAM" || die "cannot write Y to $ENABLE_URING_PARAM"
  say "  $ENABLE_URING_PARAM was $v again (changed by someone else?), set it back to Y"
}

# start_daemon TARGET IMAGE TAG -> DPID/DMNT/DLOG set; dies if not up in 10 s
start_daemon() {
  local t=$1 img=$2 tag=$3
  local mnt=$WORK/$tag-$t.mnt log=$OUT/$tag-$t.log fstype pid i
  local -a cmd
  case $t in
    qemu|qemu11*)
      rm -f "$mnt"
      touch "$mnt"   # qemu needs an existing regular file
      # shellcheck disable=SC2207
      cmd=($(qemu_cmd "$t" "$img" "$mnt" "${QEMU_AIO[$t]}"))
      fstype=fuse ;;
    furing-*)
      rm -f "$mnt"
      if [[ $t == furing-uring* ]]; then ensure_enable_uring; fi
      # shellcheck disable=SC2206,SC2207
      cmd=("$FURING" export $(furing_args "$t") ${FURING_EXTRA_ARGS:-} "$img" "$mnt")
      fstype=fuse.furing ;;
    libfuse-*)
      # passthrough_hp mirrors a directory: the image's own directory (which
      # holds nothing else) appears under the mountpoint directory
      mkdir -p "$mnt"
      if [[ $t == libfuse-uring ]]; then ensure_enable_uring; fi
      # shellcheck disable=SC2206,SC2207
      cmd=(env "LD_LIBRARY_PATH=$LIBFUSE_DIR/lib" FUSE_INIT_STATUS=1
           "$LIBFUSE_HP" $(libfuse_args "$t") ${BENCH_LIBFUSE_ARGS:-} "$(dirname "$img")" "$mnt")
      fstype=fuse ;;
  esac
  printf '%s\n' "${cmd[*]}" >>"$log.cmd"
  setsid "${cmd[@]}" </dev/null >>"$log" 2>&1 &
  pid=$!
  DPID[$t]=$pid; DMNT[$t]=$mnt; DLOG[$t]=$log; DFST[$t]=$fstype
  for ((i = 0; i < START_TIMEOUT * 10; i++)); do
    [[ $(mount_fstype "$mnt") == "$fstype" ]] && break
    if ! proc_alive "$pid"; then
      say "---- $log:"; tail -n 20 "$log"
      die "$t exited before mounting $mnt (command: ${cmd[*]})"
    fi
    sleep 0.1
  done
  if [[ $(mount_fstype "$mnt") != "$fstype" ]]; then
    say "---- $log:"; tail -n 20 "$log"
    die "$t did not come up within ${START_TIMEOUT} s ($mnt with fstype $fstype not in /proc/self/mountinfo; command: ${cmd[*]})"
  fi
  say "  $t up: pid $pid, $mnt"
}

daemon_file() {   # daemon_file TARGET IMAGE: what fio opens for a daemon target (FILE: read by run.sh)
  # shellcheck disable=SC2034
  case $1 in
    libfuse-*) FILE[$1]=${DMNT[$1]}/${2##*/} ;;   # the image inside the mirrored directory
    *)         FILE[$1]=${DMNT[$1]} ;;
  esac
}

daemon_ok() {   # daemon of TARGET alive and its mount in place
  proc_alive "${DPID[$1]}" && [[ $(mount_fstype "${DMNT[$1]}") == "${DFST[$1]}" ]]
}

# stop_daemon TARGET TAG [quiet]: records VmHWM + furing summary into daemons.tsv
stop_daemon() {
  local t=$1 tag=$2 pid=${DPID[$1]} hwm="-" summary="-" quiet=${3:-} cqes="?" pt
  if proc_alive "$pid"; then
    hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo -)
    if [[ $t == libfuse-* ]]; then cqes=$(ring_cqes "$pid"); fi
  elif [[ -z $quiet ]]; then
    say "WARNING: $t (pid $pid) died during the run; see ${DLOG[$t]}"
    note "$tag/$t: daemon died during the run (see $(basename "${DLOG[$t]}"))"
  fi
  stop_pid "$pid"
  unset "DPID[$t]"
  force_umount "${DMNT[$t]}"
  unset "DMNT[$t]"
  if [[ $t == furing-* ]]; then
    summary=$(grep 'furing: summary' "${DLOG[$t]}" | tail -n 1 || true)
    if [[ -n $summary ]]; then
      printf '%s\n' "$summary" >>"$OUT/$tag-$t.summary"
      if [[ $t == furing-uring* && $summary =~ \ ring=0( |$) ]]; then
        note "$tag/$t: furing summary says ring=0 - no request went over io_uring"
      elif [[ $t == furing-legacy* && ! $summary =~ \ ring=0( |$) ]]; then
        note "$tag/$t: furing summary has ring!=0 although --io-uring=off"
      fi
      summary=${summary#furing: summary }
    else
      note "$tag/$t: no 'furing: summary' line in $(basename "${DLOG[$t]}")"
      summary="-"
    fi
  elif [[ $t == libfuse-* ]]; then
    # what FUSE_INIT negotiated (FUSE_INIT_STATUS=1), and whether requests used the ring
    summary=$(grep -o 'FUSE_INIT: io_uring=[^ ]*' "${DLOG[$t]}" | tail -n 1 || true)
    summary=${summary#FUSE_INIT: }
    pt=no   # passthrough_hp negotiates FUSE_CAP_PASSTHROUGH even with --nopassthrough
    if [[ $t == libfuse-passthrough ]] && grep -q 'FUSE_INIT: FUSE_CAP_PASSTHROUGH' "${DLOG[$t]}" &&
       ! grep -q 'disabling rw passthrough' "${DLOG[$t]}"; then pt=yes; fi
    summary="${summary:-io_uring=?} ring_cqes=$cqes passthrough=$pt"
    case $t in
      libfuse-uring)
        [[ $summary == *io_uring=on* ]] || note "$tag/$t: libfuse did not report 'FUSE_INIT: io_uring=on' (${summary%% *}; see $(basename "${DLOG[$t]}"))"
        [[ $cqes != 0 ]] || note "$tag/$t: ring_cqes=0 - no request went over io_uring" ;;
      libfuse-legacy)
        [[ $cqes == 0 || $cqes == '?' ]] || note "$tag/$t: ring_cqes=$cqes although io_uring was not asked for" ;;
      libfuse-passthrough)
        [[ $pt == yes ]] || note "$tag/$t: kernel passthrough not in use (no FUSE_CAP_PASSTHROUGH or 'disabling rw passthrough' in $(basename "${DLOG[$t]}"))" ;;
    esac
  fi
  printf '%s\t%s\t%s\t%s\t%s\n' "$tag" "$t" "${hwm:--}" "${summary:--}" "${IDLE_US_S[$t]:--}" >>"$OUT/daemons.tsv"
  unset "IDLE_US_S[$t]"
}

declare -A QEMU_AIO=()
qemu_version() {  # qemu_version TARGET: "qemu-storage-daemon 11.1.3"
  local v
  if [[ $1 == qemu ]]; then v=$(qemu-storage-daemon --version | head -1); else v=$("$SCRIPT_DIR/sid-root.sh" exec /usr/bin/qemu-storage-daemon --version | head -1); fi
  echo "qemu-storage-daemon $(awk '{print $3}' <<<"$v")"
}
qemu_threads() {  # qemu_threads TARGET: ", N iothreads" for QEMU 11's targets
  case $1 in
    qemu11) echo ", $QEMU11_IOTHREADS iothreads" ;;
    qemu11-it*) echo ", ${1#qemu11-it} iothreads" ;;
  esac
}
probe_qemu() {   # probe_qemu TARGET: check the fuse export and aio=io_uring on a small image
  local t=$1 img=$WORK/probe.img mnt=$WORK/probe.mnt aio pid i ok
  truncate -s 16M "$img"
  for aio in io_uring native; do
    touch "$mnt"
    # shellcheck disable=SC2046
    setsid $(qemu_cmd "$t" "$img" "$mnt" "$aio") </dev/null >"$WORK/probe.log" 2>&1 &
    pid=$!
    ok=0
    for ((i = 0; i < START_TIMEOUT * 10; i++)); do
      [[ $(mount_fstype "$mnt") == fuse ]] && { ok=1; break; }
      proc_alive "$pid" || break
      sleep 0.1
    done
    stop_pid "$pid"
    force_umount "$mnt"
    if ((ok)); then
      QEMU_AIO[$t]=$aio
      [[ $aio == io_uring ]] || note "$t: aio=io_uring not supported here, using aio=native ($(head -c 200 "$WORK/probe.log" | tr '\n' ' '))"
      rm -f "$img" "$mnt"
      return 0
    fi
    if ! grep -qiE 'io_uring|aio' "$WORK/probe.log"; then
      break
    fi
  done
  cp "$WORK/probe.log" "$OUT/$t-probe.log"
  note "$t: qemu-storage-daemon's FUSE export does not work here: $(head -c 300 "$WORK/probe.log" | tr '\n' ' '); $t target skipped"
  rm -f "$img" "$mnt"
  return 1
}
