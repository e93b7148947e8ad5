#!/usr/bin/env bash
# bench/proxy.sh — shoal's reverse proxy against nginx, HAProxy and Caddy, on this machine.
#
# Every proxy does the same job: round robin over the same 3 backends (bench/backend, a 64-byte
# JSON answer), upstream keep-alive on, access logs off. Each is driven in turn by wrk after a
# warm-up, with a direct run against one backend as the baseline, and the results are printed as
# a table (and as markdown at the end, to paste into docs/performance.md).
#
#   bash bench/proxy.sh                          # all: direct, shoal, nginx, haproxy, caddy
#   bash bench/proxy.sh --only shoal,nginx       # a subset
#   bash bench/proxy.sh --only shoal,shoal-traced # shoal traced (opt-in): OTLP on, TRACE_RATIO (0.01)
#                                                # sampled; the endpoint refuses, so nothing is exported
#   DURATION=30s CONNECTIONS=128 bash bench/proxy.sh
#
# Environment: DURATION (10s), CONNECTIONS (64), THREADS (2, wrk threads), WARMUP (3s), ROUNDS (1:
# with more, the whole sequence repeats in a rotating order and the median of each is shown).
# On a shared machine other people's processes skew the numbers: before each run the script waits
# up to QUIET_WAIT (30) seconds for them to use at most QUIET (0.10) cores, reports what they used
# during each run ("other CPU"), and with ROUNDS > 1 leaves disturbed rounds out of the median.
# Ports (127.0.0.1 only): backends 18091-18093, shoal 18080 (metrics 18081), nginx 18082,
# haproxy 18083, caddy 18084, shoal-traced 18085 (metrics 18086; OTLP endpoint 18087, kept closed). Missing tools are installed from Debian's packages (as root, or
# with sudo); a proxy that cannot be installed or started is skipped with a message.
# Nothing runs as a system service, no system config file is read or written, and every process
# the script starts is stopped when it exits, however it exits.
set -euo pipefail

usage() {
	sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'
}

ALL="direct shoal nginx haproxy caddy"
OPTIONAL="shoal-traced" # only with --only
ONLY=""
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
WARMUP=${WARMUP:-3s}
ROUNDS=${ROUNDS:-1}
QUIET=${QUIET:-0.10}
QUIET_WAIT=${QUIET_WAIT:-30}

while [ $# -gt 0 ]; do
	case "$1" in
	--only) ONLY=${2:?--only needs a list, e.g. --only shoal,nginx}; shift 2 ;;
	--only=*) ONLY=${1#--only=}; shift ;;
	--duration) DURATION=${2:?--duration needs a value, e.g. 10s}; shift 2 ;;
	--duration=*) DURATION=${1#--duration=}; shift ;;
	--connections) CONNECTIONS=${2:?--connections needs a number}; shift 2 ;;
	--connections=*) CONNECTIONS=${1#--connections=}; shift ;;
	-h | --help) usage; exit 0 ;;
	*) echo "proxy.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
	esac
done

SELECTED=()
if [ -z "$ONLY" ]; then
	read -r -a SELECTED <<<"$ALL"
else
	IFS=', ' read -r -a wanted <<<"$ONLY"
	for w in "${wanted[@]}"; do
		[ -n "$w" ] || continue
		case " $ALL $OPTIONAL " in
		*" $w "*) SELECTED+=("$w") ;;
		*) echo "proxy.sh: --only: unknown name '$w'; choose from: ${ALL// /,},${OPTIONAL// /,}" >&2; exit 2 ;;
		esac
	done
