#!/usr/bin/env python3
"""The peer of bench/assign: OR-Tools' SimpleMinCostFlow (the solver behind OpenReview's
matcher) on the same problem, built as OpenReview's MinMax builds it, plus what our contract adds.

Usage: peer.py PROBLEM.json
Prints one JSON object: seconds to read the JSON, to build the network, to solve; the total
affinity (and in integer micro-units); the pairs assigned; and the units that went through the
zero-affinity hub.

The network: source -> application (capacity k, cost 0); application -> reviewer for each listed
pair (capacity 1, cost -round(affinity * 10^6), exact for six-decimal affinities); reviewer ->
sink (capacity L). The contract also lets any unlisted, non-conflicted pair be assigned at
affinity 0: 10^8 arcs at this scale, more than the peer can hold, so the peer gets them as one hub
node: application -> hub (capacity k, cost 0), hub -> reviewer (capacity L, cost 0). The hub is a
relaxation (through it an application could reach a conflicted or already-assigned reviewer), so
the peer's optimum is at least the contract's; when no unit goes through the hub (reported), the
peer's assignment is an assignment of the contract and both optima are the same problem's.
"""

import json
import sys
import time

from ortools.graph.python import min_cost_flow

started = time.perf_counter()
with open(sys.argv[1]) as f:
    problem = json.load(f)
read_s = time.perf_counter() - started

started = time.perf_counter()
k, load = problem["reviewers_per_application"], problem["max_load"]
apps = {a: i for i, a in enumerate(problem["applications"])}
revs = {r: i for i, r in enumerate(problem["reviewers"])}
n, m = len(apps), len(revs)
source, sink, hub = n + m, n + m + 1, n + m + 2
conflicts = {(apps[a], revs[r]) for a, r in problem["conflicts"]}
flow = min_cost_flow.SimpleMinCostFlow()
tails, heads, caps, costs = [], [], [], []
for a in range(n):
    tails.append(source); heads.append(a); caps.append(k); costs.append(0)
    tails.append(a); heads.append(hub); caps.append(k); costs.append(0)
pair_arcs = []
for a, r, score in problem["affinity"]:
    a, r = apps[a], revs[r]
    if (a, r) in conflicts:
        continue
    pair_arcs.append((a, r, score))
    tails.append(a); heads.append(n + r); caps.append(1); costs.append(-round(score * 1_000_000))
first_pair_arc = 2 * n
for r in range(m):
    tails.append(hub); heads.append(n + r); caps.append(load); costs.append(0)
    tails.append(n + r); heads.append(sink); caps.append(load); costs.append(0)
flow.add_arcs_with_capacity_and_unit_cost(tails, heads, caps, costs)
flow.set_node_supply(source, k * n)
flow.set_node_supply(sink, -k * n)
build_s = time.perf_counter() - started

started = time.perf_counter()
status = flow.solve()
solve_s = time.perf_counter() - started
if status != flow.OPTIMAL:
    print(json.dumps({"status": int(status)}))
    sys.exit(1)
pairs, total, micro = 0, 0.0, 0
for i, (a, r, score) in enumerate(pair_arcs):
    if flow.flow(first_pair_arc + i):
        pairs += 1
        total += score
        micro += round(score * 1_000_000)
hub_units = sum(flow.flow(2 * a + 1) for a in range(n))
print(json.dumps({"read_s": read_s, "build_s": build_s, "solve_s": solve_s, "total_affinity": total,
                  "total_micro": micro, "listed_pairs": pairs, "hub_units": hub_units}))
