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

# Runs a private copy of the Sluice binary (others may rebuild target/release/sluice meanwhile):
# copies $SLUICE_BIN into $OUT_DIR, points SLUICE_BIN at the copy and records what it is in
# $OUT_DIR/sluice-version.txt ($SLUICE_BUILT_FROM if set, else $REPO's HEAD + changed files).
sluice_private_copy() {
  mkdir -p "$OUT_DIR"
  cp "$SLUICE_BIN" "$OUT_DIR/sluice"; SLUICE_BIN=$OUT_DIR/sluice
  { if [[ -n ${SLUICE_BUILT_FROM:-} ]]; then echo "sluice: $SLUICE_BUILT_FROM"
    else echo "sluice: $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null) + $(git -C "$REPO" status --short -- crates Cargo.toml Cargo.lock 2>/dev/null | wc -l) changed files in the work tree"; fi
    echo "sluice binary: $(sha256sum "$SLUICE_BIN" | cut -c1-16)"; } > "$OUT_DIR/sluice-version.txt"
  cat "$OUT_DIR/sluice-version.txt"
}

# Waits until URL answers 200 (curl ARGS...), at most SECONDS, while the process start_bg started
# as NAME is alive; otherwise prints the end of its log and fails: wait_ok NAME SECONDS URL [ARGS...]
wait_ok() {
  local name=$1 secs=$2 url=$3 end; shift 3
  end=$(( $(date +%s) + secs ))
  while (( $(date +%s) < end )); do
    [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$@" "$url" 2>/dev/null) == 200 ]] && return 0
    if [[ -n ${PIDOF[$name]:-} ]] && ! kill -0 "${PIDOF[$name]}" 2>/dev/null; then break; fi
    sleep 0.1
  done
  echo "$name never answered 200 on $url; end of its log:" >&2; tail -20 "$LOGD/$name.out" >&2; return 1
}
