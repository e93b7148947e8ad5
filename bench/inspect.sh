#!/usr/bin/env bash
# bench/inspect.sh — what a running proxy does per request, read from /proc while wrk drives it.
#
#   bash bench/inspect.sh 18080            # the process listening on 127.0.0.1:18080, 8 s of load
#   DURATION=15s CONNECTIONS=128 bash bench/inspect.sh 18082
#
# Start the proxy first: bench/proxy.sh stops its proxies when it ends, but with KEEP_TMP=1 it
# keeps the configurations it wrote, to start them by hand. Prints req/s, CPU per request split into user and system time,
# read and write system calls per request (/proc/PID/io syscr/syscw: read/write/readv/writev
# only, so recv/send, which nginx uses, are not counted), and per thread: CPU and voluntary and
# involuntary context switches. These numbers are steadier than req/s on a shared machine; they
# are how the scheduler hand-offs in docs/performance.md ("socket calls that keep their P") were
# found. Linux only; needs wrk and ss.
set -euo pipefail

PORT=${1:-}
if ! [[ "$PORT" =~ ^[0-9]+$ ]]; then
	sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2
	echo "inspect.sh: give the port a proxy listens on, e.g. 18080" >&2
	exit 2
fi
DURATION=${DURATION:-8s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
for tool in wrk ss awk; do
	command -v "$tool" >/dev/null || { echo "inspect.sh: $tool is required (apt-get install $tool)" >&2; exit 1; }
done

pids=$(ss -Hltnp "sport = :$PORT" | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u || true)
[ -n "$pids" ] || { echo "inspect.sh: nothing listens on port $PORT (or it belongs to another user)" >&2; exit 1; }
# The listener and its children (nginx's workers), once each.
procs=$(for p in $pids; do echo "$p"; pgrep -P "$p" || true; done | sort -u)
HZ=$(getconf CLK_TCK)

# snapshot: one line per thread: "pid tid utime stime voluntary involuntary", then "io pid syscr syscw".
snapshot() {
	for p in $procs; do
		for t in /proc/"$p"/task/*; do
			[ -r "$t/stat" ] || continue
			awk -v p="$p" -v t="${t##*/}" '{
				sub(/^.*\) /, "")  # the command name may hold spaces
				printf "%s %s %s %s", p, t, $12, $13 }' "$t/stat"
			awk '/^voluntary_ctxt_switches/ {v = $2} /^nonvoluntary_ctxt_switches/ {n = $2} END {printf " %s %s\n", v, n}' "$t/status"
		done
		awk -v p="$p" '/^syscr/ {r = $2} /^syscw/ {w = $2} END {printf "io %s %s %s\n", p, r, w}' "/proc/$p/io" 2>/dev/null || true
	done
}

url="http://127.0.0.1:$PORT/"
wrk -t"$THREADS" -c"$CONNECTIONS" -d2s "$url" >/dev/null # warm-up
before=$(snapshot)
out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" "$url")
after=$(snapshot)
reqs=$(awk '/requests in/ {print $1}' <<<"$out")
rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
[ -n "$reqs" ] && [ "$reqs" -gt 0 ] || { echo "inspect.sh: wrk served no request:" >&2; echo "$out" >&2; exit 1; }

echo "port $PORT (pids $(tr '\n' ' ' <<<"$procs")): $rps req/s, $reqs requests in $DURATION, $CONNECTIONS connections"
awk -v reqs="$reqs" -v hz="$HZ" '
	NR == FNR { if ($1 == "io") { r0[$2] = $3; w0[$2] = $4 } else { u0[$2] = $3; s0[$2] = $4; v0[$2] = $5; n0[$2] = $6 }; next }
	$1 == "io" { R += $3 - r0[$2]; W += $4 - w0[$2]; next }
	{
		u = $3 - u0[$2]; s = $4 - s0[$2]; v = $5 - v0[$2]; n = $6 - n0[$2]
		U += u; S += s; V += v; N += n
		if (u + s > 0 || v + n > 100) lines[++k] = sprintf("  thread %-8s %8.1f %8.1f %10d %12d", $2, u / hz * 1e6 / reqs, s / hz * 1e6 / reqs, v, n)
	}
	END {
		printf "CPU per request: %.1f µs user + %.1f µs system = %.1f µs\n", U / hz * 1e6 / reqs, S / hz * 1e6 / reqs, (U + S) / hz * 1e6 / reqs
		printf "system calls per request: %.2f reads, %.2f writes (read/readv and write/writev only)\n", R / reqs, W / reqs
		printf "context switches per request: %.3f voluntary, %.3f involuntary\n", V / reqs, N / reqs
		printf "  %-15s %8s %8s %10s %12s\n", "", "user µs", "sys µs", "voluntary", "involuntary"
		for (i = 1; i <= k; i++) print lines[i]
	}' <(echo "$before") <(echo "$after")
