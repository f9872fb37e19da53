#!/usr/bin/env python3
"""ab_pairs: before/after timing of two builds on a machine whose pace moves between runs.

A shared VM's speed can change by tens of percent from one second to the next, so two long runs
measured one after the other compare the machine's moods, not the builds. This tool runs the two
builds in pairs of short runs, back to back, alternating which goes first, and reports the
median and interquartile range of the per-pair ratio of CPU time (after / before): both runs of
a pair see about the same pace. Run the same binary against itself to see what the method can
resolve on the machine at the time.

    tests/bench/ab_pairs.py [--pairs N] [--cpu C] BEFORE AFTER -- ARGS...

ARGS are given to both binaries; "{tag}" in them becomes "before" or "after", so that each
writes its own output files (--events /tmp/e.{tag}.json). Output goes to /dev/null. A run that
fails stops the tool with its exit status. Timing thresholds, if any, belong to the caller.
"""
import argparse
import resource
import statistics
import subprocess
import sys


def cpu_seconds(binary, tag, args, cpu):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    argv = ["taskset", "-c", cpu, binary] + [a.replace("{tag}", tag) for a in args]
    rc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
    if rc != 0:
        sys.exit(f"ab_pairs: {' '.join(argv)} exited with {rc}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=60, help="pairs of runs [60]")
    ap.add_argument("--cpu", default="1", help="CPU both run on (taskset) [1]")
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("args", nargs=argparse.REMAINDER, help="-- then the arguments of both")
    a = ap.parse_args()
    args = a.args[1:] if a.args[:1] == ["--"] else a.args
    if a.pairs < 4:
        ap.error("--pairs: at least 4")

    binaries = {"before": a.before, "after": a.after}
    ratios, t_before, t_after = [], [], []
    for i in range(a.pairs):
        order = ("before", "after") if i % 2 else ("after", "before")
        t = {tag: cpu_seconds(binaries[tag], tag, args, a.cpu) for tag in order}
        t_before.append(t["before"])
        t_after.append(t["after"])
        ratios.append(t["after"] / t["before"])
    q = statistics.quantiles(ratios, n=4)
    print(f"{a.pairs} pairs: after/before CPU time median {statistics.median(ratios):.3f}, "
          f"interquartile range {q[0]:.3f} to {q[2]:.3f}; median CPU seconds: before "
          f"{statistics.median(t_before):.4f}, after {statistics.median(t_after):.4f}")


if __name__ == "__main__":
    main()
