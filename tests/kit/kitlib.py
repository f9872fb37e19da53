"""Helpers shared by the operators' kit checks (tests/kit/check_*.py): reading the metric
catalogue, Prometheus rule files and test files, sipscope's exposition, and the metric names a
PromQL expression reads. Python standard library only, so there is no YAML parser: the readers
below accept the subset of YAML the files in examples/prometheus/ use, and fail loudly on
anything else (the callers also compare their counts with promtool's)."""

import re
import subprocess
import sys


class KitError(Exception):
    """An input the readers do not understand; the message names the file and line."""


def run(main):
    """Exits with main()'s status; a KitError (the kit itself unreadable) is one failed check."""
    try:
        sys.exit(main())
    except KitError as e:
        print("FAIL:", e)
        print("0 passed, 1 failed, 0 skipped")
        sys.exit(1)


class Checks:
    """The checks' tally: check(ok, message) (or calling the tally) counts one, prints
    "FAIL: message" when it failed, and returns ok; skip(message) counts a check that could not
    run; summary() prints the closing "N passed, N failed, N skipped" line and returns the exit
    status (1 when any failed)."""

    def __init__(self):
        self.passed = self.failed = self.skipped = 0

    def check(self, ok, message):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
            print("FAIL:", message)
        return ok

    __call__ = check

    def skip(self, message):
        self.skipped += 1
        print("SKIP:", message)

    def summary(self):
        print(f"{self.passed} passed, {self.failed} failed, {self.skipped} skipped")
        return 1 if self.failed else 0


# --- the catalogue (docs/METRICS.md) --------------------------------------------------------

_NAME = re.compile(r"^[a-z_:][a-z0-9_:]*$")


