#!/usr/bin/env python3
"""Python reference probabilities for backend/ofa's and test/ofa's Go tests.

Usage: reference.py REPO CASES.json  ->  JSON list on stdout, one entry per case:
  {"probabilities": [3 floats], "label": str, "input_ids": [...]}

CASES.json is a list of {"image": path, "hypothesis": str, "premise": str or null}. Every case runs
through scripts/ofa/reference.py's Reference (PIL preprocessing, OFA prompt + BPE, the *eager* module
rebuilt from the exported weights), one forward per case, so the numbers do not depend on batching.
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "scripts"))

from ofa.reference import Reference  # noqa: E402


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    ref = Reference(sys.argv[1])
    with open(sys.argv[2], "r", encoding="utf-8") as f:
        cases = json.load(f)
    out = []
    for c in cases:
        r = ref.predict(c["image"], c["hypothesis"], c.get("premise"))
        out.append({"probabilities": r["probabilities"], "label": r["label"], "input_ids": r["input_ids"]})
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