fi
[ ${#SELECTED[@]} -gt 0 ] || { echo "proxy.sh: --only selected nothing" >&2; exit 2; }
if ! [[ "$CONNECTIONS" =~ ^[1-9][0-9]*$ ]]; then echo "proxy.sh: CONNECTIONS must be a positive number" >&2; exit 2; fi
if ! [[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]]; then echo "proxy.sh: ROUNDS must be a positive number" >&2; exit 2; fi
if ! [[ "$QUIET_WAIT" =~ ^[0-9]+$ ]]; then echo "proxy.sh: QUIET_WAIT must be a number of seconds" >&2; exit 2; fi
if ! [[ "$QUIET" =~ ^[0-9]*\.?[0-9]+$ ]]; then echo "proxy.sh: QUIET must be a number of cores, e.g. 0.10" >&2; exit 2; fi
if ! [[ "$THREADS" =~ ^[1-9][0-9]*$ ]]; then echo "proxy.sh: THREADS must be a positive number" >&2; exit 2; fi
[ "$THREADS" -le "$CONNECTIONS" ] || THREADS=$CONNECTIONS

selected() { case " ${SELECTED[*]} " in *" $1 "*) return 0 ;; esac; return 1; }

log() { printf '==> %s\n' "$*" >&2; }
warn() { printf '!!! %s\n' "$*" >&2; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN="$ROOT/bench/.bin"
BACKEND_PORTS=(18091 18092 18093)
declare -A PORT=([direct]=18091 [shoal]=18080 [nginx]=18082 [haproxy]=18083 [caddy]=18084 [shoal-traced]=18085)
TRACED_METRICS_PORT=18086
OTLP_PORT=18087 # nothing listens: spans are made and sampled, and their export fails fast
SHOAL_METRICS_PORT=18081

# ---------------------------------------------------------------------------------------------
# Cleanup: every process started here is recorded in PIDS and stopped on exit.
PIDS=()
TMP=""
POLICY_RC_CREATED=""
SUDO=""

# stop_pid PID: TERM, then KILL after 5s; forgets PID, so that cleanup never signals a pid number
# the system may have handed to someone else's process since.
stop_pid() {
	local pid=$1 kids k _ keep=()
	for k in "${PIDS[@]}"; do
		if [ "$k" != "$pid" ]; then keep+=("$k"); fi
	done
	PIDS=("${keep[@]}")
	kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
	kids=$(pgrep -P "$pid" 2>/dev/null || true) # nginx's workers
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 1 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
	for k in $kids; do # a worker its master left behind, and still that worker
		if grep -qa nginx "/proc/$k/cmdline" 2>/dev/null; then kill -KILL "$k" 2>/dev/null || true; fi
	done
	return 0
}

cleanup() {
	local rc=$?
	set +e
	trap - EXIT INT TERM HUP
	if [ -n "${WRK_PID:-}" ]; then kill -TERM "$WRK_PID" 2>/dev/null; wait "$WRK_PID" 2>/dev/null; fi
	while [ ${#PIDS[@]} -gt 0 ]; do
		stop_pid "${PIDS[0]}"
	done
	if [ -n "$POLICY_RC_CREATED" ]; then
		$SUDO rm -f /usr/sbin/policy-rc.d
	fi
	if [ -n "$TMP" ] && [ -d "$TMP" ]; then
		if [ "${KEEP_TMP:-}" = 1 ]; then
			log "kept configs and logs in $TMP (KEEP_TMP=1)"
		else
			rm -rf "$TMP"
		fi
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# ---------------------------------------------------------------------------------------------
# Tools: install what is missing from Debian's packages.
if [ "$(id -u)" != 0 ]; then
	if command -v sudo >/dev/null; then SUDO="sudo"; else SUDO="__none__"; fi
fi
export PATH="$PATH:/usr/sbin:/sbin"

declare -A SKIP=() # name -> reason

have() { command -v "$1" >/dev/null 2>&1; }

APT_UPDATED=""
apt_install() { # apt_install PACKAGE: 0 when installed
	local pkg=$1
	if [ "$SUDO" = "__none__" ]; then
		warn "$pkg is missing and this is not root (and there is no sudo): cannot install it"
		return 1
	fi
	if [ -z "$APT_UPDATED" ]; then
		# A package's postinst would start its service (nginx on port 80) on a machine with an
		# init system: forbid service starts while installing, unless a policy is already there.
		if [ ! -e /usr/sbin/policy-rc.d ]; then
			printf '#!/bin/sh\n# bench/proxy.sh: no service starts while it installs packages\nexit 101\n' |
				$SUDO tee /usr/sbin/policy-rc.d >/dev/null
			$SUDO chmod 755 /usr/sbin/policy-rc.d
			POLICY_RC_CREATED=1
		fi
		log "apt-get update"
		$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || warn "apt-get update failed"
		APT_UPDATED=1
	fi
	log "installing $pkg from Debian's packages"
	local out
	out=$(mktemp)
	if ! $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$pkg" >"$out" 2>&1; then
		tail -5 "$out" >&2
		rm -f "$out"
		return 1
	fi
	rm -f "$out"
}

ensure_tool() { # ensure_tool COMMAND PACKAGE
	have "$1" && return 0
	apt_install "$2" && have "$1"
}

for t in curl:curl wrk:wrk; do
	ensure_tool "${t%%:*}" "${t#*:}" || { echo "proxy.sh: ${t%%:*} is required and could not be installed" >&2; exit 1; }
done
for name in nginx haproxy caddy; do
	selected "$name" || continue
	if ! ensure_tool "$name" "$name"; then
		SKIP[$name]="not installed: the Debian package '$name' is missing or failed to install"
		warn "skipping $name: ${SKIP[$name]}"
	fi
done
if [ -n "$POLICY_RC_CREATED" ]; then
	$SUDO rm -f /usr/sbin/policy-rc.d
	POLICY_RC_CREATED=""
fi

# ---------------------------------------------------------------------------------------------
# Ports must be free (another run, or another engineer's process, would skew or break this one).
port_busy() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }
need_ports=("${BACKEND_PORTS[@]}")
for name in shoal nginx haproxy caddy shoal-traced; do
	selected "$name" && need_ports+=("${PORT[$name]}")
done
selected shoal && need_ports+=("$SHOAL_METRICS_PORT")
selected shoal-traced && need_ports+=("$TRACED_METRICS_PORT" "$OTLP_PORT")
for p in "${need_ports[@]}"; do
	if port_busy "$p"; then
		echo "proxy.sh: port 127.0.0.1:$p is already in use (by: $(ss -Hltnp "sport = :$p" | sed -n 's/.*users:((\"\([^\"]*\)\".*/\1/p' | head -1)); stop it and run again" >&2
		exit 1
	fi
done

# ---------------------------------------------------------------------------------------------
# Build.
have go || { echo "proxy.sh: go is required to build shoal and the backend" >&2; exit 1; }
mkdir -p "$BIN"
log "building shoal and the backend"
(cd "$ROOT" && go build -o "$BIN/backend" ./bench/backend)
if { selected shoal || selected shoal-traced; } && ! (cd "$ROOT" && go build -o "$BIN/shoal" ./cmd/shoal); then
	for name in shoal shoal-traced; do
		SKIP[$name]="go build ./cmd/shoal failed (see above)"
		selected "$name" && warn "skipping $name: ${SKIP[$name]}"
	done
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/shoal-bench.XXXXXX")

# ---------------------------------------------------------------------------------------------
# Configurations, all equivalent: round robin over the 3 backends, upstream keep-alive, no access
# log, active health checks of /health every 10s where the proxy has them (nginx open source has
# only passive checks).
write_configs() {
	mkdir -p "$TMP/nginx/tmp" "$TMP/caddy/data" "$TMP/caddy/config"

	cat >"$TMP/shoal.yml" <<EOF
name: bench
server: {host: 127.0.0.1, port: ${PORT[shoal]}}
admin: {listen: 127.0.0.1:$SHOAL_METRICS_PORT}
scaling:
  service_discovery:
    method: static
    health_check: {endpoint: "/health", timeout: 1s}
    static:
      instances:
        - url: http://127.0.0.1:${BACKEND_PORTS[0]}
        - url: http://127.0.0.1:${BACKEND_PORTS[1]}
        - url: http://127.0.0.1:${BACKEND_PORTS[2]}
  load_balancer: {algorithm: round_robin, health_check_interval: 10s}
EOF

	cat >"$TMP/nginx/nginx.conf" <<EOF
worker_processes auto;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $TMP/nginx/tmp/body;
    proxy_temp_path $TMP/nginx/tmp/proxy;
    fastcgi_temp_path $TMP/nginx/tmp/fastcgi;
    uwsgi_temp_path $TMP/nginx/tmp/uwsgi;
    scgi_temp_path $TMP/nginx/tmp/scgi;
    upstream backends {
        server 127.0.0.1:${BACKEND_PORTS[0]};
        server 127.0.0.1:${BACKEND_PORTS[1]};
        server 127.0.0.1:${BACKEND_PORTS[2]};
        keepalive 64;
    }
    server {
        listen 127.0.0.1:${PORT[nginx]};
        location / {
            proxy_pass http://backends;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            # What shoal and Caddy send: the client's Host and the X-Forwarded-* headers.
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Host \$host;
            proxy_set_header X-Forwarded-Proto \$scheme;
        }
    }
}
EOF

	cat >"$TMP/haproxy.cfg" <<EOF
global
    nbthread 2
    maxconn 4096
defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend bench
    bind 127.0.0.1:${PORT[haproxy]}
    # What shoal and Caddy send: X-Forwarded-For, -Host and -Proto.
    option forwardfor
    http-request set-header X-Forwarded-Host %[req.hdr(host)]
    http-request set-header X-Forwarded-Proto http
    default_backend backends
backend backends
    balance roundrobin
    option httpchk GET /health
    server b1 127.0.0.1:${BACKEND_PORTS[0]} check inter 10s
    server b2 127.0.0.1:${BACKEND_PORTS[1]} check inter 10s
    server b3 127.0.0.1:${BACKEND_PORTS[2]} check inter 10s
EOF

	cat >"$TMP/Caddyfile" <<EOF
{
    admin off
    auto_https off
    storage file_system $TMP/caddy/data
}
http://127.0.0.1:${PORT[caddy]} {
    bind 127.0.0.1
    reverse_proxy 127.0.0.1:${BACKEND_PORTS[0]} 127.0.0.1:${BACKEND_PORTS[1]} 127.0.0.1:${BACKEND_PORTS[2]} {
        lb_policy round_robin
        health_uri /health
        health_interval 10s
    }
}
EOF
}
write_configs

# ---------------------------------------------------------------------------------------------
# Processes.
LAST_PID=""
start() { # start NAME LOGFILE CMD...: runs CMD in the background, records its pid
	local name=$1 logf=$2
	shift 2
	"$@" >"$logf" 2>&1 &
	LAST_PID=$!
	PIDS+=("$LAST_PID")
}

start_proxy() { # start_proxy NAME: 0 when started
	case "$1" in
	direct) LAST_PID="" ;;
	shoal) start shoal "$TMP/shoal.log" "$BIN/shoal" proxy -f "$TMP/shoal.yml" \
		--listen "127.0.0.1:${PORT[shoal]}" --metrics-listen "127.0.0.1:$SHOAL_METRICS_PORT" ;;
	shoal-traced) start shoal-traced "$TMP/shoal-traced.log" env OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$OTLP_PORT" \
		OTEL_TRACES_SAMPLER=parentbased_traceidratio OTEL_TRACES_SAMPLER_ARG="${TRACE_RATIO:-0.01}" \
		"$BIN/shoal" proxy -f "$TMP/shoal.yml" --listen "127.0.0.1:${PORT[shoal-traced]}" --metrics-listen "127.0.0.1:$TRACED_METRICS_PORT" ;;
	nginx) start nginx "$TMP/nginx.log" nginx -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" \
		-e "$TMP/nginx/error.log" -g 'daemon off;' ;;
	haproxy) start haproxy "$TMP/haproxy.log" haproxy -f "$TMP/haproxy.cfg" -db ;;
	caddy) start caddy "$TMP/caddy.log" env HOME="$TMP/caddy" XDG_DATA_HOME="$TMP/caddy/data" \
		XDG_CONFIG_HOME="$TMP/caddy/config" caddy run --config "$TMP/Caddyfile" --adapter caddyfile ;;
	esac
}

