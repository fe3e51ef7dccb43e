#!/usr/bin/env python3
"""Extracts the demo dataset `communes-france` from the npm package
@etalab/decoupage-administratif@6.0.0 (data: Licence Ouverte / Etalab 2.0, COG 2026 of INSEE;
code: MIT), which the npm registry ships: run `npm pack @etalab/decoupage-administratif@6.0.0`,
unpack it, then `scripts/demo-data/communes.py package/data/communes.json demo/datasets/communes-france`.

One row per current commune; the split (train 80 %, validation 10 %, test 10 %) is fixed by a
hash of the INSEE code, so that it never changes and no commune is in two splits.
"""
import csv
import hashlib
import json
import sys
from pathlib import Path

source, target = Path(sys.argv[1]), Path(sys.argv[2])
communes = [c for c in json.loads(source.read_text()) if c.get("type") == "commune-actuelle"]
communes.sort(key=lambda c: c["code"])
columns = ["code", "nom", "departement", "region", "siren", "codes_postaux", "population"]
splits = {"train": [], "validation": [], "test": []}
for commune in communes:
    bucket = int(hashlib.sha256(commune["code"].encode()).hexdigest(), 16) % 10
    split = "test" if bucket == 0 else "validation" if bucket == 1 else "train"
    splits[split].append(commune)
target.mkdir(parents=True, exist_ok=True)
for split, rows in splits.items():
    with open(target / f"{split}.csv", "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        for c in rows:
            writer.writerow([c["code"], c["nom"], c["departement"], c["region"], c.get("siren", ""),
                             " ".join(c.get("codesPostaux", [])), c.get("population", "")])
    print(split, len(rows))
