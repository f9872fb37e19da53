#!/usr/bin/env python3
"""The series an idle sipscope exports: `sipscope --read EMPTY.pcap --print`, on a capture
without a single packet, must print exactly the series METRICS.md says exist from the start,
every one at 0 (sipscope_build_info at 1). The expected set is built below from METRICS.md's
rules, not recorded from sipscope's output: families whose only labels are operator labels,
the engine's tables, and the closed label sets exported at 0 so that rate() and increase()
see their first increment (methods, kinds, challenge codes, end reasons, reload results).

Run twice: without rules, and with tests/lua/fixtures/rules_ok (the operator label `carrier`,
default "other", and the rules' own families). Prints one line per case and a closing
"N passed, N failed, N skipped" line.

usage: idle_series.py SIPSCOPE SOURCE_DIR
"""
import os
import struct
import sys
import tempfile

from expect import scrape, series_name  # tests/offline/expect.py, beside this script

METHODS = ["INVITE", "ACK", "BYE", "CANCEL", "REGISTER", "OPTIONS", "PRACK", "SUBSCRIBE",
           "NOTIFY", "PUBLISH", "INFO", "REFER", "MESSAGE", "UPDATE", "other"]
# METRICS.md, "Exported from the start": the methods each per-method counter can count.
NOT_ACK = [m for m in METHODS if m != "ACK"]
PER_METHOD = {
    "sip_requests_total": METHODS,
    "sip_transaction_timeouts_total": NOT_ACK,
    "sip_late_finals_total": NOT_ACK,
    "sip_orphan_responses_total": METHODS,
    "sip_orphan_requests_total": [m for m in METHODS
                                  if m not in ("REGISTER", "SUBSCRIBE", "NOTIFY")],
    "sip_reinvites_total": ["INVITE", "UPDATE"],
}
END_REASONS = ["bye", "cancel", "rejected", "redirected", "timeout", "expired", "max_age",
               "evicted"]
DELAY_BUCKETS = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2", "5", "10",
                 "30"]
DURATION_BUCKETS = ["1", "5", "10", "30", "60", "120", "300", "600", "1800", "3600", "7200",
                    "14400"]
TABLES = ["calls", "transactions", "registrations", "registration_attempts", "reasm", "tcp"]



def key(name, **labels):
    return (name, frozenset(labels.items()))


def expected(op):
    """Every series of an idle exposition but sipscope_build_info; op: the operator labels."""
    want = {}

    def sip(name, **labels):
        want[key(name, **labels, **op)] = 0

    for name, methods in PER_METHOD.items():
        for m in methods:
            sip(name, method=m)
    for m in METHODS:
        sip("sip_retransmissions_total", method=m, kind="request")
    for m in NOT_ACK:
        sip("sip_retransmissions_total", method=m, kind="response")
    for code in ("401", "407"):
        sip("sip_session_challenges_total", code=code)
    for reason in END_REASONS:
        sip("sip_dialogs_ended_total", reason=reason)
    # Families whose only labels are the operator labels.
    for name in ("sip_session_attempts_total", "sip_sessions_completed_total",
                 "sip_registration_attempts_total", "sip_registrations_active"):
        sip(name)
    for name, buckets in (("sip_post_dial_delay_seconds", DELAY_BUCKETS),
                          ("sip_session_setup_seconds", DELAY_BUCKETS),
                          ("sip_registration_request_delay_seconds", DELAY_BUCKETS),
                          ("sip_session_duration_seconds", DURATION_BUCKETS)):
        for le in buckets + ["+Inf"]:
            sip(name + "_bucket", le=le)
        sip(name + "_sum")
        sip(name + "_count")
    # The engine's own.
    for name in ("sipscope_clock_steps_total", "sipscope_negative_delays_total"):
        want[key(name)] = 0
    for table in TABLES:
        want[key("sipscope_table_entries", table=table)] = 0
        want[key("sipscope_table_evictions_total", table=table)] = 0
    return want


def expected_rules():
    """With tests/lua/fixtures/rules_ok: its two rules, its label carrier (default "other")."""
    want = expected({"carrier": "other"})
    for rule in ("10_carrier", "20_quiet"):
        want[key("sipscope_rule_disabled", rule=rule)] = 0
    want[key("sipscope_rules_loaded")] = 2
    want[key("sipscope_rules_last_reload_success")] = 1
    for result in ("success", "failure", "refused"):
        want[key("sipscope_rules_reloads_total", result=result)] = 0
    return want






def check(got, want):
    problems = []
    info = [k for k in got if k[0] == "sipscope_build_info"]
    if len(info) != 1 or got[info[0]] != 1 or ("capture", "pcap") not in info[0][1]:
        problems.append(f"sipscope_build_info: {[series_name(k) for k in info]}")
    for k in sorted(set(got) | set(want), key=series_name):
        if k[0] == "sipscope_build_info":
            continue
        if k not in want:
            problems.append(f"unexpected {series_name(k)} {got[k]:g}")
        elif k not in got:
            problems.append(f"missing {series_name(k)}")
        elif got[k] != want[k]:
            problems.append(f"{series_name(k)}: {got[k]:g}, expected {want[k]:g}")
    return problems


def main():
    binary, src = sys.argv[1:3]
    passed = failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        empty = os.path.join(tmp, "empty.pcap")
        with open(empty, "wb") as f:  # a pcap header (Ethernet) and no packet
            f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        cases = {
            "no rules": ([], expected({})),
            "rules_ok": (["--rules", os.path.join(src, "tests/lua/fixtures/rules_ok")],
                         expected_rules()),
        }
        for case, (args, want) in cases.items():
            got = scrape(binary, empty, args)
            problems = check(got, want)
            if problems:
                failed += 1
                print(f"FAIL {case}: {len(got)} series, expected {len(want) + 1}")
                for p in problems:
                    print("     " + p)
            else:
                passed += 1
                print(f"ok   {case}: {len(got)} series")
    print(f"{passed} passed, {failed} failed, 0 skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
