# shellcheck shell=bash
# bench/lib.sh - what the bench scripts share: messages, process and mount
# clean-up, Debian packages. Sourced by run.sh, passthrough.sh and nbd.sh,
# which set OUT (the results directory, may be empty before it exists).

say()  { printf '%s\n' "$*"; }
# A note goes to the terminal and to the run's notes.txt once OUT exists.
note() {
  printf 'NOTE: %s\n' "$*"
  if [[ -n ${OUT:-} && -d $OUT ]]; then printf 'NOTE: %s\n' "$*" >>"$OUT/notes.txt"; fi
}
die()  { printf 'ERROR: %s\n' "$*" >&2; exit 1; }
contains() { local x=$1; shift; local y; for y; do [[ $x == "$y" ]] && return 0; done; return 1; }

remove_target() {   # remove_target NAME...: drop exact matches from TARGETS
  local -a keep=()
  local t
  for t in "${TARGETS[@]}"; do contains "$t" "$@" || keep+=("$t"); done
  TARGETS=("${keep[@]}")
}

pick_names() {   # pick_names ARG ALL...: the names (before ':') the comma list ARG chose, all when empty; checked
  local arg=$1; shift
  local -a all=("$@") out=()
  if [[ -z $arg ]]; then printf '%s\n' "${all[@]%%:*}"; return; fi
  local x
  for x in ${arg//,/ }; do
    contains "$x" "${all[@]%%:*}" || die "unknown name '$x' (choose from: ${all[*]%%:*})"
    out+=("$x")
  done
  printf '%s\n' "${out[@]}"
}

pick_into() {   # pick_into VAR ARG ALL...: VAR=(pick_names ARG ALL...); an unknown name ends the script
  local -n into=$1
  local picked
  picked=$(pick_names "${@:2}") || exit 1   # not mapfile < <(...): a die in there would not stop the script
  mapfile -t into <<<"$picked"
}

size_mib() {   # size_mib SIZE (e.g. 1G, 256M, 2GiB): whole MiB, >= 16, or die
  local mib
  case $1 in
    *[Gg]|*[Gg]i[Bb]) mib=$(( ${1%%[Gg]*} * 1024 )) ;;
    *[Mm]|*[Mm]i[Bb]) mib=${1%%[Mm]*} ;;
    *) die "--size wants e.g. 1G or 256M, got '$1'" ;;
  esac
  [[ $mib =~ ^[0-9]+$ && $mib -ge 16 ]] || die "--size too small or malformed: $1"
  echo "$mib"
}

mount_fstype() {   # the fstype mounted at $1 (empty if none)
  awk -v m="$1" '$5 == m { for (i = 7; i <= NF; i++) if ($i == "-") { print $(i + 1); exit } }' /proc/self/mountinfo
}