proxy_log() {
	case "$1" in
	nginx) cat "$TMP/nginx.log" "$TMP/nginx/error.log" 2>/dev/null ;;
	direct) ;;
	*) cat "$TMP/$1.log" 2>/dev/null ;;
	esac
}

wait_ready() { # wait_ready URL PID: 0 when URL answers 200 within 10s
	local url=$1 pid=$2 _
	for _ in $(seq 1 100); do
		if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
			return 1
		fi
		if curl -fsS -o /dev/null --max-time 1 "$url" 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	return 1
}

# distinct_backends URL: how many different backends answer 9 requests in a row.
distinct_backends() {
	local _
	for _ in 1 2 3 4 5 6 7 8 9; do
		curl -fsS -D - -o /dev/null --max-time 2 "$1" 2>/dev/null | tr -d '\r' | sed -n 's/^[Xx]-[Bb]ackend: //p'
	done | sort -u | grep -c . || true
}

# CPU time (clock ticks) used so far by a process and its children (nginx's workers).
CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() {
	local pid=$1 total=0 p t
	[ -n "$pid" ] || { echo 0; return; }
	for p in "$pid" $(pgrep -P "$pid" 2>/dev/null || true); do
		t=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}') || t=0
		total=$((total + ${t:-0}))
	done
	echo "$total"
}

