#!/usr/bin/env bash
# bench/messaging.sh — package messaging against the raw client it is built on and against
# Watermill's backend for the same broker, on each broker, on this machine.
#
# The same work through each (bench/compare/messaging, a module of its own so that Watermill is
# no dependency of shoal): N messages of SIZE bytes published confirmed (4 publishers, 50 a
# call: JetStream acks, publisher confirms, Kafka produce acks), and N preloaded messages
# consumed and acknowledged by one durable consumer (group / durable queue, prefetch 256).
#   shoal       messaging.Bus over messaging/nats, messaging/rabbitmq, messaging/kafka
#   raw         nats.go jetstream, amqp091-go, franz-go by hand
#   watermill   watermill-nats (JetStream), watermill-amqp (durable queue, confirms), watermill-kafka
# Brokers: nats-embedded (nats-server v2.15 in a process of its own, restarted for every run),
# nats-machine (the machine's NATS 2.9, 127.0.0.1:4222), rabbitmq (the machine's, 127.0.0.1:5672),
# kafka (franz-go's kfake in a process of its own, restarted for every run). ROUNDS rounds run
# every measurement once, in a rotating order, so a neighbour's burst hits all alike; the median
# is reported, as a table and as ratio lines (messages/s of shoal over its anchor; the targets
# are ≥ 0.9 against raw and ≥ 1.5 against Watermill):
#   ratio shoal/raw nats-embedded publish 1KiB = 0.97
#
#   bash bench/messaging.sh
#   ROUNDS=5 N=50000 BROKERS="rabbitmq kafka" SIZES=16 bash bench/messaging.sh
#
# Environment: ROUNDS (3), N (20000), N_KAFKA (100000: kfake is fast enough that fewer is
# over too soon to measure), SIZES ("1024 16"), BROKERS (all four), IMPLS ("shoal raw
# watermill"), BENCH_NATS_URL (nats://127.0.0.1:4222), BENCH_RABBITMQ_URL
# (amqp://guest:guest@127.0.0.1:5672/). What the runs leave on the machine's NATS and RabbitMQ
# (names starting "mbench") is deleted at the end; a broker that does not answer is skipped
# with a message.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in -h | --help) sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; "") ;; *) echo "messaging.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;; esac

ROUNDS=${ROUNDS:-3}
N=${N:-20000}
N_KAFKA=${N_KAFKA:-100000}
SIZES=${SIZES:-1024 16}
BROKERS=${BROKERS:-nats-embedded nats-machine rabbitmq kafka}
IMPLS=${IMPLS:-shoal raw watermill}
MACHINE_NATS=${BENCH_NATS_URL:-nats://127.0.0.1:4222}
MACHINE_RABBIT=${BENCH_RABBITMQ_URL:-amqp://guest:guest@127.0.0.1:5672/}
for v in ROUNDS N N_KAFKA; do
	if ! [[ "${!v}" =~ ^[1-9][0-9]*$ ]]; then echo "messaging.sh: $v=${!v} is not a positive number" >&2; exit 2; fi
done
for b in $BROKERS; do
	case "$b" in nats-embedded | nats-machine | rabbitmq | kafka) ;; *) echo "messaging.sh: unknown broker '$b' in BROKERS (nats-embedded, nats-machine, rabbitmq, kafka)" >&2; exit 2 ;; esac
done
for i in $IMPLS; do
	case "$i" in shoal | raw | watermill) ;; *) echo "messaging.sh: unknown implementation '$i' in IMPLS (shoal, raw, watermill)" >&2; exit 2 ;; esac
done

tmp=$(mktemp -d)
bin=bench/.bin/messaging
SERVER_PID=""
SERVER_FD=""
stop_server() {
	if [ -n "$SERVER_FD" ]; then exec {SERVER_FD}>&-; SERVER_FD=""; fi
	if [ -n "$SERVER_PID" ]; then wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""; fi
}
finish() {
	stop_server
	"$bin" cleanup -nats "$MACHINE_NATS" -rabbitmq "$MACHINE_RABBIT" 2>&1 | sed 's/^/messaging.sh: /' >&2 || true
	rm -rf "$tmp"
}
trap finish EXIT

echo "building bench/compare/messaging" >&2
(cd bench/compare && go build -o ../.bin/messaging ./messaging)

