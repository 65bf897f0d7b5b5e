#!/usr/bin/env python3
"""Ratios for docs/PERFORMANCE.md from the JSON files scripts/bench/bench_cpu.sh writes (scripts/gpu/session_summary.py is the GPU session's).

Usage: bench_summary.py OUT_DIR [PREFIX]   (reads OUT_DIR/{PREFIX}bare.json, dynamic.json, mbs1.json, python.json,
ofaserve_ofa.json, openloop70.json - whichever exist) and prints Markdown tables.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Dict, List, Optional


def load(path: str) -> Optional[Dict[str, Any]]:
    if not os.path.exists(path):
        return None
    with open(path, "r", encoding="utf-8") as f:
        return json.load(f)


def levels(doc: Optional[Dict[str, Any]]) -> List[Dict[str, Any]]:
    return [l for l in (doc or {}).get("levels") or [] if l["result"]["requests"] > 0]


def saturation(doc: Optional[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """The level with the highest throughput."""
    ls = levels(doc)
    return max(ls, key=lambda l: l["result"]["throughput_infer_per_sec"]) if ls else None


def ms(ns: float) -> str:
    return f"{ns / 1e6:.1f}"


def ratio(a: Optional[float], b: Optional[float]) -> str:
    return f"{a / b:.2f}" if a is not None and b else "n/a"


def best_within_p99(doc: Optional[Dict[str, Any]], p99_ns: float) -> Optional[Dict[str, Any]]:
    ok = [l for l in levels(doc) if l["result"]["p99_ns"] <= p99_ns]
    return max(ok, key=lambda l: l["result"]["throughput_infer_per_sec"]) if ok else None


def main(argv: List[str]) -> int:
    out = argv[1] if len(argv) > 1 else "out/bench-cpu"
    pre = argv[2] if len(argv) > 2 else ""
    doc = {k: load(os.path.join(out, f"{pre}{k}.json")) for k in ("bare", "dynamic", "mbs1", "python", "ofaserve_ofa", "openloop70")}
    bare = {r["batch_size"]: r for r in (doc["bare"] or {}).get("results", [])}
    print("| configuration | level | throughput (infer/s) | p50 ms | p99 ms | avg batch | stable |")
    print("|---|---|---|---|---|---|---|")
    for b, r in sorted(bare.items()):
        print(f"| bare model, batch {b} (seq {r['seq_len']}) | {r['iterations']} forwards | {r['throughput_infer_per_sec']:.1f} "
              f"| {ms(r['p50_forward_ns'])} | {ms(r['p99_forward_ns'])} | {b} | - |")
    for k in ("dynamic", "mbs1", "ofaserve_ofa", "python", "openloop70"):
        for l in levels(doc[k]):
            r = l["result"]
            srv = r.get("server") or {}
            avg_b = srv["inferences"] / srv["executions"] if srv.get("executions") else None
            lvl = f"c={l['value']:g}" if l["mode"] == "concurrency" else f"{l['value']:g} req/s"
            print(f"| {doc[k]['label']} | {lvl} | {r['throughput_infer_per_sec']:.1f} | {ms(r['p50_ns'])} | {ms(r['p99_ns'])} "
                  f"| {f'{avg_b:.2f}' if avg_b else '-'} | {'yes' if l['stable'] else 'no'} |")
    print()
    dyn, mbs1, py, ofa = (saturation(doc[k]) for k in ("dynamic", "mbs1", "python", "ofaserve_ofa"))
    thr = lambda l: l["result"]["throughput_infer_per_sec"] if l else None  # noqa: E731
    b16 = bare.get(16, {}).get("throughput_infer_per_sec")
    print("| ratio | value | goal |")
    print("|---|---|---|")
    print(f"| serving efficiency (ofaserve raw at saturation / bare batch 16) | {ratio(thr(dyn), b16)} | >= 0.90 |")
    print(f"| batching gain (dynamic / max_batch_size 1, both at saturation) | {ratio(thr(dyn), thr(mbs1))} | >= 2 |")
    if py and ofa:
        same = best_within_p99(doc["ofaserve_ofa"], py["result"]["p99_ns"])
        print(f"| ofaserve / Python baseline throughput (both at saturation) | {ratio(thr(ofa), thr(py))} | >= 3 |")
        same_txt = ratio(thr(same), thr(py)) if same else "n/a: no ofaserve level reached that p99"
        print(f"| ofaserve / Python at equal or better p99 (<= {ms(py['result']['p99_ns'])} ms) | {same_txt} | >= 3 |")
        print(f"| p99 ofaserve / p99 Python at saturation | {ratio(ofa['result']['p99_ns'], py['result']['p99_ns'])} | <= 1 |")
    else:
        print("| ofaserve / Python baseline | n/a (one side missing) | >= 3 |")
    lvl1 = [l for l in levels(doc["dynamic"]) if l["value"] == 1]
    if lvl1 and 1 in bare:
        r = lvl1[0]["result"]
        over = r["avg_latency_ns"] - bare[1]["mean_forward_ns"]
        srv = r.get("server") or {}
        note = "" if over >= 0 else " (negative: the bare loop ran under heavier machine load; not meaningful)"
        print(f"| overhead per request at c=1 (client avg latency - bare batch-1 forward) | {over / 1e3:.0f} us{note} | - |")
        if srv:
            print(f"| server-side overhead at c=1 (request - queue - compute) | {srv['overhead_ns'] / 1e3:.0f} us (queue {srv['queue_ns'] / 1e3:.0f} us) | - |")
    ol = levels(doc["openloop70"])
    if ol:
        r = ol[0]["result"]
        print(f"| open loop, Poisson at 70% of saturation ({ol[0]['value']:g} req/s): p99 | {ms(r['p99_ns'])} ms (achieved {r['throughput_infer_per_sec']:.1f} infer/s, errors {sum((r.get('errors') or {}).values())}) | - |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
