#!/usr/bin/env python3
"""Writes bench/score's data: ROWS rows of classification (5 classes), binary probabilities and
regression, and PAIRS sentence pairs of French-like text, as truth and predictions CSV files of
the scoring contract (`id`, one value column). Predictions are written in a shuffled order
(matching by id does real work), plus one classification file in the truth's order.

Usage: make_data.py DIR ROWS PAIRS
"""

import sys
from pathlib import Path

import numpy as np
import pandas as pd

out, rows, pairs = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
out.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(20261129)
ids = np.arange(rows)
order = rng.permutation(rows)


def write(name, truth, predictions, aligned_too=False):
    pd.DataFrame({"id": ids, "value": truth}).to_csv(out / f"{name}.truth.csv", index=False)
    frame = pd.DataFrame({"id": ids, "value": predictions})
    frame.iloc[order].to_csv(out / f"{name}.predictions.csv", index=False)
    if aligned_too:
        frame.to_csv(out / f"{name}.aligned.csv", index=False)


classes = np.array(["chat", "chien", "oiseau", "poisson", "cheval"])
truth = rng.integers(0, 5, rows)
predictions = np.where(rng.random(rows) < 0.7, truth, rng.integers(0, 5, rows))
write("classes", classes[truth], classes[predictions], aligned_too=True)

binary = rng.integers(0, 2, rows)
probabilities = np.clip(rng.normal(0.35 + 0.3 * binary, 0.2), 0, 1)
write("binary", binary, probabilities)

values = rng.normal(100, 15, rows)
write("regression", values, values + rng.normal(0, 5, rows))

words = (
    "le la les un une des de du et à au dans pour sur avec sans par chat chien maison élève école "
    "été où déjà français très après leçon garçon cœur œuvre naïf l’homme aujourd’hui qu’il c’est "
    "« bonjour » ! ? ; : , . 1,5 3.14 2-3 Paris Lyon week-end porte-monnaie"
).split()
words = np.array(words)
lengths = rng.integers(5, 30, pairs)
references, hypotheses = [], []
for length in lengths:
    reference = rng.choice(words, length)
    hypothesis = reference.copy()
    edits = rng.integers(0, length, rng.integers(0, 6))
    hypothesis[edits] = rng.choice(words, len(edits))
    references.append(" ".join(reference))
    hypotheses.append(" ".join(hypothesis))
text_ids = np.arange(pairs)
pd.DataFrame({"id": text_ids, "value": references}).to_csv(out / "text.truth.csv", index=False)
text_order = rng.permutation(pairs)
pd.DataFrame({"id": text_ids[text_order], "value": np.array(hypotheses, dtype=object)[text_order]}).to_csv(
    out / "text.predictions.csv", index=False
)
print(f"{rows} rows, {pairs} pairs in {out}")
