#!/usr/bin/env bash
# bench/score: `grappe score` (release build) against pandas + scikit-learn / sacrebleu, in the
# same run, one core each (taskset -c 0).
#   bench/score/run.sh [ROWS] [PAIRS]     (default 10,000,000 rows, 100,000 sentence pairs)
#   BENCH_SCORE_METRICS="r2 bleu" bench/score/run.sh     (only these metrics)
# (a) end to end, from the contract's two CSV files to the value: the whole `grappe score`
#     process, against pandas reading both files, merging on `id`, and the library's call
#     (the peer's interpreter start and imports not counted);
# (b) the metric alone on data already in memory and matched: `grappe_eval::arrays` (the
#     `inmemory` example) against scikit-learn on numpy arrays (sacrebleu on lists of strings).
# Data: make_data.py writes it once into bench/results/score/ (about 1.4 GB, not committed).
set -euo pipefail
cd "$(dirname "$0")/../.."
rows=${1:-10000000}
pairs=${2:-100000}
data=bench/results/score/$rows-$pairs
python=${XDG_CACHE_HOME:-$HOME/.cache}/grappe/python/bin/python
[ -x "$python" ] || scripts/install-test-deps.sh
cargo build --release --locked -p grappe --bin grappe >/dev/null 2>&1 || cargo build --release --locked -p grappe --bin grappe
cargo build --release --locked -p grappe-eval --example inmemory >/dev/null 2>&1 ||
  cargo build --release --locked -p grappe-eval --example inmemory
[ -s "$data/text.predictions.csv" ] || "$python" bench/score/make_data.py "$data" "$rows" "$pairs" >&2

now() { date +%s.%N; }
field() { "$python" -c "import json,sys; print(repr(float(json.loads(sys.argv[1])[sys.argv[2]])))" "$1" "$2"; }
# metric, rows, ours s, peer s, ratio, value ours, value peer
row() {
  "$python" - "$@" <<'PY'
import sys
metric, files, rows, ours, peer, ours_value, peer_value = sys.argv[1:]
ours, peer, a, b = float(ours), float(peer), float(ours_value), float(peer_value)
difference = abs(a - b) / max(abs(b), 1e-300)
equal = "yes" if a == b else (f"yes ({difference:.0e} rel.)" if difference <= 1e-9 else f"NO ({a!r} vs {b!r})")
print(f"| {metric} | {files} | {int(rows):,} | {ours:.3f} | {peer:.3f} | {peer / ours:.1f} | {equal} | {a!r} |")
PY
}

# metric, file stem, predictions file, rows
cases=(
  "accuracy classes classes.predictions $rows"
  "f1_macro classes classes.predictions $rows"
  "f1_macro classes classes.aligned $rows"
  "roc_auc binary binary.predictions $rows"
  "log_loss binary binary.predictions $rows"
  "rmse regression regression.predictions $rows"
  "r2 regression regression.predictions $rows"
  "bleu text text.predictions $pairs"
  "chrf text text.predictions $pairs"
)
echo "## (a) end to end: CSV files to the value"
echo
echo "| metric | predictions | rows | ours (s) | peer (s) | peer/ours | values equal? | value |"
echo "|---|---|---|---|---|---|---|---|"
only=" ${BENCH_SCORE_METRICS:-${cases[*]}} "
for case in "${cases[@]}"; do
  read -r metric stem predictions count <<<"$case"
  [[ $only == *" $metric "* ]] || continue
  start=$(now)
  ours=$(taskset -c 0 target/release/grappe score --metric "$metric" --truth "$data/$stem.truth.csv" \
    --predictions "$data/$predictions.csv" --json)
  end=$(now)
  peer=$(taskset -c 0 "$python" bench/score/peer.py e2e "$metric" "$data/$stem.truth.csv" "$data/$predictions.csv")
  row "$metric" "$predictions" "$count" "$(awk -v a="$start" -v b="$end" 'BEGIN{print b-a}')" \
    "$(field "$peer" seconds)" "$(field "$ours" value)" "$(field "$peer" value)"
done
echo
echo "## (b) the metric alone, on data in memory"
echo
echo "| metric | predictions | rows | ours (s) | peer (s) | peer/ours | values equal? | value |"
echo "|---|---|---|---|---|---|---|---|"
for case in "${cases[@]}"; do
  read -r metric stem predictions count <<<"$case"
  [ "$predictions" = classes.aligned ] && continue
  [[ $only == *" $metric "* ]] || continue
  ours=$(taskset -c 0 target/release/examples/inmemory "$metric" "$data/$stem.truth.csv" "$data/$predictions.csv")
  peer=$(taskset -c 0 "$python" bench/score/peer.py memory "$metric" "$data/$stem.truth.csv" "$data/$predictions.csv")
  row "$metric" "$predictions" "$count" "$(field "$ours" seconds)" "$(field "$peer" seconds)" \
    "$(field "$ours" value)" "$(field "$peer" value)"
done