# CPU time (clock ticks) all processes on the machine used so far: user, nice and system (not the
# kernel's interrupt work, which no process is charged for, nor time stolen by the hypervisor).
machine_ticks() { awk '$1 == "cpu" {print $2 + $3 + $4; exit}' /proc/stat; }

# others_busy SECONDS: cores that processes other than the backends used over SECONDS (call it while
# no proxy and no wrk runs).
others_busy() {
	local m0 m1 b0=0 b1=0 b
	for b in "${BACKEND_PIDS[@]}"; do b0=$((b0 + $(cpu_ticks "$b"))); done
	m0=$(machine_ticks)
	sleep "$1"
	m1=$(machine_ticks)
	for b in "${BACKEND_PIDS[@]}"; do b1=$((b1 + $(cpu_ticks "$b"))); done
	awk -v t=$((m1 - m0 - (b1 - b0))) -v hz="$CLK_TCK" -v s="$1" 'BEGIN {t /= hz * s; if (t < 0) t = 0; printf "%.2f", t}'
}

# wait_quiet: wait up to QUIET_WAIT seconds for other processes to use at most QUIET cores.
wait_quiet() {
	local busy waited=0
	busy=$(others_busy 1)
	while awk -v b="$busy" -v q="$QUIET" 'BEGIN {exit !(b > q)}'; do
		if [ "$waited" -ge "$QUIET_WAIT" ]; then
			warn "other processes still use $busy cores after ${QUIET_WAIT}s; measuring anyway"
			return 0
		fi
		if [ "$waited" = 0 ]; then log "other processes use $busy cores; waiting up to ${QUIET_WAIT}s for the machine to calm down"; fi
		busy=$(others_busy 2)
		waited=$((waited + 2))
	done
}

