#!/usr/bin/env python3
"""The peer of bench/score: pandas reads both files and merges them on `id`, then scikit-learn
or sacrebleu computes the metric.

Usage: peer.py e2e|memory METRIC TRUTH PREDICTIONS
Prints one JSON object: the value and the seconds timed. `e2e`: from reading the files to the
value (the interpreter's start and the imports are not timed). `memory`: the metric call alone,
on numpy arrays (labels as integer codes; lists of strings for text) already loaded and matched.
"""

import json
import sys
import time
import warnings

import numpy as np
import pandas as pd
import sacrebleu
from sklearn import metrics

warnings.simplefilter("ignore")

METRICS = {
    "accuracy": metrics.accuracy_score,
    "f1_macro": lambda t, p: metrics.f1_score(t, p, average="macro"),
    "f1_micro": lambda t, p: metrics.f1_score(t, p, average="micro"),
    "precision_macro": lambda t, p: metrics.precision_score(t, p, average="macro"),
    "recall_macro": lambda t, p: metrics.recall_score(t, p, average="macro"),
    "mae": metrics.mean_absolute_error,
    "rmse": metrics.root_mean_squared_error,
    "r2": metrics.r2_score,
    "roc_auc": metrics.roc_auc_score,
    "log_loss": metrics.log_loss,
    "bleu": lambda refs, hyps: sacrebleu.corpus_bleu(list(hyps), [list(refs)]).score,
    "chrf": lambda refs, hyps: sacrebleu.corpus_chrf(list(hyps), [list(refs)]).score,
    "exact_match": lambda refs, hyps: float(np.mean(np.asarray(refs, dtype=object) == np.asarray(hyps, dtype=object))),
}
TEXT = {"bleu", "chrf", "exact_match"}
CLASSES = {"accuracy", "f1_macro", "f1_micro", "precision_macro", "recall_macro"}


def load(metric, truth_path, predictions_path):
    options = {"keep_default_na": False, "dtype": {"value": str}} if metric in TEXT else {}
    truth = pd.read_csv(truth_path, **options)
    predictions = pd.read_csv(predictions_path, **options)
    merged = truth.merge(predictions, on="id", how="left", suffixes=("_truth", "_prediction"), validate="one_to_one")
    return merged["value_truth"].to_numpy(), merged["value_prediction"].to_numpy()


def main():
    mode, metric, truth_path, predictions_path = sys.argv[1:5]
    compute = METRICS[metric]
    if mode == "e2e":
        start = time.perf_counter()
        value = compute(*load(metric, truth_path, predictions_path))
        seconds = time.perf_counter() - start
    else:
        truth, predictions = load(metric, truth_path, predictions_path)
        if metric in CLASSES:
            # Integer codes, as grappe-eval's arrays hold: scikit-learn on strings sorts them.
            codes, _ = pd.factorize(np.concatenate([truth, predictions]))
            truth, predictions = codes[: len(truth)], codes[len(truth) :]
        start = time.perf_counter()
        value = compute(truth, predictions)
        seconds = time.perf_counter() - start
    print(json.dumps({"value": float(value), "seconds": seconds}))


main()