# start_server serve-nats|serve-kafka: a broker in a process of its own, its stdin a FIFO this
# script holds open (closing it stops the server cleanly); sets ADDR.
start_server() {
	rm -f "$tmp/in"
	mkfifo "$tmp/in"
	"$bin" "$1" <"$tmp/in" >"$tmp/addr" 2>"$tmp/server.err" &
	SERVER_PID=$!
	exec {SERVER_FD}>"$tmp/in"
	for _ in $(seq 1 100); do
		ADDR=$(head -1 "$tmp/addr")
		[ -n "$ADDR" ] && return 0
		kill -0 "$SERVER_PID" 2>/dev/null || break
		sleep 0.1
	done
	echo "messaging.sh: $1 did not start: $(cat "$tmp/server.err")" >&2
	stop_server
	return 1
}

reachable() { timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }
available=""
for b in $BROKERS; do
	case "$b" in
	nats-machine) hp=${MACHINE_NATS#*://}; hp=${hp##*@}; hp=${hp%%/*} ;;
	rabbitmq) hp=${MACHINE_RABBIT#*://}; hp=${hp##*@}; hp=${hp%%/*} ;;
	*) hp="" ;;
	esac
	if [ -n "$hp" ] && ! reachable "${hp%:*}" "${hp##*:}"; then
		echo "messaging.sh: skipping $b: nothing answers at $hp (start it as ../shared/DESIGN.md says)" >&2
		continue
	fi
	available="$available $b"
done

# one BROKER SIZE MODE IMPL: one measurement, appended to $tmp/results as "broker size mode impl msgs/s".
one() {
	local broker=$1 size=$2 mode=$3 impl=$4 kind addr rate n=$N
	case "$broker" in
	nats-embedded) start_server serve-nats || return 0; kind=nats; addr=$ADDR ;;
	kafka) start_server serve-kafka || return 0; kind=kafka; addr=$ADDR; n=$N_KAFKA ;;
	nats-machine) kind=nats; addr=$MACHINE_NATS ;;
	rabbitmq) kind=rabbitmq; addr=$MACHINE_RABBIT ;;
	esac
	if rate=$("$bin" -broker "$kind" -addr "$addr" -impl "$impl" -mode "$mode" -size "$size" -n "$n" 2>"$tmp/run.err"); then
		echo "$broker $size $mode $impl $rate" >>"$tmp/results"
		printf '  %-13s %5sB %-7s %-9s %8s msg/s\n' "$broker" "$size" "$mode" "$impl" "$rate" >&2
	else
		echo "messaging.sh: $broker ${size}B $mode $impl failed: $(tail -3 "$tmp/run.err")" >&2
	fi
	stop_server
}

read -r -a impls <<<"$IMPLS"
touch "$tmp/results"
for r in $(seq 1 "$ROUNDS"); do
	echo "round $r/$ROUNDS ($(cut -d' ' -f1-3 /proc/loadavg) load)" >&2
	for b in $available; do
		for size in $SIZES; do
			for mode in publish consume; do
				# rotate the order of the implementations each round
				for k in "${!impls[@]}"; do
					one "$b" "$size" "$mode" "${impls[$(((k + r) % ${#impls[@]}))]}"
				done
			done
		done
	done
done

median() { # broker size mode impl → median msg/s, or empty
	awk -v b="$1" -v s="$2" -v m="$3" -v i="$4" '$1 == b && $2 == s && $3 == m && $4 == i {print $5}' "$tmp/results" |
		sort -n | awk '{a[NR] = $1} END {if (NR) print a[int((NR + 1) / 2)]}'
}
label() { if [ "$1" = 1024 ]; then echo 1KiB; else echo "${1}B"; fi; }

echo
echo "| broker | size | mode | $(echo "$IMPLS" | sed 's/ / | /g') |"
echo "|---|---|---|$(for _ in $IMPLS; do printf -- '---:|'; done)"
for b in $available; do
	for size in $SIZES; do
		for mode in publish consume; do
			row="| $b | $(label "$size") | $mode"
			for i in $IMPLS; do
				v=$(median "$b" "$size" "$mode" "$i")
				row="$row | ${v:--}"
			done
			echo "$row |"
		done
	done
done
echo
echo "msg/s, median of $ROUNDS rounds, N=$N messages (kafka $N_KAFKA), 4 confirmed publishers × 50 a call, 1 acking consumer with prefetch 256; $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(go version | cut -d' ' -f3)"
echo
for b in $available; do
	for size in $SIZES; do
		for mode in publish consume; do
			ours=$(median "$b" "$size" "$mode" shoal)
			for anchor in raw watermill; do
				theirs=$(median "$b" "$size" "$mode" "$anchor")
				if [ -n "$ours" ] && [ -n "$theirs" ]; then
					echo "ratio shoal/$anchor $b $mode $(label "$size") = $(awk -v o="$ours" -v a="$theirs" 'BEGIN {printf "%.2f", o / a}')"
				fi
			done
		done
	done
done
