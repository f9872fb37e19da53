#!/usr/bin/env python3
"""Installs the build into a temporary directory and checks what lands where:

- the exact list of installed files and directories (the binary, one systemd unit, the
  bundled rules = rules/*.lua of the source tree without *_spec.lua, and their pristine copies
  in the doc directory, the examples, the docs, the bundled rules' README);
- the installed examples and docs are the source files, byte for byte;
- the unit runs the installed binary with --rules on the installed rules directory, reloads
  with SIGHUP, passes `systemd-analyze verify` and scores at most 2.5 in `systemd-analyze
  security` (skipped when systemd-analyze is missing);
- the installed binary runs, and prints for a capture what the built one prints;
- installing again keeps the operator's rules: an edited rule stays as edited, a deleted one
  comes back, and the pristine copies under share/doc/sipscope/rules are the sources;
- `cmake --install --prefix P` relocates the unit with the binary and the rules: its ExecStart
  runs P/bin/sipscope with --rules on the rules directory of P (/etc/sipscope/rules for /usr,
  /etc/opt/NAME/sipscope/rules for /opt/NAME, as GNUInstallDirs places configuration), and a
  prefix with a space gives a unit that systemd reads as one path (the unit is installed
  there, and `systemd-analyze verify` runs it).

`cmake --install BUILD --prefix TMP/prefix` runs with DESTDIR=TMP/destdir, so that nothing
can land outside TMP, and so do the installs with --prefix /usr and /opt/sipscope.

usage: check_install.py --cmake CMAKE --build-dir DIR --source-dir DIR
                        --sipscope BUILT_BINARY
Prints one line per failure and a closing "N passed, N failed, N skipped" line.
"""
import argparse
import filecmp
import glob
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kitlib  # noqa: E402

DOC = "share/doc/sipscope"
EXPOSURE_MAX = 2.5  # systemd-analyze security's score for the unit
EXAMPLES = [
    "grafana/README.md",
    "grafana/sipscope.json",
    "prometheus/README.md",
    "prometheus/prometheus.yml",
    "prometheus/sipscope.alerts.yml",
    "prometheus/sipscope.rules.yml",
    "prometheus/tests/alerts.test.yml",
    "prometheus/tests/recording.test.yml",
    "systemd/README.md",
]


