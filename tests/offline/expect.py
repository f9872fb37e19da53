#!/usr/bin/env python3
"""Runs `sipscope --read CAPTURE --print [FLAGS]` and checks its exposition against an expect
file of lines `series value` (comments start with '#'). A series written without labels sums
every series of that family (`sip_retransmissions_total 0` means none at all). Each expect line
is one check; prints failures, the run's time and peak RSS, and a closing
"N passed, N failed, N skipped" line.

usage: expect.py SIPSCOPE CAPTURE EXPECT_FILE [--runs N] [-- SIPSCOPE_FLAGS...]
  --runs N  run N times and also check that every run prints byte-identical output
"""
import resource
import subprocess
import sys
import time


def parse_exposition(text):
    values = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        values[key] = float(value)
    return values


def lookup(values, key):
    if key in values:
        return values[key]
    if "{" not in key:
        return sum(v for k, v in values.items() if k.startswith(key + "{"))
    return 0.0


def main():
    args = sys.argv[1:]
    extra = []
    if "--" in args:
        extra = args[args.index("--") + 1:]
        args = args[:args.index("--")]
    runs = 1
    if "--runs" in args:
        i = args.index("--runs")
        runs = int(args[i + 1])
        del args[i:i + 2]
    binary, capture, expect_file = args
    outputs = []
    for _ in range(runs):
        start = time.monotonic()
        run = subprocess.run([binary, "--read", capture, "--print", *extra], capture_output=True)
        elapsed = time.monotonic() - start
        if run.returncode != 0:
            print(f"sipscope exited {run.returncode}: {run.stderr.decode(errors='replace')}")
            print("0 passed, 1 failed, 0 skipped")
            return 1
        outputs.append(run.stdout)
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(f"# {capture}: {elapsed:.2f} s, peak RSS {peak_kib / 1024:.1f} MiB")
    values = parse_exposition(outputs[0].decode())
    passed = failed = 0
    for line in open(expect_file):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, _, want = line.rpartition(" ")
        got = lookup(values, key)
        if got == float(want):
            passed += 1
        else:
            failed += 1
            print(f"FAIL {key}: expected {want}, got {got:g}")
    if runs > 1:
        if all(o == outputs[0] for o in outputs):
            passed += 1
        else:
            failed += 1
            print(f"FAIL output differs between {runs} runs of the same capture")
    print(f"{passed} passed, {failed} failed, 0 skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
