#!/usr/bin/env python3
"""bench.py: runs the measurements of BENCHMARK.md (project issue 6) and writes the report.

Called by tests/bench/run.sh, which builds the Release binaries first. It generates its own
inputs in WORK, runs every measurement several times (median, min, max), runs tshark and sngrep
on the same file in the same run, and prints each figure with the exact command that produced
it. Timing thresholds live here and in the report, never in CI tests.

Sections: 1 parser, 2 offline pipeline (sipscope, tshark, sngrep), 3 live capture on a veth
pair between two network namespaces (highest zero-drop rate, CPU per 1,000 calls/s, load run),
4 memory (bytes per call with 1,000,000 calls, RSS over a soak), 5 scrape (render, gzip),
6 Lua rules (per-message cost: no rules, an empty hook, each bundled rule, all of them).
Sections 3 and the soak need root; without it they are reported as skipped.
"""
import argparse
import datetime
import json
import os
import platform
import re
import shlex
import signal
import statistics
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "offline"))
import expect as expectations  # noqa: E402  tests/offline/expect.py: how expect lines match

CLK_TCK = os.sysconf("SC_CLK_TCK")
MSGS_PER_CALL = 7  # sip_sender's answered call: INVITE 100 180 200 ACK BYE 200
# gen_traffic's mix (weights and flows in tests/tools/gen_traffic.c): per 100 scenarios,
# 590 messages and 80 call attempts (registrations and OPTIONS counted in the messages).
MIX_MSGS_PER_CALL = 590 / 80
# The rules target's configuration: the issue asks for the bundled rules, and an events file is
# not a rule (it was held to the target while a bundled rule, cdr_enrich, worked only with one;
# its fields are the engine's since). The same with an events file is measured beside it.
RULES_NO_EVENTS = "sipscope, bundled rules, no events file"
RULES_EVENTS = "sipscope, bundled rules, events file"

PARSE_TARGET_NS = 150
FIXTURES = ["invite_sdp.sip", "ok_200.sip", "register.sip", "bye.sip"]  # bench_sip_parse's
OFFLINE_TARGET = 2_000_000
OFFLINE_STRETCH = 4_000_000
OFFLINE_RULES_TARGET = 1_000_000
# The figures for the other tools on this kind of machine, from which it set the target
# (2,000,000 msgs/s, "about 20x tshark").
TSHARK_REFERENCE = 94_000
SNGREP_REFERENCE = 68_000
LIVE_TARGET = 200_000
CPU_PER_1K_TARGET = 1.0  # percent of a core
MEMORY_TARGET = 512
RENDER_TARGET_MS = 10.0
SOAK_FLAT_KIB_PER_MIN = 100  # criterion of "flat": under 1 MiB of growth per 10 minutes


def rules_pace(by, ts):
    """The rules target against the issue's tshark figure, as the pace sentence gives the
    no-rules one: " The rules target is 10.6x ...; this run's ratios are ...", or "" without
    rules in the run."""
    rows = [(what, by[tool]["cpu_rate"]["median"] / ts)
            for tool, what in [(RULES_NO_EVENTS, "without an events file"),
                               (RULES_EVENTS, "with one")] if tool in by]
    if not rows:
        return ""
    return (f" The rules target is {OFFLINE_RULES_TARGET / TSHARK_REFERENCE:.1f}x it; this run's "
            "ratios are " + " and ".join(f"{r:.1f}x {what}" for what, r in rows) + ".")


