# shellcheck shell=bash
# Helpers shared by every scripts/services.d/<svc>.sh. Sourced, never executed.
#
# Contract (each <svc>.sh relies on it):
#   log MSG...                          progress line on stderr
#   warn MSG...                         warning line on stderr
#   die MSG...                          "weft: MSG" on stderr, exit 1
#   wait_until TIMEOUT_S DESC CMD...    poll CMD every 0.5 s; 0 when it succeeds, 1 (with a message) on timeout
#   start_bg NAME LOGFILE CMD...        start CMD detached (setsid, stdin /dev/null, output to LOGFILE),
#                                       write $WEFT_RUN_DIR/NAME.pid
#   pid_alive NAME                      0 if the process in NAME.pid is still the one we started
#   wait_started NAME LOGFILE TIMEOUT DESC CMD...
#                                       like wait_until, but gives up at once if NAME's process died;
#                                       on failure calls fail_with_log
#   stop_pid NAME [SIGNAL] [TIMEOUT_S]  signal only the PID in NAME.pid, wait, then SIGKILL
#   fail_with_log NAME LOGFILE [MSG]    message + last 40 lines of LOGFILE, exit 1
#   ensure_apt PKG...                   install missing Debian packages (apt-get update once, -y, non-interactive)
#   go_install_pinned MODULE@VERSION BINARY [go install flags...]
#                                       GOBIN=$WEFT_CACHE_DIR/bin; skipped when BINARY and its version stamp exist
#   port_open PORT                      0 if something accepts TCP connections on 127.0.0.1:PORT
#   new_secret                          48 hex characters from /dev/urandom
#   secret_file PATH                    print the secret stored in PATH, creating it (mode 600) on first use
#   as_service_user CMD...              run CMD as the unprivileged OS user a service runs as, when root

: "${WEFT_ROOT:?WEFT_ROOT must be set by the caller}"
HOME="${HOME:-$(getent passwd "$(id -un)" | cut -d: -f6)}"
export WEFT_CACHE_DIR="${WEFT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/weft}"
export WEFT_RUN_DIR="${WEFT_RUN_DIR:-$WEFT_ROOT/.services}"
WEFT_LOG_DIR="$WEFT_RUN_DIR/logs"
WEFT_BIN_DIR="$WEFT_CACHE_DIR/bin"
export DEBIAN_FRONTEND=noninteractive
# Upper bounds for the slow steps of a cold `up` (seconds); measured cold times are in docs/services.md.
WEFT_BUILD_TIMEOUT="${WEFT_BUILD_TIMEOUT:-2700}"     # one go install
WEFT_INSTALL_TIMEOUT="${WEFT_INSTALL_TIMEOUT:-1200}" # one apt-get or pip run

log()  { printf 'weft: %s\n' "$*" >&2; }
warn() { printf 'weft: warning: %s\n' "$*" >&2; }
die()  { printf 'weft: error: %s\n' "$*" >&2; exit 1; }

# Monotonic-enough seconds with sub-second resolution for timings.
now_s() { date +%s.%N; }
elapsed_since() { awk -v a="$1" -v b="$(now_s)" 'BEGIN { printf "%.1f", b - a }'; }

wait_until() {
  local timeout=$1 desc=$2; shift 2
  local deadline=$((SECONDS + timeout))
  while true; do
    if "$@" >/dev/null 2>&1; then return 0; fi
    if ((SECONDS >= deadline)); then
      printf 'weft: error: timed out after %ss waiting for %s\n' "$timeout" "$desc" >&2
      return 1
    fi
    sleep 0.5
  done
}

_pidfile() { printf '%s/%s.pid' "$WEFT_RUN_DIR" "$1"; }

# Field 22 of /proc/PID/stat: start time in clock ticks since boot; guards against PID reuse.
# Fails for a process that is gone or a zombie (an unreaped child is not alive).
_proc_start() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }             # drop "pid (comm) ", comm may contain spaces
  # shellcheck disable=SC2086
  set -- $stat                  # fields 3.. of stat are now $1..
  [[ "$1" != Z && "$1" != X ]] || return 1
  printf '%s' "${20}"
}

start_bg() {
  local name=$1 logfile=$2; shift 2
  mkdir -p "$WEFT_RUN_DIR" "$(dirname "$logfile")"
  set +m  # no job control: the child must not become a group leader, or setsid would fork and $! be wrong
  # setsid: own session, so a Ctrl-C or the end of the calling shell does not reach the service.
  # stdin from /dev/null and output to the log: no pipe of the caller (CI, ctest) is held open.
  # Every other inherited descriptor is closed too (our lock on fd 9, a CI runner's pipes), so the
  # service holds nothing open that its caller waits on.
  (
    for fd in /proc/$BASHPID/fd/*; do
      fd=${fd##*/}
      if ((fd > 2)); then eval "exec $fd>&-" 2>/dev/null || true; fi
    done
    exec setsid "$@"
  ) </dev/null >>"$logfile" 2>&1 &
  local pid=$!
  printf '%s\n' "$pid" >"$(_pidfile "$name")"
  # The start time is the fork's, unchanged by the execs that follow: it identifies this process.
  printf '%s\n' "$(_proc_start "$pid" || true)" >"$(_pidfile "$name").start"
}

pid_alive() {
  local pf pid want have
  pf=$(_pidfile "$1")
  [[ -s "$pf" ]] || return 1
  pid=$(<"$pf")
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  have=$(_proc_start "$pid") || return 1
  if [[ -s "$pf.start" ]]; then
    want=$(<"$pf.start")
    [[ "$want" == "$have" ]] || return 1
  fi
  return 0
}

