#!/usr/bin/env python3
"""Reads `go test -json` events on stdin and prints what a person needs from them.

Per package the usual `ok`/`FAIL` line; the whole output of every failed test; every skipped test with its reason
(a skip is never silent); and at the end one count line, also appended to the file named by --counts. Exits 1 when a
test or a package failed, so `go test -json ... | gotest_summary.py` can stand in for `go test` in make.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from typing import DefaultDict, Dict, List, Tuple


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--label", default="go test", help="the runner's name on the count line")
    ap.add_argument("--counts", default="", help="append the count line to this file")
    args = ap.parse_args()

    outputs: DefaultDict[Tuple[str, str], List[str]] = defaultdict(list)
    counts: Dict[str, int] = {"pass": 0, "fail": 0, "skip": 0}
    skipped: List[str] = []
    failed_pkgs: List[str] = []
    for raw in sys.stdin:
        raw = raw.strip()
        if not raw:
            continue
        try:
            ev = json.loads(raw)
        except json.JSONDecodeError:
            print(raw)  # build errors arrive as plain text
            continue
        pkg, test, action = ev.get("Package", ""), ev.get("Test", ""), ev.get("Action", "")
        if action == "output":
            if test:
                outputs[(pkg, test)].append(ev.get("Output", ""))
            else:
                line = ev.get("Output", "")
                if line.startswith(("ok", "FAIL", "---", "panic")) or "[no test files]" in line or "build failed" in line:
                    sys.stdout.write(line)
                    sys.stdout.flush()
                elif line.strip() and not line.startswith(("PASS", "=== ", "coverage:")):
                    sys.stdout.write(line)
            continue
        if action not in counts:
            if action == "fail" and not test:
                failed_pkgs.append(pkg)
            continue
        if not test:
            if action == "fail":
                failed_pkgs.append(pkg)
            continue
        if "/" not in test:  # subtests are counted inside their parent
            counts[action] += 1
        if action == "fail":
            sys.stdout.write("".join(outputs.get((pkg, test), [])))
        elif action == "skip":
            reason = "".join(o for o in outputs.get((pkg, test), []) if not o.startswith(("=== ", "--- SKIP")))
            skipped.append(f"{pkg} {test}: {reason.strip() or '(no reason given)'}")
        outputs.pop((pkg, test), None)

    for s in skipped:
        print(f"SKIP {s}")
    line = (f"{args.label}: {counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped "
            f"(top-level tests){', packages failed: ' + ' '.join(sorted(set(failed_pkgs))) if failed_pkgs else ''}")
    print(line)
    if args.counts:
        with open(args.counts, "a", encoding="utf-8") as f:
            f.write(line + "\n")
    return 1 if counts["fail"] or failed_pkgs else 0


if __name__ == "__main__":
    sys.exit(main())
