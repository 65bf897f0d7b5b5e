#!/usr/bin/env python3
"""The figures of a GPU session (scripts/gpu/gpu_session.sh) from what its stages left in WORK.

Usage: session_summary.py WORK OUT

Reads WORK/stages.tsv and facts.tsv (the script's), bare_{fp32,bf16}.json (ofabench bare),
{ofaserve_fp32,ofaserve_bf16,python_batching,python_threads}.json (ofabench sweeps), gpu_util.csv (NVML
samples: label, timestamp, utilisation %, memory MiB), logs/*.log, gpu_check.out and ../logs/go_*.log
(gpu_check.sh's), whichever exist, and writes to OUT (at most 7 files; the script adds logs.tar.gz):

  summary.md     the figures, the stages and the checks, for docs/PERFORMANCE.md
  summary.json   the same figures as numbers
  bare.json      the bare-loop documents, by precision
  ofaserve.json  the ofaserve sweeps, by label
  python.json    the Python baselines' sweeps, by label
  gpu_util.csv   the NVML samples, with a header
  checks.log     gpu_check's summary, the curl transcript, and every Go test's verdict and log lines

Definitions (docs/PERFORMANCE.md): saturation is a sweep's level with the highest throughput; serving
efficiency is ofaserve's saturation throughput over the bare loop's at batch 16 on the path the server takes
(graph where captured, else staged), same precision; ofaserve / Python at equal p99 is the best ofaserve
level whose p99 is no worse than the Python peer's p99 at its saturation, over the Python peer's saturation
throughput.
"""

from __future__ import annotations

import csv
import glob
import json
import os
import re
import sys
from typing import Any, Dict, List, Optional, Tuple

Doc = Dict[str, Any]

SWEEPS = ("ofaserve_fp32", "ofaserve_bf16", "python_batching", "python_threads")