# run_wrk OUTFILE ARGS...: wrk in the background and waited for, so that a signal stops the script
# (and wrk) at once rather than after the run.
WRK_PID=""
run_wrk() {
	local out=$1 rc=0
	shift
	wrk "$@" >"$out" 2>&1 &
	WRK_PID=$!
	wait "$WRK_PID" || rc=$?
	WRK_PID=""
	return "$rc"
}

# children_cpu: seconds of CPU (user + system) used by this shell's finished children so far.
# `times` must run in this shell itself (a pipe or $(...) would ask a subshell), so it writes a file.
children_cpu() {
	times >"$TMP/times.txt"
	awk 'NR == 2 {
		t = 0
		for (i = 1; i <= 2; i++) { split($i, p, /[ms]/); t += p[1] * 60 + p[2] }
		printf "%.3f", t }' "$TMP/times.txt"
}

# to_ms VALUE: wrk's "812.00us" / "1.23ms" / "1.02s" / "2.00m" in milliseconds.
to_ms() {
	awk -v v="$1" 'BEGIN {
		n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
		if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
		printf "%.3f", n }'
}

# ---------------------------------------------------------------------------------------------
# Backends.
BACKEND_PIDS=()
log "starting 3 backends on 127.0.0.1:${BACKEND_PORTS[0]}-${BACKEND_PORTS[2]}"
for p in "${BACKEND_PORTS[@]}"; do
	start backend "$TMP/backend-$p.log" "$BIN/backend" -addr "127.0.0.1:$p"
	BACKEND_PIDS+=("$LAST_PID")
	wait_ready "http://127.0.0.1:$p/health" "$LAST_PID" || {
		cat "$TMP/backend-$p.log" >&2
		echo "proxy.sh: backend on 127.0.0.1:$p did not start" >&2
		exit 1
	}
done

NPROC=$(nproc)
# Other engineers' work on a shared machine skews every number: say how busy it is.
BUSY_BEFORE=$(others_busy 1)
log "before the runs, other processes kept $BUSY_BEFORE of $NPROC cores busy"
log "wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency, after a ${WARMUP} warm-up, for: ${SELECTED[*]}"
if [ "$NPROC" -le 4 ]; then
	warn "this machine has $NPROC cores: wrk, the proxy under test and the 3 backends all compete for them;"
	warn "the numbers compare the proxies with each other on this machine, not their capacity on a dedicated one"
fi

# Results per name: space-separated lists with one value per round.
declare -A RPS=() P50=() P99=() ERRS=() CPU=() OTHER=() NOTE=()

