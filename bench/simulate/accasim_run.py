#!/usr/bin/env python3
"""Run AccaSim (the peer simulator) on an SWF trace and print ONE JSON line.

    .venv/bin/python accasim_run.py TRACE.swf --procs N [--policy easy|fcfs]

Metrics are computed here from AccaSim's per-job submit/start/end times, with
the same definitions Grappe uses:
    wait        = start - submit
    bsld        = max(1, (wait + run) / max(run, 10))
    utilization = sum(run * procs) / (N * makespan)
    makespan    = last end - first submit
wall_s is measured around Simulator.start_simulation() only (no imports, no
trace preparation, no metric computation).

By default the trace is first normalised (outside the timed region) to Grappe's
semantics, because AccaSim's own SWF reading differs (see ACCASIM.md):
    procs    = field 5 if > 0 else field 8      -> written to fields 5 and 8
    estimate = field 9 if > 0 else run time     -> written to field 9
    run      = min(field 4, estimate)           -> written to field 4
    jobs with run < 0, procs <= 0 or procs > N are dropped
and the jobs are sorted by submit time (stable), which AccaSim's reader needs.
--raw feeds the trace to AccaSim unchanged instead.

The machine is N nodes of one core each (--layout nodes, default); --layout
single models it as one node with N cores (same semantics here since every job
unit asks for one core, but AccaSim's allocator then scans 1 node instead of N).
Temporary files (normalised trace, system config, AccaSim outputs) go in a
fresh directory under /tmp, removed afterwards unless --keep-tmp.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time

# AccaSim 1.1.3 does `from collections import Mapping`, removed in Python 3.10.
import collections
import collections.abc

if not hasattr(collections, "Mapping"):
    collections.Mapping = collections.abc.Mapping


def _num(tok):
    try:
        return int(tok)
    except ValueError:
        return int(round(float(tok)))


def normalise(src, dst, procs):
    """Rewrite src into dst with Grappe's semantics (see module doc). Returns (kept, dropped)."""
    rows, kept, dropped = [], 0, 0
    with open(src) as f:
        for line in f:
            s = line.strip()
            if not s or s.startswith(";"):
                continue
            t = s.split()
            if len(t) < 18:
                t += ["-1"] * (18 - len(t))
            run = _num(t[3])
            p = _num(t[4])
            if p <= 0:
                p = _num(t[7])
            est = _num(t[8])
            if est <= 0:
                est = run
            if run < 0 or p <= 0 or p > procs:
                dropped += 1
                continue
            run = min(run, est)
            t[3], t[4], t[7], t[8] = str(run), str(p), str(p), str(est)
            t[5] = "-1"  # avg cpu time: unused, and may be a float
            rows.append((_num(t[1]), kept, t))
            kept += 1
    rows.sort(key=lambda r: (r[0], r[1]))
    with open(dst, "w") as f:
        f.write("; normalised for accasim_run.py\n")
        for _, _, t in rows:
            f.write(" ".join(t[:18]))
            f.write("\n")
    return kept, dropped


