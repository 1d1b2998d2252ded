# common.sh — helpers the bench scripts share; `source` it after setting what they read:
#   N     the command prefix that applies SCHED (e.g. `python3 .../schedexec.py other`)
#   LOGD  where start_bg writes each process's output (<name>.out); may change between parts
# Every process started with start_bg is stopped by PID on exit (after `trap cleanup EXIT`).

# Installs the Debian packages whose binaries are missing: ensure_pkgs pkg:binary ...
ensure_pkgs() {
  local missing=() pb
  for pb in "$@"; do command -v "${pb#*:}" >/dev/null || missing+=("${pb%%:*}"); done
  [[ ${#missing[@]} == 0 ]] && return 0
  echo "installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  local apt=(apt-get -q -o DPkg::Lock::Timeout=300)   # others may be running apt too
  if ! "${apt[@]}" install -y "${missing[@]}" >/dev/null; then
    "${apt[@]}" update >/dev/null && "${apt[@]}" install -y "${missing[@]}" >/dev/null
  fi
}

PIDS=()
declare -A PIDOF
# Starts a process pinned to a core, in the background: start_bg name core cmd...
start_bg() {
  local name=$1 core=$2; shift 2
  taskset -c "$core" "${N[@]}" "$@" > "$LOGD/$name.out" 2>&1 &
  PIDS+=("$!"); PIDOF[$name]=$!
}
# still our child? (a PID whose process has exited and been reaped may belong to someone else now)
mine() { [[ -n $1 && -r /proc/$1/stat ]] && [[ $(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f2) == "$$" ]]; }
# Stops every process start_bg started: TERM, up to 3 s, then KILL.
cleanup() {
  local pid alive
  for pid in "${PIDS[@]:-}"; do mine "$pid" && { kill -TERM "$pid" 2>/dev/null || true; }; done
  for _ in $(seq 1 30); do
    alive=0
    for pid in "${PIDS[@]:-}"; do mine "$pid" && alive=1; done
    [[ $alive == 0 ]] && break
    sleep 0.1
  done
  for pid in "${PIDS[@]:-}"; do mine "$pid" && { kill -KILL "$pid" 2>/dev/null || true; }; done
  wait 2>/dev/null || true
}

# The arguments after the first, rotated left by it: rotate k a b c ... (round-robin orders)
rotate() { local k=$1; shift; local a=("$@") n=$# i; for ((i = 0; i < n; i++)); do echo -n "${a[(i + k) % n]} "; done; }
