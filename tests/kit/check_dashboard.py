#!/usr/bin/env python3
"""Checks that the Grafana dashboard and the Prometheus rules of examples/ only query metrics
that exist: every metric name in every PromQL expression (dashboard panels and variables,
recording and alert rules; a recording rule's name stands for the metrics of its definition)
must be a family of the catalogue, docs/METRICS.md, and must be present in what sipscope
prints for a capture with traffic, tests/fixtures/pcap/mix-udp4.pcap. A histogram is queried
through its _bucket, _sum and _count samples, and each of those must be there.

Some families are created on first use and mix-udp4 never uses them. They are listed in LAZY
below with the reason, and with a capture that shows them where one exists; the check runs
sipscope on that capture too. The list is kept exact: an entry that nothing queries, or that
mix-udp4 does show, is an error.

Also: the dashboard's structure (data source and job/instance/operator-label variables, every
target on the data source variable, unique panel ids, heatmaps over _bucket rates), Grafana
variables in queries are all defined, and, with --promtool:
- every dashboard query is valid PromQL (promtool parses it as a recording rule, variables
  replaced by sample values), and the rule files hold as many rules as promtool finds;
- every dashboard query and recording rule returns data, without NaN, on the metrics sipscope
  printed for these captures (promtool evaluates it over ten minutes of those values, one
  instance per capture): a wrong label name or value in a query shows here. Queries of
  families no offline run shows, and alerts (silent on healthy traffic), are left out.

usage: check_dashboard.py --sipscope BIN --source-dir DIR [--promtool BIN]
Prints one line per failure and a closing "N passed, N failed, N skipped" line.
"""
import argparse
import json
import os
import re
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kitlib  # noqa: E402

DASHBOARD = "examples/grafana/sipscope.json"
RULE_FILES = ["examples/prometheus/sipscope.rules.yml", "examples/prometheus/sipscope.alerts.yml"]
CATALOGUE = "docs/METRICS.md"
CAPTURE = "tests/fixtures/pcap/mix-udp4.pcap"

# Queried families that mix-udp4.pcap does not show. Each entry: (how to show it, reason).
# How: a committed capture (tests/fixtures/pcap/NAME) where the family must appear; "cut": a
# copy of mix-udp4 cut short in its last packet; "snap": a copy whose first packet was captured
# shorter than it was on the wire; "dup": a copy whose first packet is there twice, the second
# time with a VLAN tag (the parent's view), read with --dedup-window; None: no offline run can
# show it.
LAZY = {
    "sipscope_parse_errors_total": (
        "cut", "mix-udp4 has no malformed input; a capture file cut short counts an l2 error"),
    "sipscope_capture_truncated_total": (
        "snap", "every packet of mix-udp4 was captured whole"),
    "sipscope_capture_duplicates_total": (
        "dup", "no packet of mix-udp4 was captured twice"),
    "sipscope_capture_drops_total": (
        None, "only the live capture's ring buffer drops packets"),
    "sipscope_capture_interface_up": (
        None, "only live, for the interfaces named with --interface (e2e_live_iface_state)"),
    "sipscope_series_overflow_total": (
        None, "only once a family reaches its series cap (10,000 label sets for built-ins)"),
    "sipscope_label_overflow_total": (
        None, "only with rules whose operator label takes more values than its max_values"),
    "sipscope_rule_errors_total": (
        None, "only with --rules, and a rule that fails"),
    "sipscope_rule_disabled": (
        None, "only with --rules, and a rule its breaker disabled"),
    "sipscope_rules_last_reload_success": (
        None, "only with --rules"),
    "sipscope_events_errors_total": (
        None, "only with --events, and a line that could not be written"),
    "sipscope_lua_memory_bytes": (
        None, "only with --rules"),
    "process_cpu_seconds_total": (
        None, "--print leaves process_* out, so that its output is reproducible"),
    "process_resident_memory_bytes": (
        None, "--print leaves process_* out, so that its output is reproducible"),
}

