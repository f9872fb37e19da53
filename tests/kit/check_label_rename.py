#!/usr/bin/env python3
"""Checks the recipe of examples/prometheus/README.md ("Operator labels") for an operator label
with another name than `carrier`: its sed command, run as written on a copy of
examples/prometheus/, must leave rules that promtool checks and tests that promtool passes, and
must change nothing in the rules that do not name the label (the engine's alerts: their
expressions, labels and annotations, which say "carrier" only as a word of their own).

usage: check_label_rename.py --source-dir DIR --promtool BIN
Prints one line per failure and a closing "N passed, N failed, N skipped" line.
"""
import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kitlib  # noqa: E402

README = "examples/prometheus/README.md"
KIT = "examples/prometheus"
# The command as the README gives it: sed -i 's/OLD/NEW/g' FILES...
SED = re.compile(r"`sed -i 's/([a-z_]+)/([a-z_]+)/g' ([^`]+)`")
RULE_START = re.compile(r"^\s*- (?:alert|record):\s*(\S+)")


def rule_blocks(path):
    """{rule name: its lines without comments}, for every rule of a rule file."""
    blocks, name = {}, None
    with open(path, encoding="utf-8") as f:
        for line in f.read().split("\n"):
            m = RULE_START.match(line)
            if m:
                name = m.group(1)
                blocks[name] = []
            elif re.match(r"^\s*-?\s*name:", line):
                name = None
            if name is not None and not line.lstrip().startswith("#"):
                blocks[name].append(line)
    return blocks


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--source-dir", required=True)
    ap.add_argument("--promtool", required=True)
    args = ap.parse_args()
    promtool = os.path.abspath(args.promtool)
    check = kitlib.Checks()

    with open(os.path.join(args.source_dir, README), encoding="utf-8") as f:
        m = SED.search(f.read().replace("\n  ", " "))
    if not check(m, f"{README} gives no sed command for renaming the operator label"):
        return check.summary()
    old, new, files = m.group(1), m.group(2), m.group(3).split()

    with tempfile.TemporaryDirectory() as tmp:
        kit = os.path.join(tmp, "prometheus")
        shutil.copytree(os.path.join(args.source_dir, KIT), kit)
        before = {}
        for pattern in files:
            paths = sorted(glob.glob(os.path.join(kit, pattern)))
            check(paths, f"the README's sed names {pattern}, which matches no file")
            for p in paths:
                if p.endswith((".rules.yml", ".alerts.yml")):
                    before[p] = rule_blocks(p)
                with open(p, encoding="utf-8") as f:
                    text = f.read()
                with open(p, "w", encoding="utf-8") as f:
                    f.write(text.replace(old, new))

        for p, blocks in sorted(before.items()):
            after = rule_blocks(p)
            exprs = {r["name"]: r["expr"] for r in kitlib.read_rule_file(p)}
            for name, lines in blocks.items():
                if new in exprs[name.replace(old, new)]:
                    continue  # a rule on the operator label: renamed, as it should be
                check(after.get(name) == lines,
                      f"renaming {old} to {new} changes rule {name} of {os.path.basename(p)}, "
                      f"which does not use the label")

        rule_files = sorted(before)
        tests = sorted(glob.glob(os.path.join(kit, "tests", "*.test.yml")))
        for cmd in (["check", "rules"] + rule_files, ["test", "rules"] + tests):
            r = subprocess.run([promtool] + cmd, cwd=kit, capture_output=True, text=True)
            check(r.returncode == 0,
                  f"after renaming {old} to {new}, promtool {' '.join(cmd[:2])} fails:\n"
                  f"{r.stdout}{r.stderr}")
    return check.summary()


if __name__ == "__main__":
    kitlib.run(main)