def load(path: str) -> Optional[Doc]:
    try:
        with open(path, "r", encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def levels(doc: Optional[Doc]) -> List[Doc]:
    return [lv for lv in (doc or {}).get("levels") or [] if lv["result"]["requests"] > 0]


def saturation(doc: Optional[Doc]) -> Optional[Doc]:
    ls = levels(doc)
    return max(ls, key=lambda lv: lv["result"]["throughput_infer_per_sec"]) if ls else None


def at_concurrency(doc: Optional[Doc], c: int) -> Optional[Doc]:
    for lv in levels(doc):
        if lv["mode"] == "concurrency" and int(lv["value"]) == c:
            return lv
    return None


def best_within_p99(doc: Optional[Doc], p99_ns: float) -> Optional[Doc]:
    ok = [lv for lv in levels(doc) if lv["result"]["p99_ns"] <= p99_ns]
    return max(ok, key=lambda lv: lv["result"]["throughput_infer_per_sec"]) if ok else None


def throughput(lv: Optional[Doc]) -> Optional[float]:
    return lv["result"]["throughput_infer_per_sec"] if lv else None


def bare_result(doc: Optional[Doc], path: str, batch: int) -> Optional[Doc]:
    for r in (doc or {}).get("results") or []:
        if r.get("path", "float32") == path and r["batch_size"] == batch:
            return r
    return None


def server_path_result(doc: Optional[Doc], batch: int) -> Optional[Doc]:
    """The bare loop on the path ofaserve takes: the graph where one was captured, else staged."""
    g = bare_result(doc, "graph", batch)
    if g and not g.get("graph_unavailable"):
        return g
    return bare_result(doc, "staged", batch)


def ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return a / b if a is not None and b else None


def read_tsv(path: str) -> List[List[str]]:
    try:
        with open(path, "r", encoding="utf-8") as f:
            return [line.rstrip("\n").split("\t") for line in f if line.strip()]
    except OSError:
        return []


def kv_from_log(path: str) -> Dict[str, float]:
    """'key value' lines a stage printed (load_secs, warmup_secs, export_secs)."""
    out: Dict[str, float] = {}
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as f:
            for line in f:
                m = re.match(r"^(\w+_secs) ([0-9.eE+-]+)\s*$", line)
                if m:
                    out[m.group(1)] = float(m.group(2))
    except OSError:
        pass
    return out


def gpu_util(path: str) -> Tuple[List[List[str]], Dict[str, Dict[str, float]]]:
    """The samples and, per label, the mean and the 90th percentile of the utilisation while it ran."""
    rows: List[List[str]] = []
    by: Dict[str, List[float]] = {}
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as f:
            for rec in csv.reader(f):
                rec = [x.strip() for x in rec]
                if len(rec) < 4:
                    continue
                try:
                    u = float(rec[2])
                except ValueError:
                    continue
                rows.append(rec[:4])
                by.setdefault(rec[0], []).append(u)
    except OSError:
        pass
    stats = {}
    for label, us in by.items():
        s = sorted(us)
        stats[label] = {"mean": sum(s) / len(s), "p90": s[min(len(s) - 1, int(0.9 * len(s)))], "samples": float(len(s))}
    return rows, stats


def figures(work: str) -> Doc:
    bare = {p: load(os.path.join(work, f"bare_{p}.json")) for p in ("fp32", "bf16")}
    sweeps = {k: load(os.path.join(work, f"{k}.json")) for k in SWEEPS}
    facts = {r[0]: r[1] for r in read_tsv(os.path.join(work, "facts.tsv")) if len(r) >= 2}
    _, util = gpu_util(os.path.join(work, "gpu_util.csv"))
    fig: Doc = {"facts": facts, "servers": {}, "bare": {}, "ratios": {}}
    for name, doc in sweeps.items():
        if not levels(doc):
            continue
        sat = saturation(doc)
        entry: Doc = {"saturation_infer_per_sec": throughput(sat), "saturation_concurrency": sat["value"] if sat else None,
                      "saturation_p99_ms": sat["result"]["p99_ns"] / 1e6 if sat else None}
        for c in (1, 16):
            lv = at_concurrency(doc, c)
            if lv:
                entry[f"c{c}_p50_ms"] = lv["result"]["p50_ns"] / 1e6
                entry[f"c{c}_p99_ms"] = lv["result"]["p99_ns"] / 1e6
                entry[f"c{c}_infer_per_sec"] = lv["result"]["throughput_infer_per_sec"]
        entry.update(kv_from_log(os.path.join(work, "logs", f"{name}.log")))
        if name in util:
            entry["gpu_util_mean_pct"] = util[name]["mean"]
            entry["gpu_util_p90_pct"] = util[name]["p90"]
        fig["servers"][name] = entry
    for prec, doc in bare.items():
        for r in (doc or {}).get("results") or []:
            key = f"{prec}_{r.get('path', 'float32')}_b{r['batch_size']}"
            fig["bare"][key] = {"infer_per_sec": r["throughput_infer_per_sec"], "p50_ms": r["p50_forward_ns"] / 1e6,
                                "p99_ms": r["p99_forward_ns"] / 1e6, "h2d_bytes_per_sample": r.get("h2d_bytes_per_sample"),
                                "graph_unavailable": r.get("graph_unavailable")}
    rt = fig["ratios"]
    for prec in ("fp32", "bf16"):
        b16 = server_path_result(bare[prec], 16)
        rt[f"serving_efficiency_{prec}"] = ratio(throughput(saturation(sweeps[f"ofaserve_{prec}"])),
                                                 b16["throughput_infer_per_sec"] if b16 else None)
        for peer in ("python_batching", "python_threads"):
            py = saturation(sweeps[peer])
            if py is None or not levels(sweeps[f"ofaserve_{prec}"]):
                continue
            same = best_within_p99(sweeps[f"ofaserve_{prec}"], py["result"]["p99_ns"])
            rt[f"ofaserve_{prec}_over_{peer}_at_equal_p99"] = ratio(throughput(same), throughput(py))
            rt[f"ofaserve_{prec}_over_{peer}_at_saturation"] = ratio(throughput(saturation(sweeps[f"ofaserve_{prec}"])), throughput(py))
        g, e = bare_result(bare[prec], "graph", 1), bare_result(bare[prec], "staged", 1)
        if g and e:
            rt[f"graph_over_eager_b1_p50_{prec}"] = None if g.get("graph_unavailable") else ratio(g["p50_forward_ns"], e["p50_forward_ns"])
    f32, st = bare_result(bare["fp32"], "float32", 16), bare_result(bare["fp32"], "staged", 16)
    if f32 and st:
        rt["h2d_bytes_per_sample_before"] = f32.get("h2d_bytes_per_sample")
        rt["h2d_bytes_per_sample_after"] = st.get("h2d_bytes_per_sample")
    return fig


def fmt(v: Optional[float], spec: str = ".2f", unit: str = "") -> str:
    return "n/a" if v is None else f"{v:{spec}}{unit}"


def markdown(work: str, fig: Doc) -> str:
    facts, srv, bare, rt = fig["facts"], fig["servers"], fig["bare"], fig["ratios"]
    out = [f"# GPU session: {facts.get('mode', '?')}", "",
           f"GPU: {facts.get('gpu') or 'none (no nvidia-smi)'}; torch {facts.get('torch', '?')}; {facts.get('cpus', '?')} CPUs; "
           f"export of the model: {facts.get('export_secs', 'n/a')} s", ""]
    out += ["## Stages", "", "| stage | status | seconds | note |", "|---|---|---|---|"]
    for r in read_tsv(os.path.join(work, "stages.tsv")):
        r += [""] * (4 - len(r))
        out.append(f"| {r[0]} | {r[1]} | {r[2]} | {r[3].replace('|', '/')} |")
    out += ["", "## Servers (closed loop, KServe v2 JSON, JPEG + text)", "",
            "| server | saturation infer/s (at c) | p99 there ms | c=1 p50 / p99 ms | c=16 p50 / p99 ms | load s | warm-up s | GPU util mean / p90 % |",
            "|---|---|---|---|---|---|---|---|"]
    for name, e in srv.items():
        out.append(f"| {name} | {fmt(e.get('saturation_infer_per_sec'), '.1f')} (c={fmt(e.get('saturation_concurrency'), 'g')}) "
                   f"| {fmt(e.get('saturation_p99_ms'), '.1f')} | {fmt(e.get('c1_p50_ms'), '.1f')} / {fmt(e.get('c1_p99_ms'), '.1f')} "
                   f"| {fmt(e.get('c16_p50_ms'), '.1f')} / {fmt(e.get('c16_p99_ms'), '.1f')} | {fmt(e.get('load_secs'), '.1f')} "
                   f"| {fmt(e.get('warmup_secs'), '.1f')} | {fmt(e.get('gpu_util_mean_pct'), '.0f')} / {fmt(e.get('gpu_util_p90_pct'), '.0f')} |")
    out += ["", "## Bare loop (ofabench bare)", "", "| precision, path, batch | infer/s | p50 ms | p99 ms | H2D bytes/sample | graph |",
            "|---|---|---|---|---|---|"]
    for k, b in bare.items():
        graph = ("eager: " + b["graph_unavailable"][:80]) if b.get("graph_unavailable") else ("replayed" if "_graph_" in k else "-")
        out.append(f"| {k} | {fmt(b['infer_per_sec'], '.1f')} | {fmt(b['p50_ms'], '.2f')} | {fmt(b['p99_ms'], '.2f')} "
                   f"| {fmt(b.get('h2d_bytes_per_sample'), '.0f')} | {graph} |")
    out += ["", "## Figures against the goals", "", "| figure | value | goal |", "|---|---|---|"]
    bf = srv.get("ofaserve_bf16", {})
    out.append(f"| ofaserve bf16 samples/s at saturation | {fmt(bf.get('saturation_infer_per_sec'), '.1f')} | >= 600 |")
    gb1 = bare.get("bf16_graph_b1", {})
    out.append(f"| batch-1 latency with graphs (bare bf16 graph, p50) | {fmt(gb1.get('p50_ms'), '.2f', ' ms')}"
               f"{' (no graph: eager)' if gb1.get('graph_unavailable') else ''} | <= 10 ms |")
    for prec in ("fp32", "bf16"):
        out.append(f"| serving efficiency {prec} (ofaserve / bare batch 16, server's path) | {fmt(rt.get(f'serving_efficiency_{prec}'))} | >= 0.95 |")
    for k, v in rt.items():
        if "_over_python_" in k:
            goal = ">= 3" if k.endswith("python_batching_at_equal_p99") else "-"
            out.append(f"| {k.replace('_', ' ')} | {fmt(v)} | {goal} |")
    out.append(f"| H2D bytes per sample, float32 path -> uint8 staged (batch 16) | {fmt(rt.get('h2d_bytes_per_sample_before'), '.0f')} -> "
               f"{fmt(rt.get('h2d_bytes_per_sample_after'), '.0f')} | 1/4 of the image bytes |")
    for prec in ("fp32", "bf16"):
        out.append(f"| graph / eager p50 at batch 1, {prec} | {fmt(rt.get(f'graph_over_eager_b1_p50_{prec}'))} | < 1 |")
    out += ["", "## Checks (gpu_check.sh)", "", "```"]
    out += check_summary(work)
    out += ["```", ""]
    return "\n".join(out)


def check_summary(work: str) -> List[str]:
    try:
        with open(os.path.join(work, "gpu_check.out"), "r", encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return ["(no gpu_check output)"]
    m = re.search(r"=== gpu_check summary.*?(?=\n\n|\Z)", text, re.S)
    return (m.group(0) if m else text[-3000:]).splitlines()


def checks_log(work: str) -> str:
    parts: List[str] = []
    try:
        with open(os.path.join(work, "gpu_check.out"), "r", encoding="utf-8", errors="replace") as f:
            parts.append(f.read())
    except OSError:
        parts.append("(no gpu_check output)\n")
    for log in sorted(glob.glob(os.path.join(work, "..", "logs", "go_*.log"))):
        keep = []
        with open(log, "r", encoding="utf-8", errors="replace") as f:
            for line in f:
                if re.match(r"^(--- (PASS|FAIL|SKIP)|\s+--- (PASS|FAIL|SKIP)|\s+\S+_test\.go:\d+:|FAIL|ok|PASS|panic)", line):
                    keep.append(line.rstrip("\n")[:400])
        parts.append(f"\n=== {os.path.basename(log)}: {len(keep)} lines kept\n" + "\n".join(keep[:600]) + "\n")
    return "".join(parts)


def main(argv: List[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    work, out = argv[1], argv[2]
    os.makedirs(out, exist_ok=True)
    fig = figures(work)
    with open(os.path.join(out, "summary.json"), "w", encoding="utf-8") as f:
        json.dump(fig, f, indent=1)
    with open(os.path.join(out, "summary.md"), "w", encoding="utf-8") as f:
        f.write(markdown(work, fig))
    bare = {p: d for p in ("fp32", "bf16") if (d := load(os.path.join(work, f"bare_{p}.json")))}
    if bare:
        with open(os.path.join(out, "bare.json"), "w", encoding="utf-8") as f:
            json.dump(bare, f)
    for name, keys in (("ofaserve", SWEEPS[:2]), ("python", SWEEPS[2:])):
        docs = {k: d for k in keys if (d := load(os.path.join(work, f"{k}.json")))}
        if docs:
            with open(os.path.join(out, f"{name}.json"), "w", encoding="utf-8") as f:
                json.dump(docs, f)
    rows, _ = gpu_util(os.path.join(work, "gpu_util.csv"))
    if rows:
        with open(os.path.join(out, "gpu_util.csv"), "w", encoding="utf-8", newline="") as f:
            w = csv.writer(f)
            w.writerow(["label", "timestamp", "utilization_gpu_pct", "memory_used_mib"])
            w.writerows(rows)
    with open(os.path.join(out, "checks.log"), "w", encoding="utf-8") as f:
        f.write(checks_log(work))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