# Series that Prometheus makes itself, not sipscope.
PROMETHEUS_SERIES = {"up": "the scrape's own health, added by Prometheus to every target"}

# Sample values for the dashboard's variables when its queries are checked as PromQL.
VARIABLE_SAMPLES = {"job": ".*", "instance": ".*", "oplabel": "carrier", "opvalue": ".*"}
GRAFANA_BUILTINS = {"__rate_interval": "5m", "__interval": "1m", "__range": "1h"}

HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def dashboard_queries(dash):
    """(where, PromQL) for every panel target and every query variable of the dashboard."""
    out = []

    def walk_panels(panels):
        for p in panels:
            for t in p.get("targets", []):
                if "expr" in t:
                    out.append((f"panel {p.get('id')} '{p.get('title')}' {t.get('refId')}",
                                t["expr"]))
            walk_panels(p.get("panels", []))

    walk_panels(dash.get("panels", []))
    for v in dash.get("templating", {}).get("list", []):
        if v.get("type") != "query":
            continue
        q = v.get("query")
        q = q.get("query", "") if isinstance(q, dict) else (q or "")
        m = re.fullmatch(r"\s*label_values\((.*),\s*([$\w]+)\s*\)\s*", q, re.DOTALL)
        if m:
            q = m.group(1)
        else:
            m = re.fullmatch(r"\s*query_result\((.*)\)\s*", q, re.DOTALL)
            if not m:
                raise kitlib.KitError(f"variable {v.get('name')}: unsupported query {q!r}")
            q = m.group(1)
        out.append((f"variable ${v.get('name')}", q))
    return out


def substitute(expr, defined):
    """The expression with Grafana variables replaced by sample values; also returns the names
    of variables that are neither defined by the dashboard nor Grafana's own."""
    unknown = set()

    def repl(m):
        name = m.group(1) or m.group(2)
        if name.isdigit():
            return m.group(0)  # a regex group in label_replace: Grafana leaves it alone
        if name in GRAFANA_BUILTINS:
            return GRAFANA_BUILTINS[name]
        if name in defined:
            return VARIABLE_SAMPLES.get(name, ".*")
        unknown.add(name)
        return m.group(0)

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", repl, expr), unknown


def check_structure(dash, report):
    variables = {v.get("name"): v for v in dash.get("templating", {}).get("list", [])}
    report.check(isinstance(dash.get("schemaVersion"), int) and dash["schemaVersion"] >= 36,
                 "dashboard: schemaVersion missing or older than 36")
    report.check(variables.get("datasource", {}).get("type") == "datasource" and
                 variables["datasource"].get("query") == "prometheus",
                 "dashboard: no Prometheus data source variable $datasource")
    for name in ("job", "instance", "opvalue"):
        report.check(variables.get(name, {}).get("type") == "query",
                     f"dashboard: no query variable ${name}")
    report.check(variables.get("oplabel", {}).get("type") in ("textbox", "custom", "constant"),
                 "dashboard: no operator label variable $oplabel")
    ids = []

    def walk(panels):
        for p in panels:
            ids.append(p.get("id"))
            where = f"panel {p.get('id')} '{p.get('title')}'"
            if p.get("type") != "row":
                report.check(p.get("datasource", {}).get("uid") == "${datasource}",
                             f"{where}: not on the $datasource variable")
            for t in p.get("targets", []):
                report.check(t.get("datasource", {}).get("uid") == "${datasource}",
                             f"{where} {t.get('refId')}: target not on the $datasource variable")
            if p.get("type") == "heatmap":
                for t in p.get("targets", []):
                    report.check(t.get("format") == "heatmap" and
                                 re.search(r"rate\(\w+_bucket\{", t.get("expr", "")) and
                                 re.match(r"\s*sum by \(le\)", t.get("expr", "")),
                                 f"{where}: a heatmap must sum by (le) the rate of _bucket "
                                 f"series, in heatmap format")
            walk(p.get("panels", []))

    walk(dash.get("panels", []))
    report.check(len(ids) == len(set(ids)) and None not in ids, "dashboard: panel ids not unique")
    return set(variables)


