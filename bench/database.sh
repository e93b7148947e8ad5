#!/usr/bin/env bash
# bench/database.sh — package database against the raw pools it is made of, on this machine's
# PostgreSQL (127.0.0.1:5432, database test; each run works in a schema of its own).
#
# The same loops (SELECT $1::int, INSERT of one row, a transaction of one INSERT), 8 callers on
# pools of 8, through:
#   shoal           DB.QueryRowContext / DB.ExecContext / DB.WithTx  (database/sql over pgx, guarded)
#   database_sql    a raw sql.Open("pgx", …) pool
#   shoal_pgx       DB.Pool() / DB.WithPgxTx                          (pgxpool with shoal's tracer)
#   pgxpool         a raw *pgxpool.Pool
# and reads with one read replica (the same server, so the routing is what is measured):
#   shoal           DB.QueryRowContext with read_replicas: round robin over checked replicas
#                   within replica_max_lag, read-your-writes session consulted
#   dbresolver      gorm dbresolver's static split on database/sql: SELECT to a random replica
# and a point SELECT on SQLite (no network: shoal's per-call cost at its largest share):
#   shoal           DB.QueryRowContext on the read pool, against a raw database/sql pool of 8
# ROUNDS (5) rounds run every benchmark once each (BENCHTIME, 2s), interleaved, so a neighbour's
# burst on a shared machine hits all of them alike; the median of the rounds is reported. It
# ends with one line per ratio (throughput of shoal's path over its anchor; ≥ 0.95 is the target):
#   ratio shoal/database_sql select = 0.97
# then the same ratios of the client's CPU time per operation (benchmark metric cpu-ns/op),
# which a busy neighbour disturbs less than throughput:
#   ratio shoal/database_sql select cpu = 0.98
#
#   bash bench/database.sh
#   ROUNDS=9 BENCHTIME=3s bash bench/database.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
BENCHTIME=${BENCHTIME:-2s}
case "${1:-}" in -h | --help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; "") ;; *) echo "database.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;; esac

out=$(mktemp)
trap 'rm -f "$out" "$out.bin" "$out.round"' EXIT
go test -c -o "$out.bin" ./database >/dev/null
for r in $(seq 1 "$ROUNDS"); do
	echo "round $r/$ROUNDS ($(cut -d' ' -f1-3 /proc/loadavg) load)" >&2
	if ! SHOAL_TEST_SERVICES=required "$out.bin" -test.run '^$' -test.bench '^Benchmark(Postgres|ReplicaRead|SQLiteRead)$' \
		-test.benchtime "$BENCHTIME" -test.benchmem >"$out.round" 2>&1; then
		echo "database.sh: the benchmarks failed in round $r:" >&2
		tail -20 "$out.round" >&2
		exit 1
	fi
	grep -E '^Benchmark(Postgres|ReplicaRead|SQLiteRead)/' "$out.round" | sed -E "s/^Benchmark[A-Za-z]+\\//$r /" >>"$out"
done

# name → median ns/op
declare -A NS
while read -r name; do
	NS[$name]=$(grep " $name-" "$out" | awk '{for (i = 2; i < NF; i++) if ($(i+1) == "ns/op") print $i}' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
done < <(awk '{sub(/-[0-9]+$/, "", $2); print $2}' "$out" | sort -u)

# ratio OURS ANCHOR [UNIT]: the median over the rounds of anchor's UNIT (ns/op) over ours in the
# same round (the two ran back to back, so a neighbour's burst weighs on both)
ratio() {
	awk -v o=" $1-" -v a=" $2-" -v unit="${3:-ns/op}" '
		{v = ""; for (i = 2; i < NF; i++) if ($(i+1) == unit) v = $i}
		v != "" && index($0, o) {ours[$1] = v} v != "" && index($0, a) {anchor[$1] = v}
		END {for (r in ours) if (r in anchor) x[++n] = anchor[r] / ours[r]
		     if (n == 0) exit; asort(x); printf "%.2f", (n % 2) ? x[(n + 1) / 2] : (x[n / 2] + x[n / 2 + 1]) / 2}' "$out"
}

echo
echo "| loop | shoal (database/sql path) | raw database/sql | shoal pgx path | raw pgxpool |"
echo "|---|---:|---:|---:|---:|"
for loop in select insert tx; do
	row="| $loop"
	for impl in shoal database_sql shoal_pgx pgxpool; do
		ns=${NS[$loop/$impl]:-}
		if [ -z "$ns" ]; then row="$row | -"; else row="$row | $(awk -v n="$ns" 'BEGIN {printf "%.0f/s (%.1f µs)", 1e9/n, n/1000}')"; fi
	done
	echo "$row |"
done
rns=${NS[replica/shoal]:-}; ranchor=${NS[replica/dbresolver]:-}
echo
echo "| reads with a replica | shoal (checked, lag-bounded, read-your-writes) | dbresolver-style static split |"
echo "|---|---:|---:|"
fmt() { if [ -z "$1" ]; then echo -; else awk -v n="$1" 'BEGIN {printf "%.0f/s (%.1f µs)", 1e9/n, n/1000}'; fi; }
echo "| SELECT \$1::int | $(fmt "$rns") | $(fmt "$ranchor") |"
echo
echo "| SQLite point SELECT | shoal (read pool) | raw database/sql |"
echo "|---|---:|---:|"
echo "| SELECT v FROM kv WHERE k = \$1 | $(fmt "${NS[sqlite_select/shoal]:-}") | $(fmt "${NS[sqlite_select/database_sql]:-}") |"
echo
echo "per-loop figures: median of $ROUNDS rounds of $BENCHTIME each, 8 callers, pools of 8; $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); PostgreSQL $(psql -XAtc 'SHOW server_version' -h 127.0.0.1 -U postgres test 2>/dev/null || echo '?')"
echo
echo "ratios: median over the rounds of the two runs' ratio within a round"
echo
for loop in select insert tx; do
	for pair in shoal/database_sql shoal_pgx/pgxpool shoal/pgxpool; do
		r=$(ratio "$loop/${pair%/*}" "$loop/${pair#*/}")
		[ -n "$r" ] && echo "ratio $pair $loop = $r"
	done
done
r=$(ratio replica/shoal replica/dbresolver)
[ -n "$r" ] && echo "ratio shoal/dbresolver replica_select = $r"
r=$(ratio sqlite_select/shoal sqlite_select/database_sql)
[ -n "$r" ] && echo "ratio shoal/database_sql sqlite_select = $r"
# The same in client CPU per operation (anchor's over ours: above 1 is cheaper than the anchor).
for loop in select insert tx; do
	for pair in shoal/database_sql shoal_pgx/pgxpool; do
		r=$(ratio "$loop/${pair%/*}" "$loop/${pair#*/}" cpu-ns/op)
		[ -n "$r" ] && echo "ratio $pair $loop cpu = $r"
	done
done
r=$(ratio replica/shoal replica/dbresolver cpu-ns/op)
[ -n "$r" ] && echo "ratio shoal/dbresolver replica_select cpu = $r"
r=$(ratio sqlite_select/shoal sqlite_select/database_sql cpu-ns/op)
[ -n "$r" ] && echo "ratio shoal/database_sql sqlite_select cpu = $r"
exit 0