def sysconfdir(prefix):
    """Where GNUInstallDirs puts configuration for a prefix: (path, relative to the prefix?)."""
    p = prefix.rstrip("/") or "/"
    if p in ("/", "/usr"):
        return "/etc", False
    if p.startswith("/opt/"):
        return "/etc" + p, False
    return "etc", True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cmake", required=True)
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--source-dir", required=True)
    ap.add_argument("--sipscope", required=True, help="the built binary, to compare with")
    args = ap.parse_args()
    src = args.source_dir
    check = kitlib.Checks()

    with tempfile.TemporaryDirectory() as tmp:
        prefix = os.path.join(tmp, "prefix")
        destdir = os.path.join(tmp, "destdir")
        env = dict(os.environ, DESTDIR=destdir)
        proc = subprocess.run([args.cmake, "--install", args.build_dir, "--prefix", prefix],
                              env=env, capture_output=True, text=True)
        if not check(proc.returncode == 0, f"cmake --install failed:\n{proc.stdout}{proc.stderr}"):
            return check.summary()
        root = destdir + prefix  # where relative destinations land

        etc, relative = sysconfdir(prefix)
        rules_rel = f"{etc}/sipscope/rules"
        rules_dir = os.path.join(root if relative else destdir, rules_rel.lstrip("/"))
        rule_sources = sorted(f for f in glob.glob(os.path.join(src, "rules", "*.lua"))
                              if not f.endswith("_spec.lua"))

        # Expected files (and the rules directory, which must exist even when empty), as paths
        # under destdir.
        def under_root(rel):
            return os.path.relpath(os.path.join(root, rel), destdir)

        expected = {under_root("bin/sipscope"), under_root("lib/systemd/system/sipscope.service"),
                    under_root(f"{DOC}/README.md"), under_root(f"{DOC}/METRICS.md"),
                    under_root(f"{DOC}/rules/README.md"),
                    under_root(f"{DOC}/examples/systemd/sipscope.service")}
        # The pristine copies of the bundled rules, for reference after an operator's edits.
        expected |= {under_root(f"{DOC}/rules/{os.path.basename(r)}") for r in rule_sources}
        expected |= {under_root(f"{DOC}/examples/{e}") for e in EXAMPLES}
        expected |= {os.path.relpath(os.path.join(rules_dir, os.path.basename(r)), destdir)
                     for r in rule_sources}
        installed = set()
        for dirpath, dirnames, filenames in os.walk(destdir):
            for f in filenames:
                installed.add(os.path.relpath(os.path.join(dirpath, f), destdir))
        check(installed == expected,
              "installed files differ from the expected list:\n  missing: "
              f"{sorted(expected - installed)}\n  unexpected: {sorted(installed - expected)}")
        check(os.path.isdir(rules_dir), f"no rules directory {rules_rel}")

        # Installed copies are the sources.
        pairs = [(f"{DOC}/README.md", "README.md"), (f"{DOC}/METRICS.md", "docs/METRICS.md"),
                 (f"{DOC}/rules/README.md", "rules/README.md")]
        pairs += [(f"{DOC}/examples/{e}", f"examples/{e}") for e in EXAMPLES]
        pairs += [(f"{DOC}/rules/{os.path.basename(r)}", os.path.relpath(r, src))
                  for r in rule_sources]
        for inst, orig in pairs:
            path = os.path.join(root, inst)
            check(os.path.exists(path) and filecmp.cmp(path, os.path.join(src, orig),
                                                       shallow=False),
                  f"{inst} is not a copy of {orig}")
        for r in rule_sources:
            path = os.path.join(rules_dir, os.path.basename(r))
            check(os.path.exists(path) and filecmp.cmp(path, r, shallow=False),
                  f"{path} is not a copy of {r}")

        # Installing again (an upgrade) keeps what the operator did to the rules, which
        # rules/README.md says to edit in place: an edited rule is not overwritten (cmake would:
        # its time differs from the source's), a deleted one is installed again.
        if check(len(rule_sources) >= 2, "fewer than two bundled rules to edit and delete"):
            edited = os.path.join(rules_dir, os.path.basename(rule_sources[0]))
            deleted = os.path.join(rules_dir, os.path.basename(rule_sources[1]))
            with open(edited, "a", encoding="utf-8") as f:
                f.write("-- edited by the operator\n")
            os.utime(edited, (1, 1))  # older than the source: timestamps must not decide
            with open(edited, "rb") as f:
                edited_text = f.read()
            os.unlink(deleted)
            proc = subprocess.run([args.cmake, "--install", args.build_dir, "--prefix", prefix],
                                  env=env, capture_output=True, text=True)
            check(proc.returncode == 0,
                  f"cmake --install again failed:\n{proc.stdout}{proc.stderr}")
            with open(edited, "rb") as f:
                check(f.read() == edited_text,
                      f"installing again overwrote the edited {os.path.basename(edited)}")
            check(os.path.exists(deleted) and filecmp.cmp(deleted, rule_sources[1],
                                                          shallow=False),
                  f"installing again did not bring back the deleted {os.path.basename(deleted)}")
            check(f"kept: {edited}" in proc.stdout,
                  f"installing again does not say it kept {edited}:\n{proc.stdout}")
            for r in rule_sources:
                path = os.path.join(root, DOC, "rules", os.path.basename(r))
                check(os.path.exists(path) and filecmp.cmp(path, r, shallow=False),
                      f"after installing again, {path} is not a copy of {r}")

        # The unit: the paths of the prefix installed to.
        unit_path = os.path.join(root, "lib/systemd/system/sipscope.service")
        with open(unit_path, encoding="utf-8") as f:
            unit = f.read()
        p = prefix.rstrip("/")
        full_etc = (p + "/" + etc) if relative else etc
        exec_start = re.search(r"^ExecStart=(.*)$", unit, re.M)
        check(exec_start and exec_start.group(1).split()[0] == f"{p}/bin/sipscope",
              f"ExecStart does not run {p}/bin/sipscope")
        check(exec_start and f"--rules {full_etc}/sipscope/rules" in exec_start.group(1),
              f"ExecStart does not pass --rules {full_etc}/sipscope/rules")
        check(re.search(r"^ExecReload=/bin/kill -HUP \$MAINPID$", unit, re.M),
              "ExecReload does not send SIGHUP")
        check("@" not in re.sub(r"@system-service", "", unit),
              "the unit has an unconfigured @VARIABLE@")
        for key in ("AmbientCapabilities", "CapabilityBoundingSet"):
            m = re.search(rf"^{key}=(.*)$", unit, re.M)
            check(m and sorted(m.group(1).split()) == ["CAP_BPF", "CAP_NET_RAW", "CAP_PERFMON"],
                  f"{key} is not exactly CAP_BPF CAP_PERFMON CAP_NET_RAW")
        analyze = shutil.which("systemd-analyze")
        if analyze:
            # verify checks that ExecStart exists: point it at the staged binary.
            staged = os.path.join(tmp, "sipscope.service")
            with open(staged, "w", encoding="utf-8") as f:
                f.write(unit.replace(f"{p}/bin/sipscope", os.path.join(root, "bin/sipscope")))
            proc = subprocess.run([analyze, "verify", staged], capture_output=True, text=True)
            check(proc.returncode == 0 and not proc.stderr.strip(),
                  f"systemd-analyze verify: {proc.stdout}{proc.stderr}")
            # The hardening must not regress: 1.9 when written (examples/systemd/README.md).
            proc = subprocess.run([analyze, "security", "--offline=true", staged],
                                  capture_output=True, text=True)
            m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", proc.stdout)
            if m:
                check(float(m.group(1)) <= EXPOSURE_MAX,
                      f"systemd-analyze security: exposure {m.group(1)} > {EXPOSURE_MAX}")
            else:
                check.skip("systemd-analyze security --offline is not supported here")
        else:
            check.skip("no systemd-analyze: unit not verified")

        # The installed binary runs, and prints what the built one prints.
        capture = os.path.join(src, "tests/fixtures/pcap/mix-udp4.pcap")
        outs = [subprocess.run([b, "--read", capture, "--print"], capture_output=True)
                for b in (os.path.join(root, "bin/sipscope"), args.sipscope)]
        check(outs[0].returncode == 0 and outs[0].stdout == outs[1].stdout and outs[0].stdout,
              f"the installed sipscope does not run as the built one: {outs[0].stderr!r}")

        # --prefix relocates the unit along with what it runs: `cmake --install build --prefix
        # /usr` on a build configured for /usr/local must not give a unit that runs
        # /usr/local/bin/sipscope (absent: the unit fails with 203/EXEC) on
        # /usr/local/etc/sipscope/rules. Expected paths written out by hand.
        for reloc, exe, rules in (
                ("/usr", "/usr/bin/sipscope", "/etc/sipscope/rules"),
                ("/opt/sipscope", "/opt/sipscope/bin/sipscope",
                 "/etc/opt/sipscope/sipscope/rules")):
            dd = os.path.join(tmp, "reloc" + reloc.replace("/", "-"))
            proc = subprocess.run([args.cmake, "--install", args.build_dir, "--prefix", reloc],
                                  env=dict(os.environ, DESTDIR=dd), capture_output=True,
                                  text=True)
            if not check(proc.returncode == 0,
                         f"cmake --install --prefix {reloc} failed:\n{proc.stdout}{proc.stderr}"):
                continue
            check(os.path.isfile(dd + exe), f"--prefix {reloc}: no {exe}")
            check(os.path.isdir(dd + rules) and sorted(os.listdir(dd + rules)) ==
                  sorted(os.path.basename(r) for r in rule_sources),
                  f"--prefix {reloc}: the rules are not in {rules}")
            with open(dd + reloc + "/lib/systemd/system/sipscope.service", encoding="utf-8") as f:
                line = re.search(r"^ExecStart=(.*)$", f.read(), re.M)
            words = shlex.split(line.group(1)) if line else []
            check(words[:1] == [exe] and "--rules" in words and
                  words[words.index("--rules") + 1] == rules,
                  f"--prefix {reloc}: the unit's ExecStart is {line and line.group(1)!r}, not "
                  f"{exe} ... --rules {rules}")

        # A prefix with a space, installed for real (inside TMP, no DESTDIR): systemd splits
        # ExecStart at spaces unless quoted.
        spaced = os.path.join(tmp, "my prefix")
        proc = subprocess.run([args.cmake, "--install", args.build_dir, "--prefix", spaced],
                              capture_output=True, text=True)
        if check(proc.returncode == 0,
                 f"cmake --install --prefix '{spaced}' failed:\n{proc.stdout}{proc.stderr}"):
            unit_path = os.path.join(spaced, "lib/systemd/system/sipscope.service")
            with open(unit_path, encoding="utf-8") as f:
                line = re.search(r"^ExecStart=(.*)$", f.read(), re.M)
            words = shlex.split(line.group(1)) if line else []
            check(words[:1] == [f"{spaced}/bin/sipscope"] and "--rules" in words and
                  words[words.index("--rules") + 1] == f"{spaced}/etc/sipscope/rules",
                  f"prefix with a space: ExecStart is {line and line.group(1)!r}")
            if analyze:
                proc = subprocess.run([analyze, "verify", unit_path], capture_output=True,
                                      text=True)
                check(proc.returncode == 0 and not proc.stderr.strip(),
                      f"prefix with a space: systemd-analyze verify: {proc.stdout}{proc.stderr}")

    print(f"{len(expected)} files installed")
    return check.summary()


if __name__ == "__main__":
    sys.exit(main())