def resolve(name, records, seen=()):
    """The raw metric names behind a name: itself, or what its recording rule reads."""
    if name not in records:
        return {name}
    if name in seen:
        raise kitlib.KitError(f"recording rule {name} depends on itself")
    out = set()
    for n in kitlib.metric_names(records[name]):
        out |= resolve(n, records, seen + (name,))
    return out


def family_of(sample, families, prefixes):
    """The catalogue family a sample name belongs to, or None."""
    if sample in families or sample.startswith(tuple(prefixes)):
        return sample
    for suffix in HISTOGRAM_SUFFIXES:
        if sample.endswith(suffix) and sample[: -len(suffix)] in families:
            return sample[: -len(suffix)]
    return None


def snap_first_packet(src, dst, keep):
    """Copies a pcap file, keeping only the first `keep` bytes of its first packet (its wire
    length stays), as a capture with a snap length would have."""
    with open(src, "rb") as f:
        data = f.read()
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        endian = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        endian = ">"
    else:
        raise kitlib.KitError(f"{src}: not a pcap file")
    sec, frac, incl, orig = struct.unpack(endian + "IIII", data[24:40])
    if incl <= keep:
        raise kitlib.KitError(f"{src}: first packet has only {incl} bytes")
    head = data[:24] + struct.pack(endian + "IIII", sec, frac, keep, orig)
    with open(dst, "wb") as f:
        f.write(head + data[40:40 + keep] + data[40 + incl:])


def copy_first_packet_tagged(src, dst):
    """Copies the Ethernet pcap src to dst with its first packet there again right after it,
    with a VLAN tag (100) after its MAC addresses: the same packet as the VLAN's parent shows
    it."""
    with open(src, "rb") as f:
        data = f.read()
    endian = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    sec, frac, incl, orig = struct.unpack(endian + "IIII", data[24:40])
    frame = data[40:40 + incl]
    tagged = frame[:12] + struct.pack("!HH", 0x8100, 100) + frame[12:]
    copy = struct.pack(endian + "IIII", sec, frac, incl + 4, orig + 4) + tagged
    with open(dst, "wb") as f:
        f.write(data[:40 + incl] + copy + data[40 + incl:])


def show_lazy(how, args, tmp):
    """What sipscope prints for the capture that shows a lazy family."""
    capture = os.path.join(args.source_dir, CAPTURE)
    if how == "cut":
        path = os.path.join(tmp, "cut.pcap")
        with open(capture, "rb") as f:
            data = f.read()
        with open(path, "wb") as f:
            f.write(data[:-10])
        # Exit status 3: the capture was cut short; what was read is still printed.
        return kitlib.run_exposition(args.sipscope, path, ok_codes=(3,))
    if how == "dup":
        path = os.path.join(tmp, "dup.pcap")
        copy_first_packet_tagged(capture, path)
        return kitlib.run_exposition(args.sipscope, path, extra=("--dedup-window", "10ms"))
    if how == "snap":
        path = os.path.join(tmp, "snap.pcap")
        snap_first_packet(capture, path, 64)
        return kitlib.run_exposition(args.sipscope, path)
    return kitlib.run_exposition(
        args.sipscope, os.path.join(args.source_dir, "tests/fixtures/pcap", how))


def promtool_check(promtool, exprs, tmp, report):
    """Checks dashboard queries as PromQL: promtool parses each as a recording rule."""
    path = os.path.join(tmp, "dashboard_queries.yml")
    with open(path, "w", encoding="utf-8") as f:
        f.write("groups:\n  - name: dashboard\n    rules:\n")
        for i, (_, expr) in enumerate(exprs):
            f.write(f"      - record: dashboard:query_{i}\n        expr: |\n")
            for line in expr.split("\n"):
                f.write(f"          {line}\n")
    proc = subprocess.run([promtool, "check", "rules", path], capture_output=True, text=True)
    report.check(proc.returncode == 0,
                 "dashboard queries are not valid PromQL:\n" + proc.stdout + proc.stderr)


