#!/usr/bin/env python3
"""Checks that the docs say what the code does, where they drifted before:

- docs/METRICS.md lists, for sipscope_table_entries and sipscope_table_evictions_total, exactly
  the `table` label values sipscope prints (core/health.c);
- examples/prometheus/README.md's alert table has every alert of sipscope.alerts.yml, with its
  `for` and its severity;
- every rule hook (HOOKS in lua/sipscope/core.lua) is in lua/README.md's hook table and in
  README.md's list of hooks;
- README.md's install paragraph names every capability the systemd unit grants, and says how
  many.

usage: check_docs.py --sipscope BIN --source-dir DIR
Prints one line per failure and a closing "N passed, N failed, N skipped" line.
"""
import argparse
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kitlib  # noqa: E402

CAPTURE = "tests/fixtures/pcap/mix-udp4.pcap"
NUMBERS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five"}


def read(src, path):
    with open(os.path.join(src, path), encoding="utf-8") as f:
        return f.read()


def catalogue_values(text, family, label):
    """The values a catalogue row gives for a label (`label=a\\|b`), or None without any."""
    for line in text.splitlines():
        if line.startswith(f"| `{family}` |"):
            m = re.search(rf"\b{label}=([a-z0-9_\\|]+)", line)
            return set(m.group(1).split("\\|")) if m else None
    return None


def alerts(text):
    """{alert: (for, severity)} of a rule file; `for` is "–" when it has none."""
    out = {}
    for block in re.split(r"\n\s*- alert: ", text)[1:]:
        name = block.split("\n", 1)[0].strip()
        m_for = re.search(r"^\s+for: (\S+)", block, re.M)
        m_sev = re.search(r"^\s+severity: (\S+)", block, re.M)
        out[name] = (m_for.group(1) if m_for else "–", m_sev.group(1) if m_sev else None)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sipscope", required=True)
    ap.add_argument("--source-dir", required=True)
    args = ap.parse_args()
    src = args.source_dir
    check = kitlib.Checks()

    metrics_md = read(src, "docs/METRICS.md")
    expo = kitlib.run_exposition(args.sipscope, os.path.join(src, CAPTURE))
    for family in ("sipscope_table_entries", "sipscope_table_evictions_total"):
        printed = {re.search(r'table="([^"]*)"', key).group(1)
                   for key, _ in expo.series if key.startswith(family + "{")}
        listed = catalogue_values(metrics_md, family, "table")
        check(printed and listed == printed,
              f"docs/METRICS.md lists {family}'s table as {sorted(listed or [])}, sipscope "
              f"prints {sorted(printed)}")

    readme = read(src, "examples/prometheus/README.md")
    rows = {m.group(1): (m.group(2).strip(), m.group(3).strip())
            for m in re.finditer(r"^\| `(\w+)` \|[^\n]*\| ([^|\n]+) \| ([^|\n]+) \|$", readme,
                                 re.M)}
    for name, (for_, severity) in alerts(read(src, "examples/prometheus/sipscope.alerts.yml")).items():
        check(rows.get(name) == (for_, severity),
              f"examples/prometheus/README.md: alert {name} is {rows.get(name)}, the rule file "
              f"says for {for_}, severity {severity}")

    core = read(src, "lua/sipscope/core.lua")
    hooks = re.findall(r'"(on_\w+)"', re.search(r"local HOOKS = \{(.*?)\}", core, re.S).group(1))
    lua_readme = read(src, "lua/README.md")
    top_readme = read(src, "README.md")
    rules_par = top_readme[top_readme.index("## Rules"):]
    for hook in hooks:
        check(re.search(rf"^\|[^|\n]*`{hook}\(", lua_readme, re.M),
              f"lua/README.md's hook table has no {hook}")
        check(f"`{hook}`" in rules_par, f"README.md's list of hooks has no {hook}")

    unit = read(src, "examples/systemd/sipscope.service.in")
    caps = re.search(r"^AmbientCapabilities=(.*)$", unit, re.M).group(1).split()
    install = top_readme[top_readme.index("## Installing and monitoring"):]
    install = install[:install.index("\n## ", 1)]
    for cap in caps:
        check(f"`{cap}`" in install, f"README.md's install paragraph does not name {cap}")
    check(f"{NUMBERS[len(caps)]} capabilities" in install,
          f"README.md's install paragraph does not say \"{NUMBERS[len(caps)]} capabilities\"")

    return check.summary()


if __name__ == "__main__":
    sys.exit(main())