def read_catalogue(path):
    """Returns (families, prefixes, types): the metric families named in the first cell of the
    catalogue's tables (a cell may name several, `a`, `b`; a `{labels}` suffix is dropped),
    the prefixes of wildcard entries such as `process_*`, and {family: type} where the row's
    second cell is a type (counter, gauge, histogram)."""
    families, prefixes, types = set(), set(), {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.startswith("|"):
                continue
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            if not cells:
                continue
            names = re.findall(r"`([^`]+)`", cells[0])
            kind = cells[1] if len(cells) > 1 else ""
            for name in names:
                name = name.split("{", 1)[0].strip()
                if name.endswith("*") and _NAME.match(name[:-1]):
                    prefixes.add(name[:-1])
                elif _NAME.match(name) and name.startswith(("sip_", "sipscope_")):
                    families.add(name)
                    if kind in ("counter", "gauge", "histogram"):
                        types[name] = kind
    return families, prefixes, types


# --- sipscope's exposition ------------------------------------------------------------------


class Exposition:
    """What sipscope printed: `samples`, the sample names; `types`, {family: type} from the
    TYPE lines; `series`, (series text as printed, value) pairs."""

    def __init__(self, text):
        self.samples, self.types, self.series = set(), {}, []
        for line in text.splitlines():
            if line.startswith("# TYPE "):
                _, _, name, kind = line.split(" ", 3)
                self.types[name] = kind.strip()
            elif line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                self.samples.add(re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", key).group(0))
                self.series.append((key, float(value)))

    def family_type(self, sample):
        """The TYPE of the family a sample belongs to (histogram for its _bucket...)."""
        if sample in self.types:
            return self.types[sample]
        for suffix in ("_bucket", "_sum", "_count"):
            base = sample[: -len(suffix)]
            if sample.endswith(suffix) and self.types.get(base) == "histogram":
                return "histogram"
        return None


def run_exposition(sipscope, capture, extra=(), ok_codes=(0,)):
    """Runs `sipscope --read CAPTURE --print` and returns its Exposition."""
    proc = subprocess.run([sipscope, "--read", capture, "--print", *extra],
                          capture_output=True, text=True, timeout=300)
    if proc.returncode not in ok_codes:
        raise KitError(f"{sipscope} --read {capture} --print exited {proc.returncode}: "
                       f"{proc.stderr.strip()}")
    return Exposition(proc.stdout)


# --- Prometheus rule files ------------------------------------------------------------------


def _block(lines, i, key_indent):
    """The lines of a block scalar that starts after line i: every following line indented
    deeper than its key, blank lines included (trailing blank lines dropped)."""
    out = []
    j = i + 1
    while j < len(lines):
        line = lines[j]
        if line.strip() and len(line) - len(line.lstrip()) <= key_indent:
            break
        out.append(line)
        j += 1
    while out and not out[-1].strip():
        out.pop()
    return out, j


def _scalar(value, lines, i, key_indent, where):
    """The string value of `key: value` at line i, and the index of the next line."""
    if value in ("|", "|-", "|+", ">", ">-", ">+"):
        block, j = _block(lines, i, key_indent)
        if not block:
            raise KitError(f"{where}: empty block scalar")
        indent = min(len(b) - len(b.lstrip()) for b in block if b.strip())
        body = [b[indent:] for b in block]
        if value.startswith(">"):
            return " ".join(b.strip() for b in body if b.strip()), j
        return "\n".join(body), j
    if value[:1] in ("'", '"'):
        if len(value) < 2 or value[-1] != value[0]:
            raise KitError(f"{where}: a quoted value on several lines is not supported")
        inner = value[1:-1]
        return (inner.replace("''", "'") if value[0] == "'" else
                inner.encode().decode("unicode_escape")), i + 1
    if value[:1] in ("[", "{", "&", "*", "!"):
        raise KitError(f"{where}: unsupported YAML value {value!r}")
    return value, i + 1


def read_rule_file(path):
    """Returns the rules of a Prometheus rule file in file order, each a dict with `kind`
    ('record' or 'alert'), `name`, `expr`, `group` and `line`."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    rules, group, current = [], None, None
    i = 0
    while i < len(lines):
        line = lines[i]
        where = f"{path}:{i + 1}"
        stripped = line.split("#", 1)[0].rstrip() if not line.lstrip().startswith("#") else ""
        m = re.match(r"^(\s*)(?:-\s+)?(name|record|alert|expr):\s*(.*)$", stripped)
        if not m:
            i += 1
            continue
        indent = len(line) - len(line.lstrip(" -")) if m.group(1) is not None else 0
        key, value = m.group(2), m.group(3).strip()
        if key == "name":
            group, _ = _scalar(value, lines, i, indent, where)
            i += 1
        elif key in ("record", "alert"):
            name, _ = _scalar(value, lines, i, indent, where)
            current = {"kind": key, "name": name, "expr": None, "group": group, "line": i + 1}
            rules.append(current)
            i += 1
        else:
            if current is None or current["expr"] is not None:
                raise KitError(f"{where}: expr outside a rule")
            current["expr"], i = _scalar(value, lines, i, indent, where)
    for r in rules:
        if r["expr"] is None:
            raise KitError(f"{path}:{r['line']}: rule {r['name']} has no expr")
    return rules


# --- PromQL ---------------------------------------------------------------------------------

# Binary operators and modifiers, and the aggregation operators, which may be followed by a
# label list (sum by (job) (...)) rather than by their parenthesis.
_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
             "group_right", "offset", "bool", "inf", "nan", "atan2", "sum", "min", "max", "avg",
             "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk", "quantile"}
_TOKEN = re.compile(r"""
      (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
    | (?P<braces>\{[^{}]*\})
    | (?P<brackets>\[[^\[\]]*\])
    | (?P<num>[0-9][0-9a-zA-Z.]*(?:[eE][+-]?[0-9]+)?)
    | (?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
    | (?P<space>\s+)
    | (?P<other>.)
""", re.VERBOSE | re.DOTALL)


def metric_names(expr):
    """The metric names an expression selects: identifiers that are not functions,
    aggregations, keywords, label lists (by, without, on, ignoring, group_left/right) or parts
    of strings, label matchers and ranges."""
    tokens = [(m.lastgroup, m.group()) for m in _TOKEN.finditer(expr)]
    tokens = [t for t in tokens if t[0] != "space"]
    names = set()
    skip_list = False
    for k, (kind, text) in enumerate(tokens):
        nxt = tokens[k + 1][1] if k + 1 < len(tokens) else ""
        if skip_list:
            if text == ")":
                skip_list = False
            continue
        if kind != "ident":
            continue
        low = text.lower()
        if low in ("by", "without", "on", "ignoring", "group_left", "group_right"):
            if nxt == "(":
                skip_list = True
            continue
        if low in _KEYWORDS or nxt == "(":
            continue
        names.add(text)
    return names


# --- promtool test files --------------------------------------------------------------------


def read_rule_tests(path):
    """Returns (tested expressions, {alertname: set of 'firing'/'silent'}) of a promtool test
    file: the `expr` of every promql_expr_test, and for every alert_rule_test whether it expects
    alerts (firing) or `exp_alerts: []` (silent)."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    exprs, alerts = [], {}
    section, alertname = None, None
    for i, line in enumerate(lines):
        where = f"{path}:{i + 1}"
        if line.lstrip().startswith("#"):
            continue
        m = re.match(r"^\s*(promql_expr_test|alert_rule_test|input_series):\s*$", line)
        if m:
            section = m.group(1)
            continue
        m = re.match(r"^(\s*)(?:-\s+)?expr:\s*(.*)$", line)
        if m and section == "promql_expr_test":
            value, _ = _scalar(m.group(2).strip(), lines, i, len(m.group(1)), where)
            exprs.append(value)
            continue
        m = re.match(r"^\s*(?:-\s+)?alertname:\s*(\S+)\s*$", line)
        if m and section == "alert_rule_test":
            alertname = m.group(1)
            continue
        m = re.match(r"^\s*exp_alerts:\s*(.*)$", line)
        if m and section == "alert_rule_test":
            if alertname is None:
                raise KitError(f"{where}: exp_alerts before alertname")
            state = "silent" if m.group(1).strip() == "[]" else "firing"
            if m.group(1).strip() not in ("", "[]"):
                raise KitError(f"{where}: unsupported exp_alerts value")
            alerts.setdefault(alertname, set()).add(state)
            alertname = None
    return exprs, alerts