def _number(v):
    """A float in the fixed notation of promtool's series values."""
    text = f"{v:.15f}".rstrip("0").rstrip(".")
    return text or "0"


def promtool_returns_data(promtool, src, expositions, queries, tmp, report):
    """Every query returns at least one series, and no NaN, on the metrics of the captures:
    promtool evaluates it with the recording rules loaded, over ten minutes in which every
    counter and histogram grows from 0 to the value sipscope printed and every gauge stays at
    its value (one instance per capture)."""
    path = os.path.join(tmp, "returns_data.test.yml")
    lines = ["rule_files:"]
    lines += [f"  - {os.path.abspath(os.path.join(src, rf))}" for rf in RULE_FILES]
    lines += ["evaluation_interval: 1m", "tests:", "  - interval: 1m", "    input_series:"]
    for instance, expo in expositions:
        for key, value in expo.series:
            name, brace, rest = key.partition("{")
            labels = f'job="sipscope",instance="{instance}"' + ("," + rest[:-1] if brace else "")
            if expo.family_type(name) in ("counter", "histogram"):
                values = f"0+{_number(value / 10)}x10"
            else:
                values = f"{_number(value)}x10"
            lines += [f"      - series: '{name}{{{labels}}}'", f"        values: '{values}'"]
    lines.append("    promql_expr_test:")
    wrapped = {}
    for where, expr in queries:
        one_line = " ".join(expr.split())
        test = f"count(({one_line}) == ({one_line})) >= bool 1"
        wrapped[test] = where
        lines += [f"      # {where}",
                  f"      - expr: '{test}'",
                  "        eval_time: 10m",
                  "        exp_samples:",
                  "          - labels: '{}'",
                  "            value: 1"]
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    proc = subprocess.run([promtool, "test", "rules", path], capture_output=True, text=True)
    # promtool names a failed expression in Go's quoted form, which JSON reads.
    failures = [json.loads(q) for q in
                re.findall(r'expr: ("(?:[^"\\]|\\.)*"), time:', proc.stdout + proc.stderr)]
    for q in failures:
        report.check(False, f"{wrapped.get(q, q)}: returns no data (or NaN) on the captures' "
                     "metrics")
    report.check((proc.returncode == 0) == (not failures) and
                 "WARNING" not in proc.stdout + proc.stderr,
                 f"promtool test rules on the captures' metrics: {proc.stdout}{proc.stderr}")
    report.passed += len(queries) - len(failures)
    print(f"{len(queries)} queries evaluated on the metrics of {len(expositions)} captures")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sipscope", required=True)
    ap.add_argument("--source-dir", required=True)
    ap.add_argument("--promtool")
    args = ap.parse_args()
    src = args.source_dir
    report = kitlib.Checks()

    families, prefixes, cat_types = kitlib.read_catalogue(os.path.join(src, CATALOGUE))
    expo = kitlib.run_exposition(args.sipscope, os.path.join(src, CAPTURE))
    samples = expo.samples
    with open(os.path.join(src, DASHBOARD), encoding="utf-8") as f:
        dash = json.load(f)

    defined = check_structure(dash, report)

    # The catalogue lists every family the engine prints (the rules' own families are in
    # rules/README.md): here, offline, with an events file too (the live-only families are
    # checked through the queries that read them).
    events = kitlib.run_exposition(args.sipscope, os.path.join(src, CAPTURE),
                                   ("--events", os.devnull))
    for fam in sorted(set(expo.types) | set(events.types)):
        report.check(fam in families, f"{fam} is printed but not in {CATALOGUE}")

    # Every expression to check, with where it comes from.
    queries = []
    records = {}
    for rf in RULE_FILES:
        rules = kitlib.read_rule_file(os.path.join(src, rf))
        for r in rules:
            queries.append((f"{rf}: {r['kind']} {r['name']}", r["expr"]))
            if r["kind"] == "record":
                report.check(r["name"] not in records, f"{rf}: {r['name']} recorded twice")
                records[r["name"]] = r["expr"]
        if args.promtool:
            out = subprocess.run([args.promtool, "check", "rules", os.path.join(src, rf)],
                                 capture_output=True, text=True).stdout
            m = re.search(r"SUCCESS: (\d+) rules found", out)
            report.check(m and int(m.group(1)) == len(rules),
                         f"{rf}: read {len(rules)} rules, promtool finds "
                         f"{m.group(1) if m else 'an error'}")
    dash_queries = []
    for where, expr in dashboard_queries(dash):
        expr, unknown = substitute(expr, defined)
        report.check(not unknown, f"{DASHBOARD} {where}: undefined variables {sorted(unknown)}")
        dash_queries.append((where, expr))
    queries += [(f"{DASHBOARD} {w}", e) for w, e in dash_queries]

    # The samples each family is queried through, and the families each query reads.
    queried = {}
    reads = {}
    for where, expr in queries:
        for name in kitlib.metric_names(expr):
            for raw in resolve(name, records):
                if raw in PROMETHEUS_SERIES:
                    reads.setdefault(where, set()).add(raw)
                    continue
                fam = family_of(raw, families, prefixes)
                if not report.check(fam is not None,
                                    f"{where}: {raw} is not a family in {CATALOGUE}"):
                    continue
                if raw != fam:
                    kind = expo.types.get(fam) or cat_types.get(fam)
                    report.check(kind == "histogram",
                                 f"{where}: {raw} queried, but {fam} is not a histogram")
                queried.setdefault(fam, set()).add(raw)
                reads.setdefault(where, set()).add(fam)

    with tempfile.TemporaryDirectory() as tmp:
        shown = [("mix-udp4", expo)]
        for fam in sorted(queried):
            names = queried[fam]
            if fam in LAZY:
                how, reason = LAZY[fam]
                report.check(not names & samples,
                             f"{fam} is listed as absent from {CAPTURE} ({reason}) but it is "
                             f"there: remove it from LAZY")
                if how is None:
                    continue
                lazy_expo = show_lazy(how, args, tmp)
                shown.append((f"{fam}-{how}", lazy_expo))
                report.check(names <= lazy_expo.samples,
                             f"{fam}: {sorted(names - lazy_expo.samples)} missing from the "
                             f"capture that should show it ({how})")
            else:
                report.check(names <= samples,
                             f"{fam}: {sorted(names - samples)} queried but not printed for "
                             f"{CAPTURE}")
        for fam in sorted(set(LAZY) - set(queried)):
            report.check(False, f"LAZY lists {fam}, which nothing queries: remove it")
        if args.promtool:
            promtool_check(args.promtool, dash_queries, tmp, report)
            # Queries whose families no offline run shows cannot return data here.
            blind = {f for f, (how, _) in LAZY.items() if how is None} | set(PROMETHEUS_SERIES)
            data_queries = [(w, e) for w, e in queries
                            if not reads.get(w, set()) & blind and " alert " not in w]
            promtool_returns_data(args.promtool, src, shown, data_queries, tmp, report)
        else:
            report.skip("no --promtool: dashboard queries not parsed as PromQL")
            report.skip("no --promtool: queries not evaluated on the captures' metrics")

    print(f"{len(queried)} families queried by {len(queries)} expressions; "
          f"{len(set(queried) & set(LAZY))} of them absent from {os.path.basename(CAPTURE)} "
          f"by design")
    return report.summary()


if __name__ == "__main__":
    kitlib.run(main)
