#!/usr/bin/env python3
"""Writes a NeurIPS-scale problem in the `grappe jury assign` contract.

Usage: make_problem.py OUT.json [APPLICATIONS] [REVIEWERS] [LISTED] [CONFLICTS] [SEED]
(defaults 10,000, 10,000, 200, 3, 1). Each application lists LISTED distinct random reviewers
with an affinity drawn uniformly from 0.000001 to 1.000000 (six decimals, so that an affinity
times 10^6 is an exact integer, for the peer), and CONFLICTS random other reviewers as conflicts;
k = 3, L = 4. Reviewers have a popularity (a few are wanted by many), so that loads collide.
"""

import json
import random
import sys

out = sys.argv[1]
n, m, listed, conflicts, seed = (int(x) for x in (sys.argv[2:] + ["10000", "10000", "200", "3", "1"][len(sys.argv) - 2 :]))
rng = random.Random(seed)
# Popularity: half the affinity mass comes from the reviewer (a senior expert is close to many
# applications), half from the pair.
popularity = [rng.random() for _ in range(m)]
affinity, conflict = [], []
for a in range(n):
    chosen = rng.sample(range(m), listed + conflicts)
    for r in chosen[:listed]:
        micro = 1 + int(999_999 * (0.5 * popularity[r] + 0.5 * rng.random()))
        affinity.append(f'["A{a}","R{r}",{micro / 1e6:.6f}]')
    for r in chosen[listed:]:
        conflict.append(f'["A{a}","R{r}"]')
with open(out, "w") as f:
    f.write('{"reviewers_per_application": 3, "max_load": 4,\n')
    f.write('"applications": [' + ",".join(f'"A{a}"' for a in range(n)) + "],\n")
    f.write('"reviewers": [' + ",".join(f'"R{r}"' for r in range(m)) + "],\n")
    f.write('"affinity": [' + ",\n".join(affinity) + "],\n")
    f.write('"conflicts": [' + ",".join(conflict) + "]}\n")
