#!/usr/bin/env bash
# bench/jobs.sh — package jobs against River v0.51.2 on this machine's PostgreSQL
# (127.0.0.1:5432, database test; every system works in a schema of its own, dropped after),
# and against River's SQLite driver (riversqlite) on a file each. The program is
# bench/compare/jobs (its own module, so the main module does not depend on River).
#
#   insert-many   EnqueueMany vs InsertMany, N jobs in batches of 5,000
#   insert-one    single Enqueue vs Insert, sequential: p50 and p99 latency
#   burn-down     N no-op jobs inserted first, then worked; a job counts once its completion is
#                 recorded (both polled by COUNT of completed rows)
#   continuous    4 producers insert batches of 500 while the workers work (worked jobs/s)
# River runs at its defaults (100 workers, 100ms fetch cooldown, 1s poll) and at its best
# settings here (2,000 workers, 1ms cooldown); shoal with 2,000 workers (1ms cooldown, its
# default). Pools of 20 connections each. It ends with one line per ratio:
#   ratio shoal/river-best burn-down worked jobs/s (postgres) = 1.30
#
#   bash bench/jobs.sh
#   N=50000 CONTINUOUS=5s bash bench/jobs.sh
set -euo pipefail
cd "$(dirname "$0")/compare"
N=${N:-200000}
SQLITE_N=${SQLITE_N:-20000}
CONTINUOUS=${CONTINUOUS:-10s}
go build -o /tmp/shoal-jobs-bench ./jobs
/tmp/shoal-jobs-bench -n "$N" -sqlite-n "$SQLITE_N" -continuous "$CONTINUOUS" "$@"