# measure NAME: start the proxy, check it, warm it up, measure it, stop it; 1 when it must be skipped.
measure() {
	local name=$1 url pid n out sock non2xx c0 c1 b0 b1 m0 m1 t0 t1 w0 w1 wrk_rc wrk_s b rps p50 p99 errs cpu other retries
	url="http://127.0.0.1:${PORT[$name]}/"
	wait_quiet
	log "$name: starting"
	start_proxy "$name"
	pid=$LAST_PID
	if ! wait_ready "$url" "$pid"; then
		SKIP[$name]="did not start or did not answer $url within 10s"
		warn "skipping $name: ${SKIP[$name]}; its log:"
		proxy_log "$name" | tail -20 >&2
		if [ -n "$pid" ]; then stop_pid "$pid"; fi
		return 1
	fi
	if [ "$name" != direct ]; then
		n=$(distinct_backends "$url")
		if [ "$n" -lt 3 ]; then
			warn "$name: 9 requests reached only $n of the 3 backends"
			NOTE[$name]="reached $n/3 backends"
		fi
	fi
	log "$name: warm-up ($WARMUP)"
	run_wrk /dev/null -t"$THREADS" -c"$CONNECTIONS" -d"$WARMUP" "$url" || true
	log "$name: measuring ($DURATION)"
	out="$TMP/wrk-$name.txt"
	c0=$(cpu_ticks "$pid")
	b0=0
	for b in "${BACKEND_PIDS[@]}"; do b0=$((b0 + $(cpu_ticks "$b"))); done
	m0=$(machine_ticks)
	t0=$(date +%s%N)
	children_cpu >"$TMP/w0.txt"
	wrk_rc=0
	run_wrk "$out" -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$url" || wrk_rc=$?
	children_cpu >"$TMP/w1.txt"
	w0=$(cat "$TMP/w0.txt") w1=$(cat "$TMP/w1.txt")
	t1=$(date +%s%N)
	m1=$(machine_ticks)
	c1=$(cpu_ticks "$pid")
	b1=0
	for b in "${BACKEND_PIDS[@]}"; do b1=$((b1 + $(cpu_ticks "$b"))); done
	if [ "$wrk_rc" != 0 ] || ! grep -q '^Requests/sec:' "$out"; then
		warn "$name: wrk failed:"
		cat "$out" >&2
		SKIP[$name]="wrk failed"
		if [ -n "$pid" ]; then stop_pid "$pid"; fi
		return 1
	fi
	rps=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$out")
	p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$out")")
	p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$out")")
	sock=$(awk '/Socket errors:/ {gsub(/,/, ""); print $4 + $6 + $8 + $10}' "$out")
	non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' "$out")
	errs=$((${sock:-0} + ${non2xx:-0}))
	# Cores that other processes used during the run: the machine's total less wrk, the proxy and
	# the backends.
	wrk_s=$(awk -v a="$w0" -v b="$w1" 'BEGIN {print b - a}')
	other=$(awk -v m=$((m1 - m0)) -v ours=$((c1 - c0 + b1 - b0)) -v w="$wrk_s" -v hz="$CLK_TCK" -v ns=$((t1 - t0)) \
		'BEGIN {o = ((m - ours) / hz - w) / (ns / 1e9); if (o < 0) o = 0; printf "%.2f", o}')
	cpu="-"
	if [ -n "$pid" ]; then
		cpu=$(awk -v t=$((c1 - c0)) -v hz="$CLK_TCK" -v ns=$((t1 - t0)) 'BEGIN {printf "%.2f", t / hz / (ns / 1e9)}')
	fi
	if [ "$errs" -gt 0 ]; then
		warn "$name: $errs errors (socket: ${sock:-0}, non-2xx/3xx: ${non2xx:-0}); wrk said:"
		grep -E 'Socket errors|Non-2xx' "$out" >&2 || true
	fi
	if [ "$name" = shoal ]; then
		# What the proxy itself counted, for the record.
		curl -fsS --max-time 2 "http://127.0.0.1:$SHOAL_METRICS_PORT/metrics" >"$TMP/shoal-metrics.txt" 2>/dev/null || true
		retries=$(awk '/^shoal_proxy_retries_total/ {s += $NF} END {printf "%d", s}' "$TMP/shoal-metrics.txt" 2>/dev/null || echo 0)
		if [ "${retries:-0}" -gt 0 ]; then warn "shoal: its metrics count $retries retries"; fi
		if grep -qE '"level":"(WARN|ERROR)"|level=(WARN|ERROR)' "$TMP/shoal.log" 2>/dev/null; then
			warn "shoal logged warnings or errors:"
			grep -E '"level":"(WARN|ERROR)"|level=(WARN|ERROR)' "$TMP/shoal.log" | tail -5 >&2
		fi
	fi
	log "$name: $rps req/s, p50 $p50 ms, p99 $p99 ms, errors $errs, proxy CPU $cpu, other CPU $other"
	RPS[$name]+="$rps " P50[$name]+="$p50 " P99[$name]+="$p99 " ERRS[$name]+="$errs "
	CPU[$name]+="$cpu " OTHER[$name]+="$other "
	if [ -n "$pid" ]; then stop_pid "$pid"; fi
	return 0
}

