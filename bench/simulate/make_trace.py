#!/usr/bin/env python3
"""Build a long SWF benchmark trace from a short one.

    make_trace.py IN.swf OUT.swf [--copies 100] [--load 0.9] [--procs N]

Writes COPIES copies of IN's jobs laid end to end (copy k is shifted by k
periods, where a period is IN's submit span plus one mean inter-arrival gap,
so copies follow each other without overlapping), renumbers the jobs 1..M,
then scales every submit time about the first one by a single factor so that
the offered load

    sum(run_time * procs) / (machine_procs * (last_submit - first_submit))

is about --load.  Processors of a job: field 5 if > 0 else field 8; run
time: field 4.  Jobs our simulator skips (run < 0, procs <= 0, procs >
machine) are kept in the output but left out of the load sum.  The machine
size is --procs, else the header's MaxProcs, else its MaxNodes.

Header comment lines of IN are kept, with MaxJobs / MaxRecords updated.  The
achieved load is printed to stderr.  Uses only the standard library.
"""
import argparse
import re
import sys


def num(tok):
    """SWF fields are integers, but some traces write floats (e.g. '12.0')."""
    try:
        return int(tok)
    except ValueError:
        return int(round(float(tok)))


def header_int(headers, key):
    pat = re.compile(r"^\s*;\s*" + re.escape(key) + r"\s*:\s*(-?\d+)", re.I)
    for h in headers:
        m = pat.match(h)
        if m:
            return int(m.group(1))
    return None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--copies", type=int, default=100)
    ap.add_argument("--load", type=float, default=0.9)
    ap.add_argument("--procs", type=int, default=None,
                    help="machine processors (default: MaxProcs, else MaxNodes)")
    a = ap.parse_args(argv)
    if a.copies < 1:
        ap.error("--copies must be >= 1")
    if a.load <= 0:
        ap.error("--load must be > 0")

    headers, jobs = [], []  # jobs: list of token lists
    with open(a.input) as f:
        for line in f:
            s = line.strip()
            if not s:
                continue
            if s.startswith(";"):
                headers.append(line.rstrip("\n"))
                continue
            jobs.append(s.split())
    if not jobs:
        sys.exit("make_trace: no jobs in %s" % a.input)

    procs = a.procs or header_int(headers, "MaxProcs") or header_int(headers, "MaxNodes")
    if not procs or procs <= 0:
        sys.exit("make_trace: machine size unknown; pass --procs N")

    # Original job number -> index, for renumbering field 17 (preceding job).
    orig_ids = {}
    for i, t in enumerate(jobs):
        orig_ids.setdefault(t[0], i)

    submits = [num(t[1]) for t in jobs]
    first, last = min(submits), max(submits)
    n = len(jobs)
    span = last - first
    gap = max(1, round(span / (n - 1))) if n > 1 else 1
    period = span + gap

    # Work (processor-seconds) of one copy, counting only jobs that get run.
    work = 0
    for t in jobs:
        run = num(t[3])
        p = num(t[4]) if len(t) > 4 else -1
        if p <= 0 and len(t) > 7:
            p = num(t[7])
        if run >= 0 and 0 < p <= procs:
            work += run * p
    total_work = work * a.copies
    raw_span = (a.copies - 1) * period + span
    if raw_span <= 0 or total_work <= 0:
        sys.exit("make_trace: cannot compute a load (zero span or zero work)")
    raw_load = total_work / (procs * raw_span)
    factor = raw_load / a.load  # new_span = factor * raw_span

    def scaled(t_raw):
        return first + int(round((t_raw - first) * factor))

    out_lines = []
    new_first = new_last = None
    for c in range(a.copies):
        base = c * n
        off = c * period
        for i, t in enumerate(jobs):
            row = list(t)
            row[0] = str(base + i + 1)
            st = scaled(submits[i] + off)
            row[1] = str(st)
            if new_first is None or st < new_first:
                new_first = st
            if new_last is None or st > new_last:
                new_last = st
            if len(row) > 16 and num(row[16]) > 0:
                j = orig_ids.get(row[16])
                row[16] = str(base + j + 1) if j is not None else "-1"
            out_lines.append(" ".join(row))

    m = len(out_lines)
    achieved = total_work / (procs * (new_last - new_first)) if new_last > new_first else float("inf")

    new_headers = []
    for h in headers:
        if re.match(r"^\s*;\s*MaxJobs\s*:", h, re.I):
            h = "; MaxJobs: %d" % m
        elif re.match(r"^\s*;\s*MaxRecords\s*:", h, re.I):
            h = "; MaxRecords: %d" % m
        new_headers.append(h)
    new_headers.append("; Note: %d copies of %s, submit times scaled by %.6f for offered load %.4f on %d procs"
                       % (a.copies, a.input.rsplit("/", 1)[-1], factor, achieved, procs))

    with open(a.output, "w") as f:
        f.write("\n".join(new_headers))
        f.write("\n")
        f.write("\n".join(out_lines))
        f.write("\n")

    print("make_trace: %d jobs, %d procs, scale %.6f, achieved load %.4f (target %.4f)"
          % (m, procs, factor, achieved, a.load), file=sys.stderr)


if __name__ == "__main__":
    main()