def main(argv=None):
    ap = argparse.ArgumentParser(description="Run AccaSim on an SWF trace; print one JSON line.")
    ap.add_argument("trace")
    ap.add_argument("--procs", type=int, required=True, help="machine processors N")
    ap.add_argument("--policy", choices=["easy", "fcfs"], default="easy")
    ap.add_argument("--layout", choices=["nodes", "single"], default="nodes",
                    help="nodes: N single-core nodes (default); single: one N-core node")
    ap.add_argument("--raw", action="store_true",
                    help="feed the trace to AccaSim as is (no normalisation)")
    ap.add_argument("--sched-output", action="store_true",
                    help="also let AccaSim write its own per-job dispatching file (slower)")
    ap.add_argument("--per-job", metavar="CSV",
                    help="also write job,submit,start,end,procs per completed job to CSV")
    ap.add_argument("--keep-tmp", action="store_true")
    a = ap.parse_args(argv)

    tmp = tempfile.mkdtemp(prefix="accasim_run_", dir="/tmp")
    try:
        return run(a, tmp)
    finally:
        if a.keep_tmp:
            print("accasim_run: kept %s" % tmp, file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def run(a, tmp):
    n = a.procs
    # ---- preparation (not timed) ----
    if a.raw:
        workload = os.path.join(tmp, os.path.basename(a.trace))
        shutil.copyfile(a.trace, workload)
        dropped = None
    else:
        workload = os.path.join(tmp, "normalised.swf")
        _, dropped = normalise(a.trace, workload, n)

    if a.layout == "nodes":
        sysconf = {"groups": {"g0": {"core": 1}}, "resources": {"g0": n}}
    else:
        sysconf = {"groups": {"g0": {"core": n}}, "resources": {"g0": 1}}
    sys_config = os.path.join(tmp, "sys_config.json")
    with open(sys_config, "w") as f:
        json.dump(sysconf, f)
    results = os.path.join(tmp, "results")
    os.makedirs(results, exist_ok=True)

    from importlib.metadata import version as _pkg_version
    from accasim.base.simulator_class import Simulator
    from accasim.base.scheduler_class import EASYBackfilling, FirstInFirstOut
    from accasim.base.allocator_class import FirstFit
    from accasim.base.additional_data import AdditionalData

    class Collector(AdditionalData):
        """Records (submit, start, end, procs) of every completed job."""

        def __init__(self, event_manager=None):
            AdditionalData.__init__(self, event_manager)
            self.done = []

        def exec_before_dispatching(self, job_dict, queued_jobs):
            pass

        def exec_after_dispatching(self, job_dict, to_dispatch_jobs, rejected_jobs):
            pass

        def exec_before_submission(self, *args, **kwargs):
            pass

        def exec_after_submission(self, *args, **kwargs):
            pass

        def exec_before_completion(self, *args, **kwargs):
            pass

        def exec_after_completion(self, removed_jobs):
            app = self.done.append
            for e in removed_jobs:
                app((e.queued_time, e.start_time, e.end_time, e.requested_nodes, e.id))

        def stop(self):
            pass

    if a.policy == "easy":
        dispatcher = EASYBackfilling(FirstFit())
    else:
        dispatcher = FirstInFirstOut(FirstFit())

    sim = Simulator(
        workload, sys_config, dispatcher,
        additional_data=[Collector],  # a class: AccaSim instantiates it once its EventManager exists
        RESULTS_FOLDER_PATH=results,
        scheduling_output=a.sched_output,
        pprint_output=False,
        benchmark_output=False,
        statistics_output=False,
        show_statistics=False,
        LOG_LEVEL="WARNING",
    )

    # ---- the timed simulation ----
    t0 = time.perf_counter()
    sim.start_simulation()
    wall = time.perf_counter() - t0

    # ---- metrics (not timed) ----
    collector = sim.mapper.additional_data[0]
    done = collector.done
    jobs = len(done)
    out = {
        "peer": "accasim",
        "version": _pkg_version("accasim"),
        "policy": a.policy,
        "jobs": jobs,
        "wall_s": round(wall, 6),
    }
    if jobs:
        first_submit = min(d[0] for d in done)
        last_end = max(d[2] for d in done)
        makespan = last_end - first_submit
        wait_sum = 0
        bsld_sum = 0.0
        work = 0
        for sub, st, en, p, _ in done:
            w = st - sub
            r = en - st
            wait_sum += w
            bsld_sum += max(1.0, (w + r) / max(r, 10))
            work += r * p
        out.update({
            "mean_wait_s": wait_sum / jobs,
            "mean_bounded_slowdown": bsld_sum / jobs,
            "utilization": work / (n * makespan) if makespan > 0 else None,
            "makespan_s": makespan,
        })
    else:
        out.update({"mean_wait_s": None, "mean_bounded_slowdown": None,
                    "utilization": None, "makespan_s": None})
    if a.per_job:
        with open(a.per_job, "w") as f:
            f.write("job,submit,start,end,procs\n")
            for sub, st, en, p, jid in sorted(done, key=lambda d: int(d[4])):
                f.write("%s,%d,%d,%d,%d\n" % (jid, sub, st, en, p))
    out["rejected"] = sim.rejected_jobs
    out["loaded"] = sim.loaded_jobs
    if dropped is not None:
        out["dropped_by_normalisation"] = dropped
    out["layout"] = a.layout
    out["normalised"] = not a.raw
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
