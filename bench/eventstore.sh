#!/usr/bin/env bash
# bench/eventstore.sh — the SQL event store (eventstore/sqlstore) on this machine's PostgreSQL
# (127.0.0.1:5432, database test, a schema per run) and on SQLite (a file in a temp dir).
#
#   append   one caller appending ~60-byte events to 100 streams through Store.Append, single
#            and in batches of 10, against its anchor: a plain INSERT loop (one row, or one
#            10-row statement) into a table of the same shape, same run, same database
#   read     Store.ReadAll over 100k events on PostgreSQL, pages of 10000 (target 200k/s)
#   catchup  a catch-up subscription delivering 100k stored events to a no-op handler on
#            PostgreSQL (target 100k/s)
# ROUNDS (3) rounds, interleaved; the median is reported. It ends with ratio lines
# (throughput of the store over its anchor, or over the issue's target; ≥ 0.8 and ≥ 1.0 are
# the targets):
#   ratio shoal/insert postgres append single = 0.85
#
#   bash bench/eventstore.sh
#   ROUNDS=5 APPENDS=4000 bash bench/eventstore.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
APPENDS=${APPENDS:-2000}
case "${1:-}" in -h | --help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; "") ;; *) echo "eventstore.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;; esac

out=$(mktemp)
trap 'rm -f "$out" "$out.bin" "$out.round"' EXIT
go test -c -o "$out.bin" ./eventstore/sqlstore >/dev/null
for r in $(seq 1 "$ROUNDS"); do
	echo "round $r/$ROUNDS ($(cut -d' ' -f1-3 /proc/loadavg) load)" >&2
	if ! SHOAL_TEST_SERVICES=required "$out.bin" -test.run '^$' -test.bench '^BenchmarkAppend$' -test.benchtime "${APPENDS}x" >"$out.round" 2>&1 ||
		! SHOAL_TEST_SERVICES=required "$out.bin" -test.run '^$' -test.bench '^Benchmark(ReadAll|CatchUp)$' -test.benchtime 1x >>"$out.round" 2>&1; then
		echo "eventstore.sh: the benchmarks failed in round $r:" >&2
		tail -20 "$out.round" >&2
		exit 1
	fi
	grep -E '^Benchmark' "$out.round" >>"$out"
done

# median of column $2 (a field index) of the lines of benchmark $1
median() { grep -E "^$1(-[0-9]+)? " "$out" | awk -v f="$2" '{print $f}' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
evs() { grep -E "^$1(-[0-9]+)? " "$out" | sed -E 's/.* ([0-9.e+]+) events\/s.*/\1/' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo
echo "| append (one caller) | shoal event store | plain INSERT | ratio |"
echo "|---|---:|---:|---:|"
ratios=()
for db in postgres sqlite; do
	for b in 1 10; do
		s=$(median "BenchmarkAppend/$db/store/batch$b" 3)
		i=$(median "BenchmarkAppend/$db/insert/batch$b" 3)
		ratio=$(awk -v s="$s" -v i="$i" 'BEGIN {printf "%.2f", i/s}')
		name="single"; [ "$b" = 10 ] && name="batch10"
		echo "| $db $name | $(awk -v n="$s" 'BEGIN {printf "%.0f events/s", 1e9/n}') | $(awk -v n="$i" 'BEGIN {printf "%.0f rows/s", 1e9/n}') | $ratio |"
		ratios+=("ratio shoal/insert $db append $name = $ratio")
	done
done
read=$(evs BenchmarkReadAll)
catchup=$(evs BenchmarkCatchUp)
echo
echo "| PostgreSQL | events/s | target |"
echo "|---|---:|---:|"
echo "| ReadAll \$all | $(printf '%.0f' "$read") | 200000 |"
echo "| catch-up subscription | $(printf '%.0f' "$catchup") | 100000 |"
echo
for l in "${ratios[@]}"; do echo "$l"; done
awk -v r="$read" 'BEGIN {printf "ratio shoal/target postgres readall = %.2f\n", r/200000}'
awk -v r="$catchup" 'BEGIN {printf "ratio shoal/target postgres catchup = %.2f\n", r/100000}'