wait_started() {
  local name=$1 logfile=$2 timeout=$3 desc=$4; shift 4
  local deadline=$((SECONDS + timeout))
  while true; do
    if "$@" >/dev/null 2>&1; then return 0; fi
    if ! pid_alive "$name"; then
      fail_with_log "$name" "$logfile" "$name exited while starting (waited for $desc)"
    fi
    if ((SECONDS >= deadline)); then
      fail_with_log "$name" "$logfile" "$name did not answer within ${timeout}s (waited for $desc)"
    fi
    sleep 0.5
  done
}

stop_pid() {
  local name=$1 sig=${2:-TERM} timeout=${3:-30}
  local pf pid
  pf=$(_pidfile "$name")
  if [[ ! -e "$pf" ]]; then return 0; fi
  if ! pid_alive "$name"; then
    rm -f "$pf" "$pf.start"
    return 0
  fi
  pid=$(<"$pf")
  log "stopping $name (pid $pid, SIG$sig)"
  kill "-$sig" "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + timeout))
  while pid_alive "$name"; do
    if ((SECONDS >= deadline)); then
      warn "$name (pid $pid) did not stop within ${timeout}s after SIG$sig; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.5
      break
    fi
    sleep 0.2
  done
  rm -f "$pf" "$pf.start"
}

fail_with_log() {
  local name=$1 logfile=$2 msg=${3:-"$1 failed to start"}
  {
    printf 'weft: error: %s\n' "$msg"
    if [[ -s "$logfile" ]]; then
      printf 'weft: last 40 lines of %s:\n' "$logfile"
      tail -n 40 "$logfile" | sed 's/^/    /'
    else
      printf 'weft: (log %s is empty or missing)\n' "$logfile"
    fi
  } >&2
  exit 1
}

_apt_updated=0
ensure_apt() {
  local missing=() p
  for p in "$@"; do
    if [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != "install ok installed" ]]; then
      missing+=("$p")
    fi
  done
  ((${#missing[@]})) || return 0
  if ((EUID != 0)); then
    die "missing Debian packages: ${missing[*]} — install them with: sudo apt-get install -y ${missing[*]}"
  fi
  log "installing Debian packages: ${missing[*]}"
  # Package maintainer scripts must not start the system-wide instances (redis on 6379, postgres on
  # 5432): a policy-rc.d that denies every start, only for the time of our install.
  local policy=/usr/sbin/policy-rc.d ours=0
  if [[ ! -e "$policy" ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && ours=1
  fi
  local rc=0 aptlog="$WEFT_LOG_DIR/apt.log"
  mkdir -p "$WEFT_LOG_DIR"
  if ((!_apt_updated)); then
    timeout "$WEFT_INSTALL_TIMEOUT" apt-get update -q >>"$aptlog" 2>&1 || rc=$?
    _apt_updated=1
  fi
  if ((rc == 0)); then
    timeout "$WEFT_INSTALL_TIMEOUT" apt-get install -y -q --no-install-recommends \
      -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
      "${missing[@]}" >>"$aptlog" 2>&1 || rc=$?
  fi
  ((ours)) && rm -f "$policy"
  ((rc == 0)) || fail_with_log apt "$aptlog" "apt-get could not install: ${missing[*]}"
}

go_install_pinned() {
  local modver=$1 bin=$2; shift 2
  local stamp="$WEFT_BIN_DIR/$bin.version"
  local want="$modver${*:+ $*}"
  if [[ -x "$WEFT_BIN_DIR/$bin" && -f "$stamp" && "$(<"$stamp")" == "$want" ]]; then
    return 0
  fi
  command -v go >/dev/null || die "Go is not installed (needed to build $bin from $modver)"
  mkdir -p "$WEFT_BIN_DIR" "$WEFT_LOG_DIR"
  local buildlog="$WEFT_LOG_DIR/build-$bin.log" t0
  t0=$(now_s)
  log "building $bin ($modver) with go install — minutes on a cold Go cache; log: $buildlog"
  rm -f "$stamp"
  if ! GOBIN="$WEFT_BIN_DIR" GOFLAGS="${GOFLAGS:--buildvcs=false}" \
      timeout "$WEFT_BUILD_TIMEOUT" go install "$@" "$modver" >"$buildlog" 2>&1; then
    fail_with_log "$bin" "$buildlog" "go install $modver failed (or took over ${WEFT_BUILD_TIMEOUT}s)"
  fi
  [[ -x "$WEFT_BIN_DIR/$bin" ]] || fail_with_log "$bin" "$buildlog" "go install $modver produced no $WEFT_BIN_DIR/$bin"
  printf '%s' "$want" >"$stamp"
  log "built $bin in $(elapsed_since "$t0")s"
}

port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

new_secret() {
  od -An -N24 -tx1 /dev/urandom | tr -d ' \n'
}

secret_file() {
  local path=$1
  if [[ ! -s "$path" ]]; then
    mkdir -p "$(dirname "$path")"
    (umask 077 && new_secret >"$path.tmp" && mv "$path.tmp" "$path")
  fi
  cat "$path"
}

# Services that refuse to run as root (postgres) run as this user when we are root.
service_user() {
  if ((EUID == 0)); then printf 'postgres'; else id -un; fi
}

as_service_user() {
  if ((EUID == 0)); then
    setpriv --reuid="$(service_user)" --regid="$(id -g "$(service_user)")" --init-groups -- "$@"
  else
    "$@"
  fi
}
