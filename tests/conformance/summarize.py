#!/usr/bin/env python3
"""Summarise pjdfstest logs: per-group passed/failed/skipped, and each failure's reason.

usage: summarize.py NAME=FULL_LOG,EROFS_LOG [NAME=...]  (prints markdown; writes
totals as NAME_passed=N lines to the file in $PJD_TOTALS if set)
"""
import collections
import os
import re
import sys

RESULT = re.compile(r"^([a-z0-9_:]+)\s+(ok|FAILED|skipped)\s*$")


def parse(path):
    lines = open(path, errors="replace").read().split("\n")
    out = {}
    for i, line in enumerate(lines):
        m = RESULT.match(line)
        if not m:
            continue
        reason = ""
        if m.group(2) != "ok" and i + 1 < len(lines):
            reason = lines[i + 1].strip()
        out[m.group(1)] = (m.group(2), reason)
    return out


def load(spec):
    full, erofs = spec.split(",")
    results = parse(full)
    # The erofs run replaces the full run's "skipped (allow_remount)" entries.
    for name, value in parse(erofs).items():
        if "erofs" in name:
            results[name] = value
    return results


def main():
    runs = {}
    for arg in sys.argv[1:]:
        name, spec = arg.split("=", 1)
        runs[name] = load(spec)
    groups = sorted({t.split("::")[0] for r in runs.values() for t in r})
    header = "| group | " + " | ".join(f"{n} pass / fail / skip" for n in runs) + " |"
    print(header)
    print("|" + "---|" * (len(runs) + 1))
    totals = {n: collections.Counter() for n in runs}
    for group in groups:
        cells = []
        for name, results in runs.items():
            c = collections.Counter(
                s for t, (s, _) in results.items() if t.split("::")[0] == group
            )
            totals[name].update(c)
            cells.append(f"{c['ok']} / {c['FAILED']} / {c['skipped']}")
        print(f"| {group} | " + " | ".join(cells) + " |")
    cells = [f"**{c['ok']} / {c['FAILED']} / {c['skipped']}**" for c in totals.values()]
    print("| **total** | " + " | ".join(cells) + " |")
    for name, results in runs.items():
        failed = sorted((t, r) for t, (s, r) in results.items() if s == "FAILED")
        skipped = sorted((t, r) for t, (s, r) in results.items() if s == "skipped")
        print(f"\n{name}: {len(failed)} failed, {len(skipped)} skipped")
        for test, reason in failed:
            print(f"- FAILED {test}: {reason}")
        for test, reason in skipped:
            print(f"- skipped {test}: {reason}")
    if os.environ.get("PJD_TOTALS"):
        with open(os.environ["PJD_TOTALS"], "w") as f:
            for name, c in totals.items():
                f.write(f"{name}_passed={c['ok']}\n{name}_failed={c['FAILED']}\n")


main()
