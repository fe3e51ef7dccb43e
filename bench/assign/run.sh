#!/usr/bin/env bash
# bench/assign: `grappe jury assign` (release) against OR-Tools' SimpleMinCostFlow, same run,
# same problem, one core each (taskset -c 0).
#   bench/assign/run.sh [APPLICATIONS] [REVIEWERS] [LISTED] [CONFLICTS]
# (default 10,000 x 10,000, 200 listed affinities and 3 conflicts per application, k = 3,
# L = 4: NeurIPS scale). make_problem.py writes the problem once into bench/results/assign/;
# OR-Tools 9.15 goes into bench/assign/.venv on first use. Wall time and peak memory of each
# whole process (`/usr/bin/time -v`); the peer's own split (read JSON, build, solve); the
# optimum of each, compared exactly in integer micro-units of affinity.
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-10000} m=${2:-10000} listed=${3:-200} conflicts=${4:-3}
problem=bench/results/assign/$n-$m-$listed-$conflicts.json
venv=bench/assign/.venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q ortools==9.15.6755
fi
cargo build --release --locked -p grappe --bin grappe >/dev/null 2>&1 || cargo build --release --locked -p grappe --bin grappe
mkdir -p bench/results/assign
[ -s "$problem" ] || python3 bench/assign/make_problem.py "$problem" "$n" "$m" "$listed" "$conflicts"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

measure() { # label, command...: wall seconds and peak RSS of the whole process
  local label=$1
  shift
  /usr/bin/time -v -o "$out/$label.time" taskset -c 0 "$@" >"$out/$label.out"
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n = split($2, t, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + t[i]; print s}' "$out/$label.time")
  rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2 / 1024}' "$out/$label.time")
  echo "$wall $rss"
}
read -r ours_s ours_mb < <(measure ours target/release/grappe jury assign --input "$problem" --json)
read -r peer_s peer_mb < <(measure peer "$venv/bin/python" bench/assign/peer.py "$problem")

"$venv/bin/python" - "$problem" "$out" "$ours_s" "$ours_mb" "$peer_s" "$peer_mb" <<'PY'
import json, sys
problem_path, out, ours_s, ours_mb, peer_s, peer_mb = sys.argv[1:]
problem = json.load(open(problem_path))
affinity = {(a, r): s for a, r, s in problem["affinity"]}
conflicts = {tuple(p) for p in problem["conflicts"]}
ours = json.load(open(f"{out}/ours.out"))
peer = json.load(open(f"{out}/peer.out"))
k, load = problem["reviewers_per_application"], problem["max_load"]
per_app, per_reviewer = {}, {}
for a, r in ours["assignment"]:
    assert (a, r) not in conflicts, (a, r)
    per_app[a] = per_app.get(a, 0) + 1
    per_reviewer[r] = per_reviewer.get(r, 0) + 1
assert len(set(map(tuple, ours["assignment"]))) == len(ours["assignment"])
assert len(per_app) == len(problem["applications"]) and set(per_app.values()) == {k}
assert max(per_reviewer.values()) <= load
ours_micro = sum(round(affinity.get((a, r), 0) * 1_000_000) for a, r in ours["assignment"])
ours_zero = sum((a, r) not in affinity for a, r in ours["assignment"])
n, m = len(problem["applications"]), len(problem["reviewers"])
print(f"problem: {n:,} applications x {m:,} reviewers, k = {k}, L = {load}, "
      f"{len(problem['affinity']):,} listed affinities, {len(problem['conflicts']):,} conflicts")
print()
print("| solver | whole process (s) | read JSON (s) | build (s) | solve (s) | peak memory (MB) | total affinity | micro-units | unlisted pairs used |")
print("|---|---|---|---|---|---|---|---|---|")
print(f"| grappe jury assign | {float(ours_s):.2f} | | | | {ours_mb} | {ours['total_affinity']:.6f} | {ours_micro} | {ours_zero} |")
print(f"| OR-Tools SimpleMinCostFlow | {float(peer_s):.2f} | {peer['read_s']:.2f} | {peer['build_s']:.2f} | "
      f"{peer['solve_s']:.2f} | {peer_mb} | {peer['total_affinity']:.6f} | {peer['total_micro']} | {peer['hub_units']} (hub) |")
print()
same = ours_micro == peer["total_micro"] and peer["hub_units"] == 0
print(f"same optimum: {'yes' if same else 'NO'} (ours {ours_micro}, OR-Tools {peer['total_micro']} micro-units; "
      f"hub units {peer['hub_units']})")
PY
