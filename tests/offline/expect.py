#!/usr/bin/env python3
"""Runs `sipscope --read CAPTURE --print [FLAGS]` and checks its exposition against an expect
file of lines `series value` (comments start with '#'). An expect line sums every output series
of that family whose labels include the labels it names: `sip_retransmissions_total 0` means
none at all, `sip_responses_total{code="200"} 6` counts 200s of every method. The value
`absent` asserts that no such series is exported (a ratio with a zero denominator). Each expect
line is one check; prints failures, the run's time and peak RSS, and a closing
"N passed, N failed, N skipped" line. A line `flags: ARGS...` is no check: it adds ARGS (split
as a shell would, without expansion) to the sipscope command line, for values that hold only
under those flags (shortened timers, for example); they go before any given after `--`.

usage: expect.py SIPSCOPE CAPTURE EXPECT_FILE [--runs N] [--transport T] [-- SIPSCOPE_FLAGS...]
  --runs N       run N times and also check that every run prints byte-identical output
  --transport T  udp4, udp6, tcp4 or tcp6: one more check, that every SIP message was counted
                 on this transport and IP version: sipscope_sip_messages_total{transport, ip}
                 equals the expect file's sipscope_sip_messages_total (which sums over labels)
"""
import re
import resource
import shlex
import subprocess
import sys
import time


LABELS = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def split_series(key):
    name, _, rest = key.partition("{")
    return name, dict(LABELS.findall(rest))


def parse_exposition(text):
    series = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        name, labels = split_series(key)
        series.append((name, labels, float(value)))
    return series


def series_values(text):
    """An exposition's samples as {"name{labels}": value}, the series written as exposed."""
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            values[key] = float(value)
    return values


def series_set(text):
    """An exposition's samples as {(name, frozenset of (label, value)): value}: a series'
    identity whatever the order its labels are written in."""
    values = {}
    for name, labels, value in parse_exposition(text):
        values[(name, frozenset(labels.items()))] = value
    return values


def scrape(binary, capture, args):
    """series_set of `BINARY --read CAPTURE --print ARGS...`; raises if it exits non-zero."""
    run = subprocess.run([binary, "--read", capture, "--print", *args], capture_output=True,
                         text=True)
    if run.returncode != 0:
        raise RuntimeError(f"sipscope exited {run.returncode}: {run.stderr.strip()}")
    return series_set(run.stdout)


def series_name(key):
    """A series_set key written back as name{label="value",...}, labels sorted."""
    name, labels = key
    return name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels)) + "}"


def lookup(series, key):
    """Sum of matching series, or None when none matches."""
    name, want = split_series(key)
    found = [v for n, labels, v in series
             if n == name and all(labels.get(k) == val for k, val in want.items())]
    return sum(found) if found else None


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
    transport = None
    if "--transport" in args:
        i = args.index("--transport")
        transport = args[i + 1]
        del args[i:i + 2]
        if not re.fullmatch(r"(udp|tcp)[46]", transport):
            print(f"--transport {transport}: not udp4, udp6, tcp4 or tcp6")
            return 2
    binary, capture, expect_file = args
    lines = [line.strip() for line in open(expect_file)]
    lines = [line for line in lines if line and not line.startswith("#")]
    flags = [arg for line in lines if line.startswith("flags:")
             for arg in shlex.split(line[len("flags:"):])]
    lines = [line for line in lines if not line.startswith("flags:")]
    extra = flags + extra
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
    if transport:
        total = [line.rpartition(" ")[2] for line in lines
                 if line.rpartition(" ")[0] == "sipscope_sip_messages_total"]
        if len(total) != 1:
            print(f"--transport needs one sipscope_sip_messages_total line in {expect_file}")
            return 2
        lines.append(f'sipscope_sip_messages_total{{transport="{transport[:3]}",'
                     f'ip="{transport[3]}"}} {total[0]}')
    for line in lines:
        key, _, want = line.rpartition(" ")
        got = lookup(values, key)
        if want == "absent":
            ok = got is None
        else:
            ok = float(want) == (got or 0.0)
        if ok:
            passed += 1
        else:
            failed += 1
            print(f"FAIL {key}: expected {want}, got {'absent' if got is None else f'{got:g}'}")
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