for round in $(seq 1 "$ROUNDS"); do
	[ "$ROUNDS" = 1 ] || log "round $round of $ROUNDS"
	# Each round starts one further along the list, so no proxy always runs first or last.
	n=${#SELECTED[@]}
	for k in $(seq 0 $((n - 1))); do
		name=${SELECTED[$(((k + round - 1) % n))]}
		if [ -n "${SKIP[$name]:-}" ]; then continue; fi
		measure "$name" || true
	done
done

# ---------------------------------------------------------------------------------------------
# Report: the median of the rounds (the value itself for one round), errors summed.
# median: of the numbers on stdin, with as many decimals as they have; "-" when there are none.
median() {
	tr ' ' '\n' | awk '$1 != "" && $1 != "-"' | sort -g | awk '{v[NR] = $1}
		END {
			if (NR == 0) { print "-"; exit }
			d = index(v[1], ".") ? length(v[1]) - index(v[1], ".") : 0
			m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
			printf "%." d "f\n", m
		}'
}
total() { tr ' ' '\n' | awk '{s += $1} END {printf "%d", s}'; }
spread() { tr ' ' '\n' | awk '$1 != ""' | sort -g | awk 'NR == 1 {lo = $1} {hi = $1} END {print lo "-" hi}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

# calm LIST OTHERS: the values of LIST from the rounds in which other processes used at most QUIET
# cores (all of them when every round was disturbed).
calm() {
	awk -v vals="$1" -v others="$2" -v q="$QUIET" 'BEGIN {
		n = split(vals, v, " "); split(others, o, " ")
		for (i = 1; i <= n; i++) if (o[i] <= q) out = out v[i] " "
		print (out == "" ? vals : out) }'
}

declare -A M_RPS=() M_P50=() M_P99=() M_ERRS=() M_CPU=() M_OTHER=() M_US=() RANGE=() USED=()
for name in "${SELECTED[@]}"; do
	if [ -z "${RPS[$name]:-}" ]; then continue; fi
	n_all=$(wc -w <<<"${RPS[$name]}")
	n_calm=$(calm "${OTHER[$name]}" "${OTHER[$name]}" | wc -w)
	USED[$name]="$n_calm/$n_all calm"
	if [ "$n_calm" = "$n_all" ]; then USED[$name]=""; fi
	if ! awk -v o="${OTHER[$name]}" -v q="$QUIET" 'BEGIN {n = split(o, a, " "); for (i = 1; i <= n; i++) if (a[i] <= q) exit 0; exit 1}'; then
		USED[$name]="every round disturbed"
	fi
	M_RPS[$name]=$(calm "${RPS[$name]}" "${OTHER[$name]}" | median | awk '{printf "%.0f", $1}')
	M_P50[$name]=$(calm "${P50[$name]}" "${OTHER[$name]}" | median)
	M_P99[$name]=$(calm "${P99[$name]}" "${OTHER[$name]}" | median)
	M_ERRS[$name]=$(total <<<"${ERRS[$name]}")
	M_CPU[$name]=$(calm "${CPU[$name]}" "${OTHER[$name]}" | median)
	# The proxy's CPU per request: less sensitive to the machine's contention than req/s.
	M_US[$name]=$(awk -v c="${M_CPU[$name]}" -v r="${M_RPS[$name]}" 'BEGIN {if (c == "-" || r <= 0) print "-"; else printf "%.1f", c * 1e6 / r}')
	M_OTHER[$name]=$(calm "${OTHER[$name]}" "${OTHER[$name]}" | median)
	RANGE[$name]=$(spread <<<"${RPS[$name]}")
	# A proxy skipped in a later round still reports the rounds it ran.
	unset "SKIP[$name]"
done

RATIO_LINE=""
if [ -n "${M_RPS[shoal]:-}" ] && [ -n "${M_RPS[nginx]:-}" ]; then
	RATIO_LINE="shoal/nginx: req/s $(ratio "${M_RPS[shoal]}" "${M_RPS[nginx]}")x, p99 $(ratio "${M_P99[shoal]}" "${M_P99[nginx]}")x, proxy CPU per request $(ratio "${M_US[shoal]}" "${M_US[nginx]}")x (req/s above 1, p99 and CPU below 1 favour shoal)"
fi
if [ -n "${M_RPS[shoal]:-}" ] && [ -n "${M_RPS[shoal-traced]:-}" ]; then
	RATIO_LINE+="${RATIO_LINE:+; }shoal-traced/shoal: req/s $(ratio "${M_RPS[shoal-traced]}" "${M_RPS[shoal]}")x, proxy CPU per request $(ratio "${M_US[shoal-traced]}" "${M_US[shoal]}")x (sampling ${TRACE_RATIO:-0.01})"
fi
CPU_NOTE="On $NPROC cores wrk ($THREADS threads), the proxy under test and the 3 backends compete for the same CPUs: compare the rows with each other, not with a dedicated machine."
RUN_DESC="wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency after a $WARMUP warm-up"
if [ "$ROUNDS" != 1 ]; then RUN_DESC+=", $ROUNDS rounds (median of the calm rounds, those in which other processes used at most $QUIET cores; range of all rounds; errors summed)"; fi

echo
printf '%-12s %10s %10s %10s %8s %10s %10s %10s  %s\n' name "req/s" "p50 ms" "p99 ms" errors "proxy CPU" "us CPU/req" "other CPU" \
	"$([ "$ROUNDS" = 1 ] || echo "req/s range")"
for name in "${SELECTED[@]}"; do
	if [ -z "${M_RPS[$name]:-}" ]; then
		printf '%-12s %s\n' "$name" "skipped: ${SKIP[$name]:-not run}"
		continue
	fi
	extra="${NOTE[$name]:-}"
	if [ "$ROUNDS" != 1 ]; then extra="${RANGE[$name]} ${USED[$name]} $extra"; fi
	if [ "$ROUNDS" = 1 ] && awk -v o="${M_OTHER[$name]}" -v q="$QUIET" 'BEGIN {exit !(o > q)}'; then extra="disturbed $extra"; fi
	printf '%-12s %10s %10s %10s %8s %10s %10s %10s  %s\n' "$name" "${M_RPS[$name]}" "${M_P50[$name]}" "${M_P99[$name]}" \
		"${M_ERRS[$name]}" "${M_CPU[$name]}" "${M_US[$name]}" "${M_OTHER[$name]}" "$extra"
done
echo
if [ -n "$RATIO_LINE" ]; then echo "$RATIO_LINE"; fi
echo "$RUN_DESC; errors = socket errors + non-2xx/3xx answers;"
echo "proxy CPU = cores the proxy used on average during the run (user + system time / wall time);"
echo "us CPU/req = the proxy's CPU time per request in microseconds (proxy CPU / req/s);"
echo "other CPU = cores that other processes (not wrk, the proxy or the backends) used during the run: other people's work."
echo "$CPU_NOTE"

# The machine and the versions, for the record.
CPU_MODEL=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
MACHINE=("$NPROC cores, $CPU_MODEL, $(awk '/^MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), Linux $(uname -r)$(grep -qw hypervisor /proc/cpuinfo && echo ", virtual machine")")
SHOAL_REV="(not a git checkout)"
if git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1; then
	SHOAL_REV="commit $(git -C "$ROOT" rev-parse --short HEAD)"
	if ! git -C "$ROOT" diff --quiet HEAD 2>/dev/null; then SHOAL_REV+=" + uncommitted changes"; fi
fi
MACHINE+=("$(go version | sed 's/^go version //'); shoal $SHOAL_REV")
if selected nginx && have nginx; then MACHINE+=("$(nginx -v 2>&1 | sed 's/^nginx version: //')"); fi
if selected haproxy && have haproxy; then MACHINE+=("HAProxy $(haproxy -v 2>/dev/null | awk 'NR == 1 {print $3}')"); fi
if selected caddy && have caddy; then MACHINE+=("Caddy $(caddy version 2>/dev/null | awk '{print $1}') (built with $(go version "$(command -v caddy)" 2>/dev/null | awk '{print $2}'))"); fi
MACHINE+=("$( (wrk --version 2>&1 || true) | awk 'NR == 1 {print $1, $2}')")  # wrk --version exits 1
echo
echo "Machine:"
printf '  %s\n' "${MACHINE[@]}"

echo
echo "Markdown:"
echo
echo "| proxy | req/s | p50 (ms) | p99 (ms) | errors | proxy CPU (cores) | proxy CPU per request (µs) | other CPU (cores) |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for name in "${SELECTED[@]}"; do
	label=$name
	if [ "$name" = direct ]; then label="direct (one backend, no proxy)"; fi
	if [ -z "${M_RPS[$name]:-}" ]; then
		echo "| $label | skipped: ${SKIP[$name]:-not run} | | | | | | |"
		continue
	fi
	rps=${M_RPS[$name]}
	if [ "$ROUNDS" != 1 ]; then rps="$rps (${RANGE[$name]}${USED[$name]:+; ${USED[$name]}})"; fi
	echo "| $label | $rps | ${M_P50[$name]} | ${M_P99[$name]} | ${M_ERRS[$name]} | ${M_CPU[$name]} | ${M_US[$name]} | ${M_OTHER[$name]} |"
done
echo
if [ -n "$RATIO_LINE" ]; then echo "**$RATIO_LINE**"; echo; fi
echo "\`$RUN_DESC\`. $CPU_NOTE"
echo
printf -- '- %s\n' "${MACHINE[@]}"

# One line per ratio, for scripts that collect them.
echo
for other in nginx haproxy caddy; do
	if [ -n "${M_RPS[shoal]:-}" ] && [ -n "${M_RPS[$other]:-}" ]; then
		echo "ratio shoal/$other req/s = $(ratio "${M_RPS[shoal]}" "${M_RPS[$other]}")"
		echo "ratio shoal/$other p99 = $(ratio "${M_P99[shoal]}" "${M_P99[$other]}")"
		echo "ratio shoal/$other cpu_per_request = $(ratio "${M_US[shoal]}" "${M_US[$other]}")"
	fi
done
if [ -n "${M_RPS[shoal]:-}" ] && [ -n "${M_RPS[shoal-traced]:-}" ]; then
	echo "ratio shoal-traced/shoal req/s = $(ratio "${M_RPS[shoal-traced]}" "${M_RPS[shoal]}")"
fi
