#!/usr/bin/env python3
"""Checks that the promtool unit tests of examples/prometheus/tests/ cover every rule: each
recording rule is the expression of at least one promql_expr_test, and each alert has at least
one alert_rule_test where it fires and one where it must not. (promtool itself runs the tests;
this only makes sure that a rule added without a test fails CI.)

usage: check_rule_tests.py --source-dir DIR
Prints one line per failure and a closing "N passed, N failed, N skipped" line.
"""
import argparse
import glob
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kitlib  # noqa: E402

RULE_FILES = ["examples/prometheus/sipscope.rules.yml", "examples/prometheus/sipscope.alerts.yml"]
TESTS = "examples/prometheus/tests/*.yml"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--source-dir", required=True)
    args = ap.parse_args()
    check = kitlib.Checks()

    rules = []
    for rf in RULE_FILES:
        rules += kitlib.read_rule_file(os.path.join(args.source_dir, rf))
    tested, alerts = set(), {}
    test_files = sorted(glob.glob(os.path.join(args.source_dir, TESTS)))
    check(test_files, f"no test files match {TESTS}")
    for tf in test_files:
        exprs, file_alerts = kitlib.read_rule_tests(tf)
        tested |= {e.strip() for e in exprs}
        for name, states in file_alerts.items():
            alerts.setdefault(name, set()).update(states)

    names = {r["name"] for r in rules}
    for r in rules:
        if r["kind"] == "record":
            check(r["name"] in tested, f"recording rule {r['name']} is never tested")
        else:
            states = alerts.get(r["name"], set())
            check("firing" in states, f"alert {r['name']} is never tested firing")
            check("silent" in states, f"alert {r['name']} is never tested silent")
    for name in sorted(set(alerts) - names):
        check(False, f"the tests name an alert {name} that no rule file defines")
    print(f"{sum(r['kind'] == 'record' for r in rules)} recording rules, "
          f"{sum(r['kind'] == 'alert' for r in rules)} alerts, {len(test_files)} test files")
    return check.summary()


if __name__ == "__main__":
    kitlib.run(main)
