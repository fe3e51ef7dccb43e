#!/usr/bin/env bash
# bench/simulate: `grappe simulate` (release build, one core) on lublin_256 and on a generated
# 1,000,000-job trace (100 copies of lublin_256, submit times scaled to an offered load of 0.9),
# each policy; and AccaSim (PyPI `accasim`, EASY and FIFO) on lublin_256 in the same run.
#   bench/simulate/run.sh [--skip-peer]
set -euo pipefail
cd "$(dirname "$0")/../.."
here=bench/simulate
mkdir -p "$here/results"
lublin=${LUBLIN:-../shared/data/traces/lublin_256.swf}
[ -f "$lublin" ] || lublin=/work/shared/data/traces/lublin_256.swf
million=$here/results/lublin_x100_load0.9.swf

scripts/build.sh
[ -s "$million" ] || python3 "$here/make_trace.py" "$lublin" "$million" --copies 100 --load 0.9

field() { python3 -c "import json,sys; d=json.loads(sys.argv[1]); print(d[sys.argv[2]])" "$1" "$2"; }
now() { date +%s.%N; }
row() { # name trace policy json process_seconds
  printf "| %-10s | %-12s | %-12s | %9s | %8.2f | %9.2f | %10.0f | %12.1f | %8.1f | %6.3f |\n" "$1" "$2" "$3" \
    "$(field "$4" jobs)" "$(field "$4" wall_s)" "$5" "$(awk -v j="$(field "$4" jobs)" -v w="$(field "$4" wall_s)" 'BEGIN{print j/w}')" \
    "$(field "$4" mean_wait_s)" "$(field "$4" mean_bounded_slowdown)" "$(field "$4" utilization)"
}

echo "wall s: the replay alone (grappe: after parsing; accasim: its simulate call, which reads the trace)."
echo "process s: the whole command, start to exit. jobs/s from wall s. One core (taskset -c 0)."
echo
echo "| simulator  | trace        | policy       | jobs      | wall s   | process s | jobs/s     | mean wait s  | mean bsld | util   |"
echo "|------------|--------------|--------------|-----------|----------|-----------|------------|--------------|----------|--------|"
for trace in lublin million; do
  file=$lublin; [ $trace = million ] && file=$million
  for policy in fcfs easy conservative; do
    # One core: taskset pins the whole replay to CPU 0.
    t0=$(now)
    out=$(taskset -c 0 target/release/grappe simulate "$file" --policy "$policy" --nodes 256 --json)
    t1=$(now)
    echo "$out" >"$here/results/grappe-$trace-$policy.json"
    row grappe "$trace" "$policy" "$out" "$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')"
  done
done
if [ "${1:-}" != "--skip-peer" ]; then
  "$here/setup_peer.sh" >/dev/null
  for policy in fcfs easy; do
    t0=$(now)
    out=$(taskset -c 0 "$here/.venv/bin/python" "$here/accasim_run.py" "$lublin" --procs 256 --policy "$policy" | tail -n 1)
    t1=$(now)
    echo "$out" >"$here/results/accasim-lublin-$policy.json"
    row accasim lublin "$policy" "$out" "$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')"
  done
fi
