#!/usr/bin/env bash
# bench/autoscale.sh — the autoscaler and its simulator against the clock they stand in for.
#
# Nobody offers the HPA's controller outside Kubernetes, so there is no library to race; the
# anchors are the times the work replaces:
#   simulate   a day at 1 s resolution, diurnal to 100k req/s, 500 req/s per instance
#              (BenchmarkRun_Diurnal24h), against the day it simulates
#   decide     one evaluation of the seed's production policy over 50 instances
#              (BenchmarkAutoscaler_Decide), against the default 30 s interval
# and the issue's target for the simulator, "a 24-hour trace at 1 s resolution in seconds",
# taken as 10 s. Lines:
#   ratio simulate/day diurnal 24h = 0.0000046
#   ratio simulate/target_10s diurnal 24h = 0.040
#   ratio decide/interval_30s production 50 instances = 0.0000070
#
#   bash bench/autoscale.sh
#   COUNT=5 bash bench/autoscale.sh
#
# Environment: COUNT (3): runs of each benchmark; the median is reported.
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${COUNT:-3}

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

sim=$(go test -run '^$' -bench 'BenchmarkRun_Diurnal24h$' -benchtime 3x -count "$COUNT" ./autoscale/simulate |
	awk '/^BenchmarkRun_Diurnal24h/ {print $3}' | median)
dec=$(go test -run '^$' -bench 'BenchmarkAutoscaler_Decide$' -count "$COUNT" ./autoscale |
	awk '/^BenchmarkAutoscaler_Decide/ {print $3}' | median)
echo "simulate a day: $(awk -v n="$sim" 'BEGIN {printf "%.3f s", n / 1e9}')"
echo "one evaluation: $(awk -v n="$dec" 'BEGIN {printf "%.0f µs", n / 1e3}')"
awk -v n="$sim" 'BEGIN {printf "ratio simulate/day diurnal 24h = %.7f\n", n / 1e9 / 86400}'
awk -v n="$sim" 'BEGIN {printf "ratio simulate/target_10s diurnal 24h = %.3f\n", n / 1e9 / 10}'
awk -v n="$dec" 'BEGIN {printf "ratio decide/interval_30s production 50 instances = %.7f\n", n / 1e9 / 30}'