proc_alive() {     # running and not a zombie
  local st
  st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  st=${st##*) }
  [[ ${st%% *} != Z ]]
}

stop_pid() {       # SIGTERM, wait up to 10 s, then SIGKILL; reap
  local pid=$1 i
  [[ -n $pid ]] || return 0
  proc_alive "$pid" || { wait "$pid" 2>/dev/null || true; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do proc_alive "$pid" || break; sleep 0.1; done
  if proc_alive "$pid"; then
    say "WARNING: pid $pid ignored SIGTERM for 10 s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.2
  fi
  wait "$pid" 2>/dev/null || true
}

# A mount a stopped daemon left behind: unmount it, lazily if it is busy
# (a FUSE mount whose daemon died answers nothing but a detach).
force_umount() {
  local m=$1 i
  for ((i = 0; i < 4; i++)); do
    [[ -n $(mount_fstype "$m") ]] || return 0
    ((i)) || say "WARNING: $m still mounted, unmounting"
    umount "$m" 2>/dev/null || fusermount3 -u -z "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    sleep 0.2
  done
}

APT_UPDATED=0
apt_install() {    # Debian packages, with one `apt-get update` if the first try fails
  say "installing Debian packages: $*"
  export DEBIAN_FRONTEND=noninteractive
  if apt-get install -y --no-install-recommends "$@" >>"${OUT:-/tmp}/apt.log" 2>&1; then return 0; fi
  ((!APT_UPDATED)) || return 1
  APT_UPDATED=1
  apt-get update >>"${OUT:-/tmp}/apt.log" 2>&1 || true
  apt-get install -y --no-install-recommends "$@" >>"${OUT:-/tmp}/apt.log" 2>&1
}

# The tree the sourcing script belongs to.
# shellcheck disable=SC2034 # (read by the scripts that source this file)
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

need_cmd() {   # need_cmd CMD PACKAGE -> 0 if the command is (now) available
  command -v "$1" >/dev/null 2>&1 && return 0
  command -v apt-get >/dev/null 2>&1 || return 1
  apt_install "$2" || true
  command -v "$1" >/dev/null 2>&1
}

# furing_binary: sets FURING to $FURING_BIN, or builds this tree with
# scripts/build.sh (installing what the build needs), so the numbers belong
# to the code beside them and a fresh clone needs no separate build step.
furing_binary() {
  if [[ -n ${FURING_BIN:-} ]]; then
    FURING=$FURING_BIN
  else
    local p
    for p in meson:meson ninja:ninja-build cc:gcc pkg-config:pkg-config; do
      need_cmd "${p%%:*}" "${p#*:}" || die "${p%%:*} missing and could not be installed (see $OUT/apt.log)"
    done
    for p in liburing:liburing-dev libnbd:libnbd-dev jansson:libjansson-dev; do
      pkg-config --exists "${p%%:*}" || apt_install "${p#*:}" ||
        die "${p#*:} missing and could not be installed (see $OUT/apt.log)"
    done
    say "building furing (scripts/build.sh)"
    "$REPO/scripts/build.sh" >"$OUT/build.log" 2>&1 || die "building furing failed (see $OUT/build.log)"
    FURING=$REPO/build/furing
  fi
  [[ -x $FURING ]] || die "furing binary $FURING not found or not executable"
}

# Settings the benches share (each BENCH_* variable overrides one).
# shellcheck disable=SC2034 # (read by the scripts that source this file)
{
ENABLE_URING_PARAM=/sys/module/fuse/parameters/enable_uring
START_TIMEOUT=10                             # seconds a daemon gets to show up mounted
TMPFS_DIR=${BENCH_TMPFS_DIR:-/dev/shm}       # the image or source in memory
DISK_DIR=${BENCH_DISK_DIR:-/var/tmp}         # the image or source on disk
# libfuse peer: a meson build directory of libfuse (bench/README.md says how to
# make one); the libfuse-* targets are skipped when passthrough_hp is not in it.
LIBFUSE_DIR=${BENCH_LIBFUSE_DIR:-/work/scratch/libfuse/build}
LIBFUSE_HP=$LIBFUSE_DIR/example/passthrough_hp
}

# parse_bench_options "$@": the options bench/run.sh, passthrough.sh and nbd.sh
# share (--quick, --runtime S, --size SIZE, --targets, --jobs, --repeat N,
# --out DIR, -h/--help), each as "--opt VALUE" or "--opt=VALUE", plus the
# script's own: before the call it names them in BENCH_VALUE_OPTS (option ->
# variable that gets the value) and BENCH_FLAG_OPTS (option -> variable set to
# 1). The script defines usage() and the defaults of RUNTIME, SIZE and REPEAT;
# --quick makes them 2 s and 256M unless given, and RUNTIME and REPEAT are
# checked here.
declare -A BENCH_VALUE_OPTS=() BENCH_FLAG_OPTS=()
parse_bench_options() {
  local opt val runtime_set=0 size_set=0
  local -A value=([--runtime]=RUNTIME [--size]=SIZE [--targets]=TARGETS_ARG [--jobs]=JOBS_ARG
                  [--repeat]=REPEAT [--out]=OUT)
  local -A flag=([--quick]=QUICK)
  for opt in "${!BENCH_VALUE_OPTS[@]}"; do value[$opt]=${BENCH_VALUE_OPTS[$opt]}; done
  for opt in "${!BENCH_FLAG_OPTS[@]}"; do flag[$opt]=${BENCH_FLAG_OPTS[$opt]}; done
  QUICK=0
  while (($#)); do
    opt=$1
    case $opt in
      -h|--help) usage; exit 0 ;;
      --*=*)
        val=${opt#*=} opt=${opt%%=*}
        [[ -n ${value[$opt]:-} ]] || { usage >&2; die "unknown option: $1"; } ;;
      *)
        if [[ -n ${flag[$opt]:-} ]]; then
          printf -v "${flag[$opt]}" 1; shift; continue
        fi
        [[ -n ${value[$opt]:-} ]] || { usage >&2; die "unknown option: $1"; }
        (($# >= 2)) || die "$opt wants a value"
        val=$2; shift ;;
    esac
    printf -v "${value[$opt]}" '%s' "$val"
    if [[ $opt == --runtime ]]; then runtime_set=1; elif [[ $opt == --size ]]; then size_set=1; fi
    shift
  done
  if ((QUICK)); then
    ((runtime_set)) || RUNTIME=2
    # shellcheck disable=SC2034 # (the calling script reads it)
    ((size_set)) || SIZE=256M
  fi
  [[ $RUNTIME =~ ^[0-9]+$ && $RUNTIME -ge 1 ]] || die "--runtime wants whole seconds >= 1, got '$RUNTIME'"
  [[ $REPEAT =~ ^[0-9]+$ && $REPEAT -ge 1 ]] || die "--repeat wants an integer >= 1, got '$REPEAT'"
}