class Bench:
    def __init__(self, args):
        self.a = args
        self.top = os.path.abspath(args.top)
        self.build = os.path.abspath(args.build)
        self.work = os.path.abspath(args.work)
        self.bin = {
            "sipscope": f"{self.build}/core/sipscope",
            "parse": f"{self.build}/tests/bench_sip_parse",
            "http": f"{self.build}/tests/bench_http",
            "memory": f"{self.build}/tests/bench_memory",
            "gen_traffic": f"{self.build}/tests/gen_traffic",
            "gen_calls": f"{self.build}/tests/gen_calls",
            "sender": f"{self.build}/tests/sip_sender",
        }
        self.cpu = str(args.cpu)
        self.send_cpu = str(args.send_cpu)
        self.sections = {}  # number -> dict of results, rendered by report()
        self.inputs = []  # (what, command)
        self.notes = []
        self.loads = []  # (when, load average text, CPUs busy with other work)
        self.live = None

    # --- helpers ------------------------------------------------------------------------------

    def show(self, argv):
        """A command as the report prints it: repository-relative, inputs under $WORK."""
        text = shlex.join(argv)
        text = text.replace(self.work, "$WORK")
        text = text.replace(self.top + "/", "")
        return text

    def log(self, msg):
        print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    def settle(self, limit=0.5, most=180):
        """Waits up to `most` seconds for the 1-minute load average to fall to `limit`: run.sh
        has just built the programs on both CPUs, and that build alone left the load average
        above 1 at the start of a run, warning of noise that was the build's echo (the CPUs
        were idle by then). A load that stays up is reported as before."""
        t0 = time.monotonic()
        self.settled = 0.0
        while time.monotonic() - t0 < most:
            with open("/proc/loadavg") as f:
                la = float(f.read().split()[0])
            self.settled = time.monotonic() - t0
            if la <= limit:
                return
            if time.monotonic() - t0 < 1:
                self.log(f"load average {la:.2f}: waiting up to {most} s for it to fall to "
                         f"{limit} (the build just ran)")
            time.sleep(5)

    def load_now(self, when):
        """Records the load average, and how busy the CPUs are with other work right now:
        the load average also counts this benchmark's own programs of the section before, a
        2-second look at /proc/stat while nothing of ours runs does not."""
        with open("/proc/loadavg") as f:
            la = f.read().split()[:3]

        def stat():
            with open("/proc/stat") as f:
                v = [int(x) for x in f.readline().split()[1:9]]
            return sum(v), v[3] + v[4]  # total, idle + iowait

        t0, i0 = stat()
        time.sleep(2)
        t1, i1 = stat()
        others = os.cpu_count() * (1 - (i1 - i0) / max(t1 - t0, 1))
        self.loads.append((when, " ".join(la), others))
        return float(la[0])

    def timed(self, argv, stdout=None, stdin=None):
        """Runs argv to its end; returns its wall, user and system seconds (wait4) and its peak
        RSS in KiB. The peak comes from GNU time wrapped around it: a child of this Python
        process inherits the parent's peak in ru_maxrss, a child of time only time's."""
        out = open(stdout, "wb") if stdout else subprocess.DEVNULL
        err = open(f"{self.work}/last.stderr", "wb")
        rss_file = f"{self.work}/last.maxrss"
        t0 = time.monotonic()
        p = subprocess.Popen(["/usr/bin/time", "-f", "%M", "-o", rss_file] + argv, stdout=out,
                             stderr=err,
                             stdin=open(stdin, "rb") if stdin else subprocess.DEVNULL)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.monotonic() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        if stdout:
            out.close()
        err.close()
        if p.returncode != 0:
            with open(f"{self.work}/last.stderr") as f:
                raise RuntimeError(f"{self.show(argv)} exited {p.returncode}: {f.read()[-2000:]}")
        with open(rss_file) as f:
            maxrss = int(f.read().split()[-1])
        return {"wall": wall, "user": ru.ru_utime, "sys": ru.ru_stime,
                "cpu": ru.ru_utime + ru.ru_stime, "maxrss_kib": maxrss}

    def run(self, argv, **kw):
        return subprocess.run(argv, check=True, capture_output=True, text=True, **kw).stdout

    def generate(self, what, argv, out):
        self.log(f"generating {what}")
        text = self.run(argv)
        with open(out, "w") as f:
            f.write(text)
        self.inputs.append((what, self.show(argv) + " > " + self.show([out])))
        return text

    @staticmethod
    def stats(values):
        return {"median": statistics.median(values), "min": min(values), "max": max(values),
                "n": len(values)}

    def sipscope_has_rules(self):
        out = subprocess.run([self.bin["sipscope"], "--help"], capture_output=True, text=True)
        return "--rules" in out.stdout + out.stderr

    def rules_dir(self):
        """Enabled, configured copies of the bundled rules (sip-exporter excluded, as the target
        says) in a directory of their own (tests/tools/bundled_rules.sh: configured for the
        generated capture's addresses), or the operator's --rules directory as it is."""
        if self.a.rules:
            return self.a.rules
        dst = f"{self.work}/rules"
        kept = self.run([f"{self.top}/tests/tools/bundled_rules.sh", self.bin["sipscope"],
                         dst]).split()
        self.notes.append("bundled rules measured: " + ", ".join(kept) +
                          " (enabled and configured for the generated capture's addresses by "
                          "`tests/tools/bundled_rules.sh`)")
        return dst

    # --- 1. parser ----------------------------------------------------------------------------

    def section_parser(self):
        """Rounds alternate the builds, one run of each per round: a slow spell of this shared
        VM then falls on both builds' runs, not on one build's (timed one build after the
        other, the plain/release ratio moved from 1.0 to 1.2 between two reports)."""
        self.load_now("parser")
        builds = [(self.bin["parse"], None)]
        if self.a.parse_baseline:
            builds.append(self.a.parse_baseline)
        runs = [[] for _ in builds]
        for _ in range(self.a.parse_runs):
            for i, (path, _label) in enumerate(builds):
                runs[i].append(self.parse_run(path))
        res = self.parse_summary(runs[0])
        if len(builds) > 1:
            res["baseline"] = dict(self.parse_summary(runs[1]), label=builds[1][1])
        if self.a.profile and any(r["median"] > PARSE_TARGET_NS for r in res["rows"]):
            res["profile"] = self.profile_parser()
        self.sections[1] = res

    def parse_run(self, binary):
        """One run of a bench_sip_parse binary: its command, output and ns by fixture."""
        argv = ["taskset", "-c", self.cpu, binary, "--cpu", str(self.a.parse_iters), "1"]
        self.log("parser: " + self.show(argv))
        out = self.run(argv)
        rows = []
        rx = re.compile(r"^(.+?)\s+(\d+) bytes\s+(\d+) headers\s+([\d.]+) ns/msg")
        for line in out.splitlines():
            m = rx.match(line)
            if m:
                rows.append({"msg": m[1], "bytes": int(m[2]), "headers": int(m[3]),
                             "ns": float(m[4])})
        return {"cmd": self.show(argv), "rows": rows, "raw": out}

    def parse_summary(self, runs):
        """Median, min and max by fixture over one build's runs."""
        rows = []
        for i, r in enumerate(runs[0]["rows"]):
            ns = sorted(run["rows"][i]["ns"] for run in runs)
            rows.append({"msg": r["msg"], "bytes": r["bytes"], "headers": r["headers"],
                         "median": statistics.median(ns), "min": ns[0], "max": ns[-1]})
        return {"cmd": runs[0]["cmd"], "runs": len(runs), "rows": rows,
                "raw": "".join(run["raw"] for run in runs)}

    def callgrind(self, argv, name):
        out = f"{self.work}/callgrind.{name}.out"
        cg = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"] + argv
        self.log("callgrind: " + self.show(cg))
        subprocess.run(cg, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self_cost = self.run(["callgrind_annotate", "--auto=no", "--inclusive=no", out])
        incl = self.run(["callgrind_annotate", "--auto=no", "--inclusive=yes", out])

        def parse(text, combine):
            """Total and (Ir, function, library) by function, highest first. With -g,
            callgrind splits a function by the source file of inlined code: self costs are
            summed, inclusive ones taken from the largest part (which holds the calls)."""
            total, by = None, {}
            for line in text.splitlines():
                m = re.match(r"^\s*([\d,]+) \(\s*[\d.]+%\)\s+(.*)$", line)
                if not m:
                    continue
                ir = int(m[1].replace(",", ""))
                what = m[2]
                if "PROGRAM TOTALS" in what:
                    total = ir
                    continue
                lib = re.search(r"\[(.*)\]$", what)
                fn = re.sub(r"\s*\[.*\]$", "", what)
                fn = fn.rsplit(":", 1)[1] if ":" in fn else fn
                ir0, lib0 = by.get(fn, (0, ""))
                by[fn] = (combine(ir0, ir), lib0 or (os.path.basename(lib[1]) if lib else ""))
            funcs = sorted(((ir, fn, lib) for fn, (ir, lib) in by.items()), reverse=True)
            return total, funcs

        total, funcs = parse(self_cost, lambda a, b: a + b)
        _, incl_funcs = parse(incl, max)
        return {"cmd": self.show(cg), "annotate": "callgrind_annotate --auto=no [--inclusive=yes] " + self.show([out]),
                "total": total, "self": funcs, "incl": incl_funcs}

    def profile_parser(self):
        """Instructions per parse of each fixture (deterministic), and where they go for the
        INVITE."""
        iters = 20000
        per = {}
        first = None
        for name in FIXTURES:
            prof = self.callgrind([self.bin["parse"], "--only", name, str(iters), "1"],
                                  "parse-" + name.split(".")[0])
            # GCC may clone it under a suffixed name (sip_parse.constprop.0), or inline it into
            # the benchmark's loop with LTO and PGO: then parse_with, its whole body but a few
            # instructions of argument checks, is what is counted.
            sp = None
            for want in ("sip_parse", "parse_with"):
                sp = next(((ir, fn) for ir, fn, _ in prof["incl"]
                           if fn == want or fn.startswith(want + ".")), None)
                if sp:
                    break
            # one check parse, then the loop
            per[name] = (sp[0] / (1 + iters), sp[1]) if sp else None
            prof["calls"] = 1 + iters
            first = first or prof
        first["ir_per_parse"] = per
        return first

    # --- 2. offline ---------------------------------------------------------------------------

    def section_offline(self):
        n = self.a.messages
        pcap = f"{self.work}/mix-{n}.pcap"
        expect = self.generate(f"{n:,} messages, gen_traffic's realistic mix (seed 1)",
                               [self.bin["gen_traffic"], pcap, str(n), "1"],
                               f"{self.work}/mix-{n}.expect")
        messages = int(re.search(r"^# messages (\d+)", expect, re.M)[1])
        span = float(re.search(r"^# span_seconds ([\d.]+)", expect, re.M)[1])
        subprocess.run(["cat", pcap], stdout=subprocess.DEVNULL, check=True)  # page cache
        self.load_now("offline")

        tools = [("sipscope, no rules",
                  ["taskset", "-c", self.cpu, self.bin["sipscope"], "--read", pcap, "--print"])]
        rules = None
        if self.sipscope_has_rules():
            rules = self.rules_dir()
        # Other builds in the same rounds (the plain Release build beside the release one, an
        # older build): before and after on the same machine state, which on a shared VM moves
        # more between hours than most changes do.
        for b_bin, b_label in self.a.baselines:
            tools.append((self.baseline_name(b_label),
                          ["taskset", "-c", self.cpu, b_bin, "--read", pcap, "--print"]))
            # With the rules too, when that build can load them (an older one may not).
            if rules and subprocess.run([b_bin, "--check-rules", rules],
                                        capture_output=True).returncode == 0:
                tools.append((self.baseline_name(b_label, rules=True),
                              ["taskset", "-c", self.cpu, b_bin, "--read", pcap, "--rules",
                               rules, "--print"]))
        if rules:
            # The target's configuration, then with an events file as well (call records with
            # the engine's signalling fields).
            tools.append((RULES_NO_EVENTS,
                          ["taskset", "-c", self.cpu, self.bin["sipscope"], "--read", pcap,
                           "--rules", rules, "--print"]))
            tools.append((RULES_EVENTS,
                          ["taskset", "-c", self.cpu, self.bin["sipscope"], "--read", pcap,
                           "--rules", rules, "--events", f"{self.work}/offline-events.json",
                           "--print"]))
        tools.append(("tshark -q -z sip,stat",
                      ["taskset", "-c", self.cpu, "tshark", "-q", "-z", "sip,stat", "-r", pcap]))
        tools.append(("sngrep -N -q -R -I",
                      ["taskset", "-c", self.cpu, "sngrep", "-N", "-q", "-R", "-I", pcap]))

        # Check once that each tool read the whole file (outputs kept in WORK).
        checks = {}
        out = f"{self.work}/offline-sipscope.prom"
        self.timed(tools[0][1], stdout=out)
        checks[tools[0][0]] = self.check_expect(open(out).read(), expect)
        for tool, argv in tools[1:]:
            if tool.startswith("sipscope"):
                out = f"{self.work}/offline-check.prom"
                self.timed(argv, stdout=out)
                checks[tool] = self.check_expect(open(out).read(), expect)
        out = f"{self.work}/offline-tshark.txt"
        self.timed(tools[-2][1], stdout=out)
        m = re.search(r"Number of SIP messages: (\d+)", open(out).read())
        counted = int(m[1]) if m else -1
        checks[tools[-2][0]] = f"counted {counted:,} SIP messages of {messages:,}"
        checks[tools[-1][0]] = "prints nothing with -q: not checked"

        # Round robin, so that a change in the machine's load hits every tool alike.
        # sipscope's runs take a second, tshark's and sngrep's half a minute: each round runs
        # every sipscope configuration a.repeats times, so that its medians come from more
        # samples on a machine whose pace moves by a third between identical runs.
        runs = {name: [] for name, _ in tools}
        for r in range(self.a.runs):
            for name, argv in tools:
                times = self.a.repeats if name.startswith("sipscope") else 1
                for k in range(times):
                    self.log(f"offline run {r + 1}/{self.a.runs}"
                             f"{f' ({k + 1}/{times})' if times > 1 else ''}: {name}")
                    runs[name].append(self.timed(argv))
        rows = []
        for name, argv in tools:
            rs = runs[name]
            rows.append({
                "tool": name, "cmd": self.show(argv), "check": checks.get(name, ""),
                "cpu_rate": self.stats([messages / x["cpu"] for x in rs]),
                "wall_rate": self.stats([messages / x["wall"] for x in rs]),
                "cpu": self.stats([x["cpu"] for x in rs]),
                "wall": self.stats([x["wall"] for x in rs]),
                "maxrss_mib": statistics.median([x["maxrss_kib"] for x in rs]) / 1024,
            })
        res = {"messages": messages, "span": span, "pcap": self.show([pcap]), "rows": rows,
               "rules": rules is not None, "rules_flag": self.sipscope_has_rules()}
        base = rows[0]
        by = {r["tool"]: r for r in rows}
        rules_missed = (RULES_NO_EVENTS in by and
                        by[RULES_NO_EVENTS]["cpu_rate"]["median"] < OFFLINE_RULES_TARGET)
        if self.a.profile and (base["cpu_rate"]["median"] < OFFLINE_TARGET or rules_missed):
            small = f"{self.work}/mix-100000.pcap"
            self.generate("100,000 messages for callgrind (seed 1)",
                          [self.bin["gen_traffic"], small, "100000", "1"],
                          f"{self.work}/mix-100000.expect")
            prof = self.callgrind([self.bin["sipscope"], "--read", small, "--print"], "offline")
            prof["messages"] = 100000
            res["profile"] = prof
            if rules_missed:
                # Under valgrind Lua runs some fifty times slower: a budget that the rules'
                # entries cannot reach there, so that the profile is of the same work.
                argv = [self.bin["sipscope"], "--read", small, "--rules", rules,
                        "--rule-budget", "5s", "--print"]
                for key, extra, name in [
                        ("profile_rules", [], "offline-rules"),
                        ("profile_events", ["--events", f"{self.work}/callgrind-events.json"],
                         "offline-events")]:
                    prof = self.callgrind(argv[:-1] + extra + argv[-1:], name)
                    prof["messages"] = 100000
                    res[key] = prof
        self.sections[2] = res

    @staticmethod
    def expect_misses(prom, expect, prefixes=None):
        """Lines of a gen_traffic/gen_calls expectation the exposition prom does not meet, as
        tests/offline/expect.py judges them; returns (checked, misses)."""
        series = expectations.parse_exposition(prom)
        checked, misses = 0, []
        for line in expect.splitlines():
            if not line or line.startswith("#") or (prefixes and not line.startswith(prefixes)):
                continue
            key, _, want = line.rpartition(" ")
            got = expectations.lookup(series, key)
            checked += 1
            if float(want) != (got or 0.0):
                misses.append(f"{key} {got or 0:g} (expected {want})")
        return checked, misses

    @classmethod
    def check_expect(cls, prom, expect):
        checked, misses = cls.expect_misses(prom, expect)
        if misses:
            return f"{checked - len(misses)}/{checked} expected values; differs: " + \
                "; ".join(misses[:3])
        return f"all {checked} values the generator expects"

    # --- 4. memory ----------------------------------------------------------------------------

    def section_memory(self):
        calls = self.a.calls
        big = f"{self.work}/calls-{calls}.pcap"
        one = f"{self.work}/calls-1.pcap"
        expect = self.generate(f"{calls:,} answered calls that stay up (1,000 calls/s)",
                               [self.bin["gen_calls"], big, str(calls)],
                               f"{self.work}/calls-{calls}.expect")
        self.generate("one such call (the baseline)", [self.bin["gen_calls"], one, "1"],
                      f"{self.work}/calls-1.expect")
        self.load_now("memory")
        argv_big = [self.bin["sipscope"], "--read", big, "--print"]
        argv_one = [self.bin["sipscope"], "--read", one, "--print"]
        out = f"{self.work}/calls.prom"
        rss_big, rss_one = [], []
        check = ""
        for r in range(self.a.mem_runs):
            self.log(f"memory run {r + 1}/{self.a.mem_runs}")
            rss_big.append(self.timed(argv_big, stdout=out)["maxrss_kib"])
            if r == 0:
                check = self.check_expect(open(out).read(), expect)
            rss_one.append(self.timed(argv_one)["maxrss_kib"])
        mb, mo = statistics.median(rss_big), statistics.median(rss_one)
        per_call = (mb - mo) * 1024 / (calls - 1)
        sizes = dict(l.split("=", 1) for l in self.run([self.bin["memory"]]).split())
        res = {"calls": calls, "rss_big_kib": mb, "rss_one_kib": mo, "per_call": per_call,
               "rss_big_all": rss_big, "rss_one_all": rss_one, "check": check,
               "cmd_big": self.show(argv_big), "cmd_one": self.show(argv_one),
               "cmd_sizes": self.show([self.bin["memory"]]), "sizes": sizes}
        self.sections.setdefault(4, {}).update(res)
        try:
            os.unlink(big)  # over a gigabyte
        except OSError:
            pass

    # --- 5. scrape ----------------------------------------------------------------------------

    # --- 6. Lua rules -------------------------------------------------------------------------

    LUA_CONFIGS = {
        "none": "no rules",
        "empty_hook": "one empty `on_message` hook",
        "label": "a label computed from `m.src_ip` per call",
        "label_metric": "that label and a counter per request",
        "rule_carrier": "`carrier.lua`",
        "rule_device": "`device.lua`",
        "rule_fraud": "`fraud.lua`",
        "rule_trunk_asr": "`trunk_asr.lua`",
        "rule_sip_exporter": "`sip_exporter.lua`",
        "bundled": "all five bundled rules",
        "bundled_no_exporter": "the bundled rules but `sip_exporter.lua`",
    }

    def section_lua(self):
        self.load_now("lua")
        calls, reps = 30000, 3 if self.a.quick else 7
        argv = ["taskset", "-c", self.cpu, f"{self.top}/tests/bench/bench_lua.sh", str(calls),
                str(reps)]
        self.log("lua: " + self.show(argv))
        out = self.run(argv, env=dict(os.environ, SIPSCOPE=self.bin["sipscope"]))
        rows = []
        for line in out.splitlines():
            m = re.match(r"^(\S+)\s+([\d.]+) ns/message\s+([+-][\d.]+)$", line)
            if m:
                rows.append({"name": m[1], "ns": float(m[2]), "delta": float(m[3])})
        head = out.splitlines()[0] if out else ""
        self.sections[6] = {"cmd": "SIPSCOPE=" + self.show([self.bin["sipscope"]]) + " " +
                            self.show(argv), "rows": rows, "head": head,
                            "when": datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M")}

    def report_lua(self, w, verdict):
        s = self.sections[6]
        w("What LuaJIT rules cost per SIP message (thread CPU time, file reading and parsing "
          "included, an events file written in every configuration, with the engine's signalling "
          "fields), on a generated capture of answered calls (7 messages each, call i from "
          "10.1.x.y to 10.2.0.1), best of the runs, interleaved across configurations. The "
          "bundled rules ship disabled: each is enabled and configured for the capture's "
          "addresses, as an operator would (`tests/bench/bench_lua.sh --make-rules DIR`). "
          f"Measured {s['when']} UTC; {s['head']}.")
        w("")
        w(f"Command: `{s['cmd']}`")
        w("")
        w("| configuration | ns per message | over no rules | messages/s on one core |")
        w("|---|---|---|---|")
        for r in s["rows"]:
            over = "" if r["name"] == "none" else f"{r['delta']:+.0f}"
            w(f"| {self.LUA_CONFIGS.get(r['name'], r['name'])} | {r['ns']:.0f} | {over} | "
              f"{1e9 / r['ns']:,.0f} |")

    def section_scrape(self):
        self.load_now("scrape")
        argv = ["taskset", "-c", self.cpu, self.bin["http"], "--cpu", "",
                str(self.a.scrape_rounds)]
        self.log("scrape: " + self.show(argv))
        out = self.run(argv)
        blocks = {}
        title = None
        for line in out.splitlines():
            if not line.startswith(" "):
                title = line.strip()
                blocks[title] = {}
                continue
            m = re.match(r"\s+(.+?)\s+median\s+([\d.]+) ms\s+p99\s+([\d.]+) ms\s+mean\s+([\d.]+) "
                         r"ms\s+\((\d+) bytes", line)
            if m and title:
                blocks[title][m[1]] = {"median": float(m[2]), "p99": float(m[3]),
                                       "mean": float(m[4]), "bytes": int(m[5])}
        self.sections[5] = {"cmd": self.show(argv), "blocks": blocks, "raw": out}

    # --- 3. live ------------------------------------------------------------------------------

    def section_live(self):
        if os.geteuid() != 0:
            self.sections[3] = {"skipped": "needs root (network namespaces, BPF)"}
            self.sections.setdefault(4, {})["soak"] = {"skipped": "needs root"}
            return
        self.live = Live(self)
        try:
            self.live.setup()
            if 3 in self.a.sections:
                self.sections[3] = {"ramp": self.live.ramp(), "per_1k": self.live.per_1k(),
                                    "load": self.live.load_run(), "setup": self.live.setup_cmds}
            if 4 in self.a.sections:
                self.sections.setdefault(4, {})["soak"] = self.live.soak()
        finally:
            self.live.teardown()

    # --- report -------------------------------------------------------------------------------

    def machine(self):
        lscpu = self.run(["lscpu"])
        info = dict(re.findall(r"^([^:\n]+):\s+(.*)$", lscpu, re.M))
        mem = open("/proc/meminfo").readline().split()[1]
        commit = self.run(["git", "-C", self.top, "rev-parse", "--short", "HEAD"]).strip()
        # The report being rewritten (BENCHMARK.md) does not make the code measured dirty.
        out = os.path.relpath(os.path.abspath(self.a.out), self.top)
        dirty = "\n".join(line for line in self.run(
            ["git", "-C", self.top, "status", "--porcelain", "--untracked-files=no"]).splitlines()
            if line[3:] != out)
        versions = {}
        for name, argv in [("cc", ["cc", "--version"]), ("tshark", ["tshark", "-v"]),
                           ("sngrep", ["sngrep", "-V"]), ("tcpreplay", ["tcpreplay", "-V"])]:
            try:
                r = subprocess.run(argv, capture_output=True, text=True)
                versions[name] = (r.stdout or r.stderr).splitlines()[0].strip()
            except (OSError, IndexError):
                versions[name] = "absent"
        # A VM may name its CPU no more than "AMD EPYC": the family and model numbers tell the
        # generation, and the flags which variant of the parser (sip_parse.c, variant_best)
        # the timed runs took, where valgrind's counts are always the AVX2 one's.
        flags = info.get("Flags", "").split()
        simd = ("AVX-512" if "avx512bw" in flags else "AVX2" if "avx2" in flags
                else "SSE2" if "sse2" in flags else "NEON" if "asimd" in flags else "?")
        return {"model": f"{info.get('Model name', '?')} (family {info.get('CPU family', '?')}, "
                         f"model {info.get('Model', '?')}; the parser's {simd} variant)",
                "cpus": info.get("CPU(s)", "?"),
                "threads": info.get("Thread(s) per core", "?"),
                "kernel": platform.release(), "mem_gib": int(mem) / 1024 / 1024,
                "commit": commit + ("+dirty" if dirty.strip() else ""), "versions": versions}

    def report(self, started, machine, load_start):
        L = []
        w = L.append
        verdict = lambda ok: "pass" if ok else "**miss**"
        w("# Benchmarks")
        w("")
        w(f"Regenerate with `tests/bench/run.sh` (or `scripts/bench.sh`, which installs the "
          f"dependencies first); `--quick` for a short run. This file was written by "
          f"`{self.a.invocation}` on {started:%Y-%m-%d %H:%M} UTC, commit {machine['commit']}.")
        w("Every figure comes with the command that produced it, run from the repository root "
          "against the release build (`build-bench`, made by `scripts/build-release.sh`: -O3 "
          "with link-time and profile-guided optimisation, -g for the profiles; the profile "
          "comes from a training run on inputs of its own, not on this file's). The plain "
          "Release build (`build-bench-plain`, -O3 alone) runs beside it in sections 1 and 2. "
          "Inputs are generated into `$WORK` (a temporary directory) by the commands listed "
          "under [Inputs](#inputs).")
        w("")
        w("## Machine")
        w("")
        w(f"- CPU: {machine['model']}, {machine['cpus']} CPUs ({machine['threads']} thread(s) "
          f"per core); {machine['mem_gib']:.1f} GiB RAM; kernel {machine['kernel']}")
        w(f"- Tools: {machine['versions']['cc']}; {machine['versions']['tshark']}; "
          f"{machine['versions']['sngrep']}; {machine['versions']['tcpreplay']}")
        w(f"- Pinning: measured programs on CPU {self.cpu} (`taskset -c {self.cpu}`); live "
          f"senders on CPU {self.send_cpu}.")
        w(f"- Load average (1, 5, 15 min) at start: {self.loads[0][1]}, after waiting "
          f"{getattr(self, 'settled', 0):.0f} s (at most 180) for the build's load to fall to "
          f"0.5; at each section's "
          f"start (it also counts this run's programs of the section before): " +
          "; ".join(f"{when} {la}" for when, la, _ in self.loads[1:]) + ".")
        w("- Other work at each section's start (CPUs busy during 2 s while nothing of this run "
          "was running): " + "; ".join(f"{when} {o:.2f}" for when, _, o in self.loads) + ".")
        busiest = max(o for _, _, o in self.loads)
        if load_start > 0.5 or busiest > 0.2:
            w("")
            w(f"> **Noisy numbers.** The load average was {load_start:.2f} when the run started "
              f"and other work kept up to {busiest:.2f} CPUs busy at a section's start (warned "
              f"above 0.5 and 0.2): the two CPUs were shared, so wall-clock figures are inflated "
              f"and vary between runs. Throughputs are therefore judged on CPU time "
              f"(user + system of the measured process), which time spent waiting for a CPU "
              f"does not inflate; the caches and the memory bus stay shared. Live figures "
              f"depend on the sender and the consumer getting a CPU in time and suffer most.")
        w("")
        w("## Summary")
        w("")
        w("| # | figure | measured | target | result |")
        w("|---|---|---|---|---|")
        for row in self.summary_rows():
            w("| " + " | ".join(row) + " |")
        w("")
        for num, title, fn in [(1, "Parser", self.report_parser),
                               (2, "Offline pipeline", self.report_offline),
                               (3, "Live capture", self.report_live),
                               (4, "Memory", self.report_memory),
                               (5, "Scrape", self.report_scrape),
                               (6, "Lua rules", self.report_lua)]:
            if num not in self.a.sections:
                continue
            w(f"## {num}. {title}")
            w("")
            fn(w, verdict)
            w("")
        w("## Inputs")
        w("")
        w("| input | command |")
        w("|---|---|")
        for what, cmd in self.inputs:
            w(f"| {what} | `{cmd}` |")
        w("")
        if self.notes:
            w("## Notes")
            w("")
            for n in self.notes:
                w(f"- {n}")
            w("")
        return "\n".join(L)

    def summary_rows(self):
        rows = []
        s = self.sections
        if 1 in s:
            for r in s[1]["rows"]:
                rows.append(["1", f"parse {r['msg']}", f"{r['median']:.0f} ns",
                             f"≤ {PARSE_TARGET_NS} ns",
                             "pass" if r["median"] <= PARSE_TARGET_NS else "**miss**"])
        if 2 in s:
            by = {r["tool"]: r for r in s[2]["rows"]}
            base = by["sipscope, no rules"]["cpu_rate"]["median"]
            ts = by["tshark -q -z sip,stat"]["cpu_rate"]["median"]
            def measured(v):
                """A rate, its ratio to tshark, and what that ratio makes of the issue's tshark
                figure: the rate at the pace of the machine the targets were set on."""
                return (f"{v:,.0f}/s ({v / ts:.1f}x tshark; {v * TSHARK_REFERENCE / ts:,.0f}/s "
                        f"at the issue's tshark pace)")

            res = "pass" if base >= OFFLINE_TARGET else "**miss**"
            if base >= OFFLINE_STRETCH:
                res = "pass (stretch too)"
            rows.append(["2", "offline, no rules (msgs per CPU-second)", measured(base),
                         f"≥ {OFFLINE_TARGET:,}/s (stretch {OFFLINE_STRETCH:,})", res])
            if RULES_NO_EVENTS in by:
                v = by[RULES_NO_EVENTS]["cpu_rate"]["median"]
                rows.append(["2", "offline, bundled rules", measured(v),
                             f"≥ {OFFLINE_RULES_TARGET:,}/s",
                             "pass" if v >= OFFLINE_RULES_TARGET else "**miss**"])
            if RULES_EVENTS in by:
                v = by[RULES_EVENTS]["cpu_rate"]["median"]
                rows.append(["2", "offline, bundled rules and an events file", measured(v),
                             "(reported beside)", "—"])
            if RULES_NO_EVENTS not in by:
                rows.append(["2", "offline, bundled rules", "—", f"≥ {OFFLINE_RULES_TARGET:,}/s",
                             "pending (no `--rules` in sipscope yet)" if not s[2]["rules_flag"]
                             else "pending (no bundled rules in `rules/`)"])
        if 3 in s:
            if "skipped" in s[3]:
                rows.append(["3", "live", "—", "", "skipped: " + s[3]["skipped"]])
            else:
                best, offered = self.live_best()
                limited = s[3]["ramp"]["stopped"]
                rows.append(["3", "highest rate with zero drops (600-byte messages)",
                             f"{best:,.0f} msgs/s" if best else "none",
                             f"≥ {LIVE_TARGET:,}/s",
                             ("pass" if best >= LIVE_TARGET else "**miss**") +
                             f" ({limited})"])
                p = s[3]["per_1k"]
                rows.append(["3", "sipscope CPU per 1,000 calls/s", f"{p['per_1k']:.2f}% of a "
                             f"core", f"< {CPU_PER_1K_TARGET}%",
                             "pass" if p["per_1k"] < CPU_PER_1K_TARGET else "**miss**"])
                ld = s[3]["load"]
                rows.append(["3", "load run: counters agree, zero drops",
                             f"{ld['sent']:,} msgs at {ld['rate']:,.0f}/s", "all agree",
                             "pass" if ld["ok"] else "**miss**"])
        if 4 in s:
            m = s[4]
            if "per_call" in m:
                rows.append(["4", "bytes per tracked call (RSS, 1,000,000 calls)",
                             f"{m['per_call']:.0f} B (structures: "
                             f"{float(m['sizes']['bytes_per_call']):.0f} B)",
                             f"≤ {MEMORY_TARGET} B",
                             "pass" if m["per_call"] <= MEMORY_TARGET else "**miss**"])
            soak = m.get("soak")
            if soak and "skipped" not in soak:
                rows.append(["4", f"RSS over a {soak['seconds'] / 60:.0f}-minute soak",
                             f"{soak['slope']:+.1f} KiB/min after warm-up",
                             f"flat (< {SOAK_FLAT_KIB_PER_MIN} KiB/min)",
                             "pass" if soak["flat"] else "**miss**"])
            elif soak:
                rows.append(["4", "RSS soak", "—", "flat", "skipped: " + soak["skipped"]])
        if 5 in s:
            b = s[5]["blocks"].get("10,000 counters (3 labels)", {})
            if "render" in b:
                rows.append(["5", "render /metrics, 10,000 series", f"{b['render']['median']:.2f}"
                             f" ms", f"≤ {RENDER_TARGET_MS:.0f} ms",
                             "pass" if b["render"]["median"] <= RENDER_TARGET_MS else "**miss**"])
            if "gzip level 1" in b:
                rows.append(["5", "gzip level 1 of the same", f"{b['gzip level 1']['median']:.2f}"
                             f" ms", "(reported beside)", "—"])
        if 6 in s:
            for r in s[6]["rows"]:
                if r["name"] in ("empty_hook", "bundled_no_exporter"):
                    rows.append(["6", f"Lua: {self.LUA_CONFIGS[r['name']]}, over no rules",
                                 f"{r['delta']:+.0f} ns per message", "(reported)", "—"])
        return rows

    def live_best(self):
        """The highest rate the sender reached at a step with zero drops, and that step's
        offered rate; (0, 0) when none."""
        ok = [(st["achieved"], st["target"]) for st in self.sections[3]["ramp"]["steps"]
              if st["zero_drop"]]
        return max(ok) if ok else (0, 0)

    def report_parser(self, w, verdict):
        s = self.sections[1]
        w("Nanoseconds per `sip_parse` call in datagram mode on the fixtures "
          "`tests/fixtures/sip/{invite_sdp,ok_200,register,bye}.sip`, timed with the thread's "
          f"CPU clock (`--cpu`), median of {s.get('runs', 'the')} runs"
          + (f" in rounds that alternate this build and {s['baseline']['label']}: a slow "
             "spell of the VM then falls on both." if "baseline" in s else "."))
        w("")
        w(f"Command, once per run: `{s['cmd']}`")
        w("")
        w("| message | bytes | headers | median ns | min | max | target | result |")
        w("|---|---|---|---|---|---|---|---|")
        for r in s["rows"]:
            w(f"| {r['msg']} | {r['bytes']} | {r['headers']} | {r['median']:.1f} | "
              f"{r['min']:.1f} | {r['max']:.1f} | ≤ {PARSE_TARGET_NS} | "
              f"{verdict(r['median'] <= PARSE_TARGET_NS)} |")
        if "baseline" in s:
            b = s["baseline"]
            w("")
            w(f"The same, in the same rounds, with {b['label']}: `{b['cmd']}`")
            w("")
            w("| message | median ns | min | max | this build / that one (medians) |")
            w("|---|---|---|---|---|")
            ours = {r["msg"]: r for r in s["rows"]}
            for r in b["rows"]:
                o = ours.get(r["msg"])
                ratio = f"{o['median'] / r['median']:.2f}" if o else "—"
                w(f"| {r['msg']} | {r['median']:.1f} | {r['min']:.1f} | {r['max']:.1f} | "
                  f"{ratio} |")
        if "profile" in s:
            p = s["profile"]
            w("")
            w("Profile (instruction counts are deterministic, unlike times on this machine): "
              f"callgrind on each fixture alone, e.g. `{p['cmd']}`, then `{p['annotate']}`. "
              "Valgrind does not run AVX-512 code, so it counts the parser's AVX2 variant; on a "
              "CPU with AVX-512BW the timed runs take the AVX-512 one, whose count differs: "
              "there the pace below is only indicative.")
            w("")
            w("| fixture | instructions per parse (inclusive, of the function named) | "
              "measured ns | instructions per ns achieved | instructions that fit in 150 ns at "
              "that pace |")
            w("|---|---|---|---|---|")
            ns = dict(zip(FIXTURES, [r["median"] for r in s["rows"]]))
            for name, got in p["ir_per_parse"].items():
                if isinstance(got, (int, float)):  # a run written before the name was kept
                    got = (got, "sip_parse")
                if got and name in ns:
                    ir, fn = got
                    pace = ir / ns[name]
                    cut = (f"{100 * (1 - PARSE_TARGET_NS / ns[name]):.0f}% fewer"
                           if ns[name] > PARSE_TARGET_NS else "within the target")
                    w(f"| {name} | {ir:,.0f} (`{fn}`) | {ns[name]:.0f} | {pace:.1f} | "
                      f"{pace * PARSE_TARGET_NS:,.0f} ({cut}) |")
            w("")
            w(f"Where the INVITE's instructions go (self cost per parse, `{p['cmd']}`):")
            w("")
            self.profile_table(w, p, p["calls"])

    def profile_table(self, w, p, messages):
        """Top functions by self cost; messages: what the per-message column divides by."""
        w("| self instructions | share | function |" + (" per message |" if messages else ""))
        w("|---|---|---|" + ("---|" if messages else ""))
        for ir, fn, lib in p["self"][:15]:
            where = fn if "sipscope" in lib or "bench" in lib or not lib else f"{fn} ({lib})"
            per = f" {ir / messages:,.0f} |" if messages else ""
            w(f"| {ir:,} | {100 * ir / p['total']:.1f}% | `{where}` |{per}")

    @staticmethod
    def baseline_name(label, rules=False):
        what = "bundled rules, no events file" if rules else "no rules"
        return f"sipscope {label}, {what} (baseline)"

    def report_offline(self, w, verdict):
        s = self.sections[2]
        w(f"One file of {s['messages']:,} SIP messages over UDP ({s['span']:.0f} s of traffic; "
          f"gen_traffic's mix of answered, busy, 503, cancelled, challenged, redirected and "
          f"unanswered calls, challenged registrations and OPTIONS), read from the page cache "
          f"by each tool in turn, {self.a.runs} rounds, round robin; in each round every "
          f"sipscope configuration runs {self.a.repeats} times in a row ({self.a.runs * self.a.repeats} "
          f"runs each; tshark and sngrep, at half a minute a run, {self.a.runs}). A rate is messages / "
          f"seconds; \"CPU\" is user + system time of the process, \"wall\" its elapsed time. "
          f"Each tool was checked once to read the whole file.")
        w("")
        w("| tool | msgs/s (CPU) median | min | max | msgs/s (wall) median | min | max | "
          "max RSS (GNU time) | check |")
        w("|---|---|---|---|---|---|---|---|---|")
        for r in s["rows"]:
            c, wl = r["cpu_rate"], r["wall_rate"]
            w(f"| {r['tool']} | {c['median']:,.0f} | {c['min']:,.0f} | {c['max']:,.0f} | "
              f"{wl['median']:,.0f} | {wl['min']:,.0f} | {wl['max']:,.0f} | "
              f"{r['maxrss_mib']:.0f} MiB | {r['check']} |")
        by = {r["tool"]: r for r in s["rows"]}
        base = by["sipscope, no rules"]
        w("")
        w("| ratio (medians) | CPU | wall |")
        w("|---|---|---|")
        for other in ["tshark -q -z sip,stat", "sngrep -N -q -R -I"]:
            o = by[other]
            w(f"| sipscope, no rules / {other.split()[0]} | "
              f"{base['cpu_rate']['median'] / o['cpu_rate']['median']:.1f}x | "
              f"{base['wall_rate']['median'] / o['wall_rate']['median']:.1f}x |")
        for _, label in self.a.baselines:
            for ours, theirs in [("sipscope, no rules", self.baseline_name(label)),
                                 (RULES_NO_EVENTS, self.baseline_name(label, rules=True))]:
                if ours in by and theirs in by:
                    b, o = by[ours], by[theirs]
                    w(f"| {ours} / {theirs} (same rounds) | "
                      f"{b['cpu_rate']['median'] / o['cpu_rate']['median']:.2f}x | "
                      f"{b['wall_rate']['median'] / o['wall_rate']['median']:.2f}x |")
        for name in (RULES_NO_EVENTS, RULES_EVENTS):
            if name in by:
                r, t = by[name], by["tshark -q -z sip,stat"]
                w(f"| {name} / tshark | "
                  f"{r['cpu_rate']['median'] / t['cpu_rate']['median']:.1f}x | "
                  f"{r['wall_rate']['median'] / t['wall_rate']['median']:.1f}x |")
        w("")
        # The machine's pace in this run, by the other tools against the figures: a
        # shared VM's speed moves by tens of percent between hours, and absolute targets with
        # it. Context only: the verdicts below are on the absolute figures.
        ts = by["tshark -q -z sip,stat"]["cpu_rate"]["median"]
        sg = by["sngrep -N -q -R -I"]["cpu_rate"]["median"]
        w(f"This run's pace: tshark read {ts:,.0f} msgs/s, {100 * ts / TSHARK_REFERENCE:.0f}% of "
          f"the issue's {TSHARK_REFERENCE:,} for this kind of machine, and sngrep {sg:,.0f}, "
          f"{100 * sg / SNGREP_REFERENCE:.0f}% of its {SNGREP_REFERENCE:,}. The no-rules target "
          f"is {OFFLINE_TARGET / TSHARK_REFERENCE:.1f}x the issue's tshark figure; this run's "
          f"ratio is {base['cpu_rate']['median'] / ts:.1f}x.{rules_pace(by, ts)} The verdicts "
          f"below are on the absolute figures.")
        w("")
        w("| figure | target | result | command |")
        w("|---|---|---|---|")
        v = base["cpu_rate"]["median"]
        w(f"| no rules: {v:,.0f} msgs/s | ≥ {OFFLINE_TARGET:,} (stretch {OFFLINE_STRETCH:,}) | "
          f"{verdict(v >= OFFLINE_TARGET)} | `{base['cmd']} >/dev/null` |")
        if RULES_NO_EVENTS in by:
            r = by[RULES_NO_EVENTS]
            v = r["cpu_rate"]["median"]
            w(f"| bundled rules (sip-exporter migration rule excluded): {v:,.0f} msgs/s | "
              f"≥ {OFFLINE_RULES_TARGET:,} | {verdict(v >= OFFLINE_RULES_TARGET)} | "
              f"`{r['cmd']} >/dev/null` |")
        if RULES_EVENTS in by:
            r = by[RULES_EVENTS]
            v = r["cpu_rate"]["median"]
            w(f"| the same with an events file (call records; not a rule, so no target of its "
              f"own): {v:,.0f} msgs/s | (reported beside) | — | `{r['cmd']} >/dev/null` |")
        if RULES_NO_EVENTS not in by:
            why = ("sipscope has no `--rules` flag yet" if not s["rules_flag"]
                   else "no bundled rules in `rules/`")
            w(f"| bundled rules | ≥ {OFFLINE_RULES_TARGET:,} | pending: {why}; run.sh runs it "
              f"(`--rules DIR`, the migration rule left out) once it exists | — |")
        w(f"| tshark | (reference; ~{TSHARK_REFERENCE:,} on a quiet machine) | — | "
          f"`{by['tshark -q -z sip,stat']['cmd']} >/dev/null` |")
        w(f"| sngrep | (reference; ~{SNGREP_REFERENCE:,} on a quiet machine) | — | "
          f"`{by['sngrep -N -q -R -I']['cmd']} </dev/null` |")
        if "profile" in s:
            p = s["profile"]
            w("")
            missed = base["cpu_rate"]["median"] < OFFLINE_TARGET
            w(f"### Where the time goes" + (" (target missed)" if missed else ", without rules"))
            w("")
            w(f"`{p['cmd']}` on a {p['messages']:,}-message file of the same mix, then "
              f"`{p['annotate']}`: **{p['total'] / p['messages']:,.0f} instructions per message** "
              f"for the whole run (start-up and the final exposition included). "
              f"Top functions by self cost:")
            w("")
            self.profile_table(w, p, p["messages"])
            incl = {fn: ir for ir, fn, _ in p["incl"]}
            keys = [k for k in ["engine_frame", "sip_parse", "track_message", "builtin_on_event",
                                "health_packets", "decode_frame", "pcap_next_ex", "expo_render"]
                    if k in incl]
            if keys:
                w("")
                w("Inclusive (function and everything it calls), per message: " + ", ".join(
                    f"`{k}` {incl[k] / p['messages']:,.0f}" for k in keys) + ".")
            per_msg = p["total"] / p["messages"]
            pace = per_msg * base["cpu_rate"]["median"]  # instructions per CPU-second achieved
            w("")
            w(f"At the pace measured above ({per_msg:,.0f} instructions per message at "
              f"{base['cpu_rate']['median']:,.0f} msgs/s, i.e. {pace / 1e9:.1f} billion "
              f"instructions per CPU-second), {OFFLINE_TARGET:,} msgs/s leaves "
              f"**{pace / OFFLINE_TARGET:,.0f} instructions per message** for everything"
              + (f"; `sip_parse` alone takes {incl['sip_parse'] / p['messages']:,.0f}"
                 if "sip_parse" in incl else "") + ".")
        if "profile_rules" in s and "profile_events" in s:
            self.report_rules_profile(w)

    @staticmethod
    def by_function(p):
        """Self instructions by function, LuaJIT's machine code (no symbol, an address)
        counted as one."""
        out = {}
        for ir, fn, lib in p["self"]:
            key = "LuaJIT machine code (compiled traces)" if fn.startswith("0x") else fn
            out[key] = out.get(key, 0) + ir
        return out

    def report_rules_profile(self, w):
        """The bundled rules' configurations under callgrind, against no rules: what they add
        per message, and where."""
        s = self.sections[2]
        p0, p1, p2 = s["profile"], s["profile_rules"], s["profile_events"]
        n = p0["messages"]
        per = [p["total"] / n for p in (p0, p1, p2)]
        w("")
        w("### Where the time goes with the bundled rules (target missed)")
        w("")
        w(f"The same 100,000-message file, with the bundled rules (`{p1['cmd']}`), and with an "
          f"events file as well (`{p2['cmd']}`). The rule budget only keeps the rules from "
          f"timing out under valgrind. Instructions per message for the whole run: no rules "
          f"**{per[0]:,.0f}**, bundled rules **{per[1]:,.0f}** (+{per[1] - per[0]:,.0f}), with "
          f"an events file **{per[2]:,.0f}** (+{per[2] - per[1]:,.0f} more). Instructions do "
          f"not count the time the collector and the rules' tables spend waiting on memory, "
          f"which weighs more here than in the C path.")
        for title, a, b in [("the bundled rules add over no rules", p0, p1),
                            ("an events file adds over the bundled rules alone", p1, p2)]:
            fa, fb = self.by_function(a), self.by_function(b)
            diff = sorted(((fb.get(k, 0) - fa.get(k, 0), k) for k in set(fa) | set(fb)),
                          reverse=True)
            w("")
            w(f"What {title}, by function (self instructions per message, the 12 largest):")
            w("")
            w("| function | added per message |")
            w("|---|---|")
            for d, k in diff[:12]:
                w(f"| `{k}` | {d / n:,.0f} |")

    def report_live(self, w, verdict):
        s = self.sections.get(3, {})
        if "skipped" in s:
            w(f"Skipped: {s['skipped']}.")
            return
        w("Two network namespaces joined by a veth pair, made by the script and deleted at its "
          "end: the sender in one, sipscope capturing on the other end (`--sip-ports 5060`) in "
          "the other, where a socket bound to port 5060 that is never read "
          "(`sip_sender -S`) absorbs the datagrams. The softirq that runs the BPF filter "
          "runs on the sender's CPU (veth delivers on the transmitting CPU): its cost shows in "
          "the sender's system time and the CPU's softirq time, not in sipscope's.")
        w("")
        w("Setup: " + "; ".join(f"`{c}`" for c in s["setup"]))
        w("")
        r = s["ramp"]
        w(f"### Highest rate with zero drops")
        w("")
        w(f"`sip_sender` sends answered calls (INVITE with SDP, 100, 180, 200 with SDP, ACK, BYE, "
          f"200: {MSGS_PER_CALL} messages, each padded to 600 bytes of SIP), each with its own "
          f"Call-ID, at a paced rate; each step lasts {self.a.step_seconds} s on a sipscope "
          f"started for the ramp. A step has zero drops when `sipscope_capture_drops_total` did "
          f"not move and the kernel's matched packets, sipscope's SIP messages and the "
          f"datagrams sent are the same number. A step that loses messages or whose sender falls "
          f"short of 99% of the offered rate gets a second try (the machine is shared: either "
          f"side can lose its CPU for a while); the ramp stops when both tries of a step lose "
          f"messages or fall short. The figure is the highest rate sent at a step with zero "
          f"drops. "
          f"sipscope: `{r['cmd']}`.")
        w("")
        w("| offered msgs/s | sent msgs/s | sent | kernel matched | SIP messages | drops | zero "
          "drop | sipscope CPU | per 1,000 calls/s | sender user / sys | softirq on sender CPU | "
          "load (1 min) after |")
        w("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for st in r["steps"]:
            again = " (2nd try)" if st.get("attempt") == 2 else ""
            w(f"| {st['target']:,}{again} | {st['achieved']:,.0f} | {st['sent']:,} | "
              f"{st['matched']:,} | "
              f"{st['messages']:,} | {st['drops']:,} | {'yes' if st['zero_drop'] else '**no**'} | "
              f"{st['cpu_pct']:.1f}% | {st['per_1k']:.2f}% | {st['sender_user']:.2f} s / "
              f"{st['sender_sys']:.2f} s | {st['softirq_pct']:.0f}% | {st['load']:.2f} |")
        w("")
        w(f"Sender command of a step: `{r['sender_cmd']}`. Ramp ended: {r['stopped']}.")
        last = r["steps"][-1] if r["steps"] else None
        if last and r["stopped"].startswith("sender-limited"):
            busy = 100 * (last["sender_user"] + last["sender_sys"]) / self.a.step_seconds
            w(f"At the last step the sender's CPU was {busy:.0f}% busy in the sender "
              f"(user + system, the softirq that delivers to the veth and runs the filter "
              f"included): the sender, not sipscope, set the limit; sipscope used "
              f"{last['cpu_pct']:.0f}% of its core.")
        best, offered = self.live_best()
        w("")
        w(f"| figure | target | result |")
        w("|---|---|---|")
        w(f"| {best:,.0f} msgs/s sent (step offering {offered:,}) and captured with zero drops "
          f"| ≥ {LIVE_TARGET:,} | {verdict(best >= LIVE_TARGET)} |")
        p = s["per_1k"]
        w("")
        w("### CPU per 1,000 calls/s")
        w("")
        w(f"A fresh sipscope under a steady {p['cps']:,} calls/s ({p['rate']:,} msgs/s, "
          f"{MSGS_PER_CALL} messages per call; gen_traffic's mix averages "
          f"{MIX_MSGS_PER_CALL:.2f} messages per call attempt, so per 1,000 calls/s of that mix "
          f"multiply by {MIX_MSGS_PER_CALL / MSGS_PER_CALL:.2f}) for {p['seconds']} s. sipscope's "
          f"CPU is the scheduler's run time of all its threads (`/proc/PID/task/*/schedstat`) from "
          f"the sender's start until the last message is counted, divided by the sending time "
          f"(the idle cost included: a look at the ring buffer every 50 ms while frames come, "
          f"a tick a second).")
        w("")
        w("| figure | value | target | result | command |")
        w("|---|---|---|---|---|")
        w(f"| sipscope CPU per 1,000 calls/s | {p['per_1k']:.2f}% of a core | "
          f"< {CPU_PER_1K_TARGET}% | {verdict(p['per_1k'] < CPU_PER_1K_TARGET)} | "
          f"`{p['cmd']}` |")
        w(f"| of which idle cost (the same sipscope for {p['seconds']} s before the traffic) | "
          f"{p['idle_pct']:.2f}% of a core | — | — | |")
        w(f"| marginal: under traffic minus idle | {p['per_1k'] - p['idle_pct']:.2f}% per 1,000 "
          f"calls/s | — | — | |")
        w(f"| sender user / system time | {p['sender_user']:.2f} s / {p['sender_sys']:.2f} s "
          f"over {p['seconds']} s | — | — | |")
        w(f"| drops / sent / SIP messages | {p['drops']} / {p['sent']:,} / {p['messages']:,} | "
          f"0 drops | {verdict(p['zero_drop'])} | |")
        ld = s["load"]
        w("")
        w("### Load run (issue 4 acceptance, outside CI)")
        w("")
        w(f"tcpreplay replays a gen_traffic capture of {ld['capture_msgs']:,} messages into the "
          f"veth at {ld['pps']:,} packets/s; a fresh sipscope captures it. The kernel's counters, "
          f"sipscope's counters and the capture must agree, with zero drops.")
        w("")
        w(f"Command: `{ld['cmd']}`")
        w("")
        w("| check | value | result |")
        w("|---|---|---|")
        for name, value, ok in ld["checks"]:
            w(f"| {name} | {value} | {verdict(ok)} |")
        w(f"| rate | {ld['rate']:,.0f} msgs/s over {ld['seconds']:.1f} s | — |")
        w(f"| sipscope CPU | {ld['cpu_pct']:.1f}% of a core ({ld['per_1k']:.2f}% per 1,000 "
          f"calls/s at {MIX_MSGS_PER_CALL:.2f} messages per call) | — |")
        w(f"| sipscope RSS at the end | {ld['rss_kib'] / 1024:.1f} MiB | — |")

    def report_memory(self, w, verdict):
        m = self.sections.get(4, {})
        if "per_call" in m:
            sz = m["sizes"]
            w(f"What the engine keeps per call without rules, with {m['calls']:,} answered calls "
              f"up at once (gen_calls: INVITE, 200, ACK per call at 1,000 calls/s, then an "
              f"OPTIONS 100 s later so that every INVITE transaction has expired). Measured: the "
              f"peak RSS of reading that file minus the peak RSS of reading a file with one such "
              f"call, divided by the calls (peak RSS by GNU time, `/usr/bin/time -f %M`); median of {len(m['rss_big_all'])} runs. Output "
              f"check: {m['check']}.")
            w("")
            w("| figure | value | target | result | command |")
            w("|---|---|---|---|---|")
            w(f"| RSS, {m['calls']:,} calls | {m['rss_big_kib'] / 1024:.1f} MiB (runs: " +
              ", ".join(f"{x / 1024:.1f}" for x in m["rss_big_all"]) +
              f") | | | `{m['cmd_big']} >/dev/null` |")
            w(f"| RSS, 1 call | {m['rss_one_kib'] / 1024:.1f} MiB | | | "
              f"`{m['cmd_one']} >/dev/null` |")
            w(f"| **bytes per call (RSS)** | **{m['per_call']:.0f} B** | ≤ {MEMORY_TARGET} B | "
              f"{verdict(m['per_call'] <= MEMORY_TARGET)} | |")
            w(f"| bytes per call (structures) | {float(sz['bytes_per_call']):.1f} B | "
              f"≤ {MEMORY_TARGET} B | {verdict(float(sz['bytes_per_call']) <= MEMORY_TARGET)} | "
              f"`{m['cmd_sizes']}` |")
            w("")
            w(f"The structures: a call's table entry is {sz.get('entry_bytes', sz['sizeof_sip_dialog'])} B "
              f"without rules (table node {sz['sizeof_table_node']} B with the two key hashes "
              f"of (Call-ID, caller's tag), the deadline and the slot generation; five timestamps; "
              f"CSeq, ACK and four To-tag fingerprints; {sz['label_bytes']} B of label ids; "
              f"codes, state, flags; the challenge time and the rules' slot), plus "
              f"{sz.get('record_bytes', '?')} B of records the table keeps per entry apart from it "
              f"(timer, hash chain and age-list links, heap slot) and {sz['bucket_bytes_per_call']} "
              f"B of hash buckets. With `--events` or rules a call also keeps "
              f"{sz['text_bytes']} B of text (Call-ID, From and To URIs) for CDRs and rule handles: "
              f"{sz.get('entry_bytes_with_text', sz['sizeof_sip_dialog'])} B entries, "
              f"{float(sz.get('bytes_per_call_with_text', 0)):.1f} B per call. With `--events` "
              f"and its signalling fields (the default), {sz.get('cdr_bytes', '?')} B more (addresses, "
              f"ports, transport, cause, codec, User-Agent and Server up to 128 B each): "
              f"{sz.get('entry_bytes_with_cdr', '?')} B entries, "
              f"{float(sz.get('bytes_per_call_with_cdr', 0)):.1f} B per call. The RSS figure differs "
              f"from the structures by what they do not count and what is never touched: the "
              f"transaction table's pages touched while the calls were set up (about 32,000 INVITE "
              f"transactions of {sz['sizeof_sip_txn']} B alive at 1,000 calls/s) and its buckets, "
              f"fixed costs, not per call; heap slots a call in a deadline lane never touches.")
        soak = m.get("soak")
        if soak:
            w("")
            w("### RSS over a soak")
            w("")
            if "skipped" in soak:
                w(f"Skipped: {soak['skipped']}.")
                return
            w(f"A fresh sipscope under a steady {soak['cps']:,} calls/s ({soak['cps'] * 7:,} "
              f"msgs/s) with a hold time of {soak['hold']} s, so about "
              f"{soak['cps'] * soak['hold']:,} calls are up at once, for {soak['seconds']} s; "
              f"VmRSS sampled every {soak['interval']} s. Warm-up (tables filling: hold time, "
              f"then 32 s of lingering ended calls and transactions) ends at {soak['warm']:.0f} s; "
              f"the slope is a least-squares fit over the samples after it. Flat means under "
              f"{SOAK_FLAT_KIB_PER_MIN} KiB/min. Sender: `{soak['sender_cmd']}`; sipscope: "
              f"`{soak['cmd']}`.")
            w("")
            w(f"| figure | value | target | result |")
            w("|---|---|---|---|")
            w(f"| RSS slope after warm-up | {soak['slope']:+.1f} KiB/min | "
              f"< {SOAK_FLAT_KIB_PER_MIN} KiB/min | {verdict(soak['flat'])} |")
            w(f"| RSS after warm-up, min / max | {soak['post_min'] / 1024:.1f} / "
              f"{soak['post_max'] / 1024:.1f} MiB | — | — |")
            w(f"| drops / sent / SIP messages | {soak['drops']} / {soak['sent']:,} / "
              f"{soak['messages']:,} | 0 drops | {verdict(soak['drops'] == 0)} |")
            w(f"| sipscope CPU | {soak['cpu_pct']:.2f}% of a core | — | — |")
            w("")
            w("<details><summary>The samples (calls tracked include the ended calls that "
              "linger 32 s)</summary>")
            w("")
            w("| t (s) | RSS (KiB) | calls tracked | transactions | SIP messages |")
            w("|---|---|---|---|---|")
            for smp in soak["samples"]:
                w(f"| {smp['t']:.0f} | {smp['rss']:,} | {smp['calls']:,} | {smp['txns']:,} | "
                  f"{smp['messages']:,} |")
            w("")
            w("</details>")

    def report_scrape(self, w, verdict):
        s = self.sections[5]
        w("Rendering `/metrics` for a registry of 10,000 counter series (10 methods x 50 codes x "
          "20 carriers, integer values), without compression, and gzip at level 1 of the "
          "result (the same deflate set-up as the HTTP server), timed with the thread's CPU "
          "clock; whole scrapes over loopback (wall clock) beside them.")
        w("")
        w(f"Command: `{s['cmd']}`")
        w("")
        w("| what | median ms | p99 ms | mean ms | bytes | target | result |")
        w("|---|---|---|---|---|---|---|")
        for title, rows in s["blocks"].items():
            for what, r in rows.items():
                target, res = "", ""
                if what == "render":
                    target = f"≤ {RENDER_TARGET_MS:.0f} ms"
                    res = verdict(r["median"] <= RENDER_TARGET_MS)
                w(f"| {title}: {what} | {r['median']:.3f} | {r['p99']:.3f} | {r['mean']:.3f} | "
                  f"{r['bytes']:,} | {target} | {res} |")

    def main(self):
        if self.a.report_only:
            return self.rerender(self.a.report_only)
        started = datetime.datetime.utcnow()
        self.settle()
        load_start = self.load_now("start")
        if load_start > 0.5:
            self.log(f"WARNING: load average {load_start:.2f} > 0.5: numbers will be noisy")
        if self.loads[0][2] > 0.2:
            self.log(f"WARNING: other work keeps {self.loads[0][2]:.2f} CPUs busy")
        machine = self.machine()
        try:
            if 1 in self.a.sections:
                self.section_parser()
            if 5 in self.a.sections:
                self.section_scrape()
            if 2 in self.a.sections:
                self.section_offline()
            if 4 in self.a.sections:
                self.section_memory()
            if 6 in self.a.sections:
                self.section_lua()
            if (3 in self.a.sections or 4 in self.a.sections) and not self.a.no_live:
                self.section_live()
            elif self.a.no_live:
                if 3 in self.a.sections:
                    self.sections[3] = {"skipped": "--no-live"}
                if 4 in self.a.sections:
                    self.sections.setdefault(4, {})["soak"] = {"skipped": "--no-live"}
        finally:
            self.load_now("end")
        # Everything the report is made of, so that its text can be redone without measuring.
        with open(f"{self.work}/results.json", "w") as f:
            json.dump({"started": started.isoformat(), "machine": machine,
                       "load_start": load_start, "sections": self.sections,
                       "loads": self.loads, "settled": getattr(self, "settled", 0.0),
                       "inputs": self.inputs, "notes": self.notes,
                       "args": {k: v for k, v in vars(self.a).items() if k != "sections"},
                       "section_list": sorted(self.a.sections)}, f, indent=1)
        self.write(started, machine, load_start)

    def write(self, started, machine, load_start):
        text = self.report(started, machine, load_start)
        with open(self.a.out, "w") as f:
            f.write(text + "\n")
        self.log(f"wrote {self.a.out}")
        print("\n".join("| " + " | ".join(r) + " |" for r in self.summary_rows()))

    def rerender(self, path):
        """Writes the report again from a run's results.json (after a change of wording)."""
        with open(path) as f:
            r = json.load(f)
        self.a.repeats = 1  # runs written before --repeats ran each configuration once a round
        for k, v in r["args"].items():
            if k not in ("out", "report_only", "work", "top", "build"):
                setattr(self.a, k, v)
        self.a.sections = set(r["section_list"])
        self.sections = {int(k): v for k, v in r["sections"].items()}
        self.loads = [tuple(x) for x in r["loads"]]
        self.settled = r.get("settled", 0.0)
        self.inputs = [tuple(x) for x in r["inputs"]]
        self.notes = r["notes"]
        self.work = r["args"].get("work", self.work)
        self.write(datetime.datetime.fromisoformat(r["started"]), r["machine"], r["load_start"])


class Live:
    """Network namespaces, the sink, sipscope instances and senders of section 3 and the soak."""

    def __init__(self, bench):
        self.b = bench
        pid = os.getpid()
        self.tx, self.rx = f"sbtx{pid}", f"sbrx{pid}"
        self.veth_tx, self.veth_rx = f"sba{pid}", f"sbb{pid}"
        self.tx_ip, self.rx_ip = "10.250.0.1", "10.250.0.2"
        self.procs = []
        self.setup_cmds = []
        self.base = 1  # first call number of the next sender run: Call-IDs never repeat

    def ip(self, *args, record=True):
        argv = ["ip"] + list(args)
        subprocess.run(argv, check=True, capture_output=True)
        if record:
            self.setup_cmds.append(shlex.join(argv))

    def setup(self):
        with open(f"{self.b.work}/netns", "w") as f:  # run.sh deletes these if we die
            f.write(f"{self.tx}\n{self.rx}\n")
        self.ip("netns", "add", self.tx)
        self.ip("netns", "add", self.rx)
        self.ip("link", "add", self.veth_tx, "netns", self.tx, "type", "veth", "peer", "name",
                self.veth_rx, "netns", self.rx)
        self.ip("-n", self.tx, "addr", "add", f"{self.tx_ip}/24", "dev", self.veth_tx)
        self.ip("-n", self.rx, "addr", "add", f"{self.rx_ip}/24", "dev", self.veth_rx)
        for ns, dev in [(self.tx, self.veth_tx), (self.rx, self.veth_rx), (self.tx, "lo"),
                        (self.rx, "lo")]:
            self.ip("-n", ns, "link", "set", dev, "up", record=dev != "lo")
        sink = ["ip", "netns", "exec", self.rx, self.b.bin["sender"], "-S", "-d", self.rx_ip,
                "-p", "5060"]
        self.sink = subprocess.Popen(sink, stdout=subprocess.DEVNULL)
        self.setup_cmds.append(self.b.show(sink) + " &")
        self.procs.append(self.sink)
        time.sleep(0.5)
        # Neighbour resolution and first-use costs before anything is measured.
        self.send(7000, 1)

    def teardown(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        for ns in (self.tx, self.rx):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        try:
            os.unlink(f"{self.b.work}/netns")
        except OSError:
            pass

    # sipscope in the receiving namespace

    def start_sipscope(self):
        argv = ["ip", "netns", "exec", self.rx, "taskset", "-c", self.b.cpu,
                self.b.bin["sipscope"], "--interface", self.veth_rx, "--sip-ports", "5060",
                "--web.listen-address", "127.0.0.1:9632", "--log.level", "warn"]
        log = open(f"{self.b.work}/sipscope-live.log", "ab")
        p = subprocess.Popen(argv, stdout=log, stderr=log)
        self.procs.append(p)
        for _ in range(100):
            time.sleep(0.1)
            if p.poll() is not None:
                raise RuntimeError("sipscope exited; see " + f"{self.b.work}/sipscope-live.log")
            r = subprocess.run(["ip", "netns", "exec", self.rx, "curl", "-sf",
                                "http://127.0.0.1:9632/-/ready"], capture_output=True)
            if r.returncode == 0:
                break
        else:
            raise RuntimeError("sipscope did not become ready")
        with open(f"/proc/{p.pid}/comm") as f:  # ip netns exec and taskset exec it in place
            assert f.read().strip() == "sipscope"
        return p, self.b.show(argv)

    def stop_sipscope(self, p):
        p.send_signal(signal.SIGTERM)
        p.wait(10)

    def scrape(self):
        out = subprocess.run(["ip", "netns", "exec", self.rx, "curl", "-sf",
                              "http://127.0.0.1:9632/metrics"], capture_output=True, text=True,
                             check=True).stdout
        return expectations.series_values(out)

    def counters(self, d):
        dev = self.veth_rx
        return {
            "matched": d.get(f'sipscope_packets_total{{iface="{dev}",result="matched"}}', 0),
            "drops": d.get(f'sipscope_capture_drops_total{{iface="{dev}",reason="ringbuf_full"}}',
                           0),
            "messages": sum(v for k, v in d.items() if k.startswith("sipscope_sip_messages_total")),
            "calls": d.get('sipscope_table_entries{table="calls"}', 0),
            "txns": d.get('sipscope_table_entries{table="transactions"}', 0),
        }

    def settle(self, before, sent):
        """Waits until the kernel counters (published each second) show what was sent and
        sipscope's message count stops moving; returns the last scrape's counters."""
        last = None
        for _ in range(40):
            time.sleep(0.25)
            c = self.counters(self.scrape())
            if c["matched"] - before["matched"] >= sent and last and \
                    c["messages"] == last["messages"]:
                return c
            last = c
        return last

    @staticmethod
    def proc_cpu(pid):
        """CPU seconds of every thread of pid: the scheduler's run time (schedstat, in ns),
        finer than the 10 ms ticks of /proc/PID/stat."""
        total = 0
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[0])
            except OSError:
                pass
        return total / 1e9

    @staticmethod
    def proc_rss_kib(pid):
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def softirq(self):
        with open("/proc/stat") as f:
            for line in f:
                if line.startswith(f"cpu{self.b.send_cpu} "):
                    return int(line.split()[7]) / CLK_TCK
        return 0.0

    def sender_argv(self, rate, seconds, hold=0, calls_per_s=None):
        argv = ["ip", "netns", "exec", self.tx, "taskset", "-c", self.b.send_cpu,
                self.b.bin["sender"], "-d", self.rx_ip, "-p", "5060", "-l", "5060"]
        argv += ["-c", str(calls_per_s)] if calls_per_s else ["-r", str(rate)]
        argv += ["-t", str(seconds), "-H", str(hold), "-s", "600", "-i", str(self.base)]
        return argv

    def send(self, rate, seconds, hold=0, calls_per_s=None):
        """Runs the sender to its end; returns its summary and its CPU times."""
        argv = self.sender_argv(rate, seconds, hold, calls_per_s)
        out = f"{self.b.work}/sender.out"
        t = self.b.timed(argv, stdout=out)
        text = open(out).read()
        m = dict(re.findall(r"(\w+)=([\d.]+)", text))
        calls = int(m["calls"])
        self.base += calls + 1
        return {"sent": int(m["sent"]), "seconds": float(m["seconds"]),
                "rate": float(m["rate"]), "calls": calls, "user": t["user"], "sys": t["sys"],
                "cmd": self.b.show(argv)}

    def ramp(self):
        steps = []
        p, cmd = self.start_sipscope()
        self.b.load_now("live ramp")
        stopped = "highest step reached"
        sender_cmd = ""
        try:
            for rate in self.b.a.rates:
                for attempt in (1, 2):
                    st = self.step(p, rate)
                    st["attempt"] = attempt
                    steps.append(st)
                    sender_cmd = st.pop("cmd")
                    # On a shared machine the sender or sipscope may lose its CPU for a
                    # while: a step that fails gets one more try; the table shows both.
                    if st["passed"]:
                        break
                if not st["zero_drop"]:
                    stopped = f"losses at {rate:,}/s" + (" on both tries" if attempt == 2 else "")
                    break
                if not st["passed"]:
                    stopped = f"sender-limited at {st['achieved']:,.0f}/s"
                    break
        finally:
            self.stop_sipscope(p)
        return {"steps": steps, "stopped": stopped, "cmd": cmd, "sender_cmd": sender_cmd}

    def step(self, p, rate):
        """One ramp step at rate msgs/s on sipscope p. It has zero drops when no ring buffer
        drop was counted and the kernel's matched packets, sipscope's SIP messages and the
        datagrams sent agree; it passes when, besides, the sender reached 99% of the rate."""
        self.b.log(f"live ramp: {rate:,} msgs/s for {self.b.a.step_seconds} s")
        before = self.counters(self.scrape())
        cpu0, irq0 = self.proc_cpu(p.pid), self.softirq()
        s = self.send(rate, self.b.a.step_seconds)
        irq1 = self.softirq()
        after = self.settle(before, s["sent"])
        cpu1 = self.proc_cpu(p.pid)
        d = {k: int(after[k] - before[k]) for k in ("matched", "drops", "messages")}
        cpu_pct = 100 * (cpu1 - cpu0) / s["seconds"]
        calls_per_s = s["rate"] / MSGS_PER_CALL
        zero = d["drops"] == 0 and d["matched"] == s["sent"] == d["messages"]
        self.b.log(f"  sent {s['rate']:,.0f}/s, drops {d['drops']}, matched {d['matched']}, "
                   f"messages {d['messages']}, cpu {cpu_pct:.1f}%")
        with open("/proc/loadavg") as f:
            load1 = float(f.read().split()[0])
        return {"target": rate, "achieved": s["rate"], "sent": s["sent"], **d, "load": load1,
                "zero_drop": zero, "passed": zero and s["rate"] >= 0.99 * rate,
                "cpu_pct": cpu_pct, "per_1k": cpu_pct / (calls_per_s / 1000),
                "sender_user": s["user"], "sender_sys": s["sys"],
                "softirq_pct": 100 * (irq1 - irq0) / s["seconds"], "cmd": s["cmd"]}

    def per_1k(self):
        cps, secs = 1000, self.b.a.cpu_seconds
        self.b.log(f"live: {cps} calls/s for {secs} s (CPU per 1,000 calls/s)")
        self.b.load_now("live 1,000 calls/s")
        p, cmd = self.start_sipscope()
        try:
            # The same window with no traffic: what an idle sipscope costs (its tick a second).
            idle0 = self.proc_cpu(p.pid)
            time.sleep(secs)
            idle_pct = 100 * (self.proc_cpu(p.pid) - idle0) / secs
            before = self.counters(self.scrape())
            cpu0 = self.proc_cpu(p.pid)
            s = self.send(None, secs, calls_per_s=cps)
            after = self.settle(before, s["sent"])
            cpu1 = self.proc_cpu(p.pid)
        finally:
            self.stop_sipscope(p)
        d = {k: int(after[k] - before[k]) for k in ("matched", "drops", "messages")}
        cpu_pct = 100 * (cpu1 - cpu0) / s["seconds"]
        return {"cps": cps, "rate": cps * MSGS_PER_CALL, "seconds": secs, "cpu_pct": cpu_pct,
                "idle_pct": idle_pct,
                "per_1k": cpu_pct * 1000 / (s["rate"] / MSGS_PER_CALL), "sent": s["sent"],
                "drops": d["drops"], "messages": d["messages"],
                "zero_drop": d["drops"] == 0 and d["matched"] == s["sent"] == d["messages"],
                "sender_user": s["user"], "sender_sys": s["sys"],
                "cmd": f"{cmd} & {s['cmd']}"}

    def load_run(self):
        pps, secs = self.b.a.load_rate, self.b.a.load_seconds
        n = pps * secs
        pcap = f"{self.b.work}/load-{n}.pcap"
        expect = self.b.generate(f"{n:,} messages for the load run (seed 2)",
                                 [self.b.bin["gen_traffic"], pcap, str(n), "2"],
                                 f"{self.b.work}/load-{n}.expect")
        msgs = int(re.search(r"^# messages (\d+)", expect, re.M)[1])
        self.b.log(f"live load run: tcpreplay {msgs:,} messages at {pps:,}/s")
        self.b.load_now("live load run")
        p, cmd = self.start_sipscope()
        try:
            argv = ["ip", "netns", "exec", self.tx, "taskset", "-c", self.b.send_cpu, "tcpreplay",
                    "-i", self.veth_tx, "--pps", str(pps), pcap]
            cpu0 = self.proc_cpu(p.pid)
            out = f"{self.b.work}/tcpreplay.out"
            t = self.b.timed(argv, stdout=out)
            text = open(out).read()
            sent = int(re.search(r"Successful packets:\s+(\d+)", text)[1])
            m = re.search(r"Actual: (\d+) packets .* sent in ([\d.]+) seconds", text)
            seconds = float(m[2]) if m else t["wall"]
            after = self.settle({"matched": 0}, sent)
            cpu1 = self.proc_cpu(p.pid)
            rss = self.proc_rss_kib(p.pid)
            final = self.scrape()
        finally:
            self.stop_sipscope(p)
        checks = [
            ("capture messages = packets tcpreplay sent", f"{msgs:,} / {sent:,}", msgs == sent),
            ("kernel matched = sent", f"{int(after['matched']):,}", after["matched"] == sent),
            ("sipscope SIP messages = sent", f"{int(after['messages']):,}",
             after["messages"] == sent),
            ("ring buffer drops", f"{int(after['drops'])}", after["drops"] == 0),
        ]
        text_final = "\n".join(f"{k} {v}" for k, v in final.items())
        checked, misses = self.b.expect_misses(text_final, expect,
                                               ("sip_requests_total", "sip_responses_total"))
        checks.append(("per-method and per-code counters = gen_traffic's expected values",
                       f"{checked - len(misses)}/{checked} series" +
                       (f"; differs: {'; '.join(misses[:2])}" if misses else ""), not misses))
        rate = sent / seconds
        cpu_pct = 100 * (cpu1 - cpu0) / seconds
        return {"pps": pps, "capture_msgs": msgs, "sent": sent, "seconds": seconds,
                "rate": rate, "cpu_pct": cpu_pct,
                "per_1k": cpu_pct * 1000 / (rate / MIX_MSGS_PER_CALL), "rss_kib": rss,
                "checks": checks, "ok": all(c[2] for c in checks),
                "cmd": f"{cmd} & {self.b.show(argv)}"}

    def soak(self):
        a = self.b.a
        cps, hold, secs, every = a.soak_cps, a.soak_hold, a.soak_seconds, a.soak_interval
        self.b.log(f"live soak: {cps} calls/s, hold {hold} s, for {secs} s")
        self.b.load_now("soak")
        p, cmd = self.start_sipscope()
        samples = []
        try:
            argv = self.sender_argv(None, secs, hold=hold, calls_per_s=cps)
            before = self.counters(self.scrape())
            cpu0 = self.proc_cpu(p.pid)
            out = open(f"{self.b.work}/soak-sender.out", "wb")
            sender = subprocess.Popen(argv, stdout=out)
            self.procs.append(sender)
            t0 = time.monotonic()
            nxt = 0.0
            while sender.poll() is None:
                t = time.monotonic() - t0
                if t >= nxt:
                    c = self.counters(self.scrape())
                    samples.append({"t": t, "rss": self.proc_rss_kib(p.pid),
                                    "calls": int(c["calls"]), "txns": int(c["txns"]),
                                    "messages": int(c["messages"] - before["messages"])})
                    nxt += every
                time.sleep(0.2)
            out.close()
            text = open(f"{self.b.work}/soak-sender.out").read()
            m = dict(re.findall(r"(\w+)=([\d.]+)", text))
            sent, seconds = int(m["sent"]), float(m["seconds"])
            self.base += int(m["calls"]) + 1
            after = self.settle(before, sent)
            cpu1 = self.proc_cpu(p.pid)
        finally:
            self.stop_sipscope(p)
        warm = hold + 32 + 2 * every
        post = [(s["t"], s["rss"]) for s in samples if s["t"] >= warm]
        slope = 0.0
        if len(post) >= 2:
            mt = sum(t for t, _ in post) / len(post)
            mr = sum(r for _, r in post) / len(post)
            num = sum((t - mt) * (r - mr) for t, r in post)
            den = sum((t - mt) ** 2 for t, _ in post)
            slope = 60 * num / den if den else 0.0
        rss_post = [r for _, r in post] or [0]
        return {"cps": cps, "hold": hold, "seconds": secs, "interval": every, "warm": warm,
                "samples": samples, "slope": slope,
                "flat": len(post) >= 2 and abs(slope) < SOAK_FLAT_KIB_PER_MIN,
                "post_min": min(rss_post), "post_max": max(rss_post),
                "drops": int(after["drops"] - before["drops"]), "sent": sent,
                "messages": int(after["messages"] - before["messages"]),
                "cpu_pct": 100 * (cpu1 - cpu0) / seconds, "cmd": cmd,
                "sender_cmd": self.b.show(argv)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--top", required=True, help="repository root")
    ap.add_argument("--build", required=True, help="Release build directory")
    ap.add_argument("--work", required=True, help="directory for generated inputs")
    ap.add_argument("--out", required=True, help="report to write (BENCHMARK.md)")
    ap.add_argument("--invocation", default="tests/bench/run.sh")
    ap.add_argument("--quick", action="store_true", help="short run: fewer rounds, 60 s soak")
    ap.add_argument("--sections", default="1,2,3,4,5,6")
    ap.add_argument("--runs", type=int, help="rounds of the offline comparison [5; quick 3]")
    ap.add_argument("--repeats", type=int, default=3,
                    help="runs of each sipscope configuration per offline round [3]")
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--calls", type=int, default=1_000_000)
    ap.add_argument("--rules", help="rules directory, used as it is [enabled, configured copies of the bundled rules but sip_exporter]")
    ap.add_argument("--cpu", type=int, default=1, help="CPU the measured programs run on")
    ap.add_argument("--send-cpu", type=int, default=0, help="CPU of the live senders")
    ap.add_argument("--no-live", action="store_true", help="skip section 3 and the soak")
    ap.add_argument("--no-profile", dest="profile", action="store_false",
                    help="no callgrind profile where a target is missed")
    ap.add_argument("--soak-seconds", type=int, help="soak duration [600; quick 60]")
    ap.add_argument("--step-seconds", type=int, help="seconds per live ramp step [10; quick 5]")
    ap.add_argument("--baseline", metavar="BIN[=LABEL]", action="append", default=[],
                    help="another sipscope binary (an older build, a plain Release build) run "
                         "beside this one in the offline rounds, without rules and with the "
                         "bundled rules (before and after on the same machine state); LABEL "
                         "names it [its path]; repeatable")
    ap.add_argument("--parse-baseline", metavar="BIN[=LABEL]",
                    help="another bench_sip_parse binary, run after this one in section 1")
    ap.add_argument("--report-only", metavar="RESULTS_JSON",
                    help="measure nothing: write the report from a run's results.json")
    a = ap.parse_args()
    a.sections = {int(x) for x in a.sections.split(",") if x}
    def bin_label(opt, value):
        path, _, label = value.partition("=")
        if not os.access(path, os.X_OK):
            ap.error(f"{opt}: {path} is not an executable")
        return path, label or path
    a.baselines = [bin_label("--baseline", b) for b in a.baseline]
    a.parse_baseline = a.parse_baseline and bin_label("--parse-baseline", a.parse_baseline)
    if a.repeats < 1:
        ap.error("--repeats: at least 1")
    a.runs = a.runs or (3 if a.quick else 5)
    a.soak_seconds = a.soak_seconds or (60 if a.quick else 600)
    a.step_seconds = a.step_seconds or (5 if a.quick else 10)
    a.soak_interval = 5 if a.soak_seconds < 300 else 10
    a.soak_hold = 5 if a.soak_seconds < 300 else 60
    a.soak_cps = 1000
    a.cpu_seconds = 10 if a.quick else 30
    a.load_rate = 30000
    a.load_seconds = 10 if a.quick else 30
    a.rates = [50_000, 100_000, 150_000, 200_000, 250_000, 300_000, 350_000, 400_000]
    a.parse_iters = 200_000 if a.quick else 1_000_000
    a.parse_runs = 5 if a.quick else 9
    a.scrape_rounds = 50 if a.quick else 200
    a.mem_runs = 1 if a.quick else 3
    os.makedirs(a.work, exist_ok=True)

    bench = Bench(a)

    def on_signal(sig, _frame):
        raise SystemExit(128 + sig)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    bench.main()


if __name__ == "__main__":
    main()
