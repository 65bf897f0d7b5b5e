"""session_summary.py computes the GPU session's figures by their definitions (docs/PERFORMANCE.md)."""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Dict, List, Optional

SCRIPTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(SCRIPTS, "gpu"))

import session_summary as ss  # noqa: E402


def level(c: int, thr: float, p50_ms: float, p99_ms: float) -> Dict[str, Any]:
    return {"mode": "concurrency", "value": c, "stable": True,
            "result": {"requests": 100, "throughput_infer_per_sec": thr, "p50_ns": p50_ms * 1e6, "p99_ns": p99_ms * 1e6}}


def sweep(label: str, pts: List[tuple]) -> Dict[str, Any]:
    return {"label": label, "levels": [level(*p) for p in pts]}


def bare(path: str, b: int, thr: float, p50_ms: float, h2d: float, reason: Optional[str] = None) -> Dict[str, Any]:
    r = {"batch_size": b, "path": path, "throughput_infer_per_sec": thr, "p50_forward_ns": p50_ms * 1e6,
         "p99_forward_ns": 2 * p50_ms * 1e6, "h2d_bytes_per_sample": h2d}
    if reason:
        r["graph_unavailable"] = reason
    return r


def write(work: str, name: str, doc: Any) -> None:
    with open(os.path.join(work, name), "w") as f:
        json.dump(doc, f)


def test_figures_follow_their_definitions(tmp_path) -> None:
    work, out = str(tmp_path / "work"), str(tmp_path / "out")
    os.makedirs(os.path.join(work, "logs"))
    img = 3 * 480 * 480
    write(work, "bare_fp32.json", {"results": [
        bare("float32", 16, 300, 50, 4 * img + 200), bare("staged", 16, 310, 48, img + 200),
        bare("staged", 1, 60, 16, img + 200), bare("graph", 1, 100, 10, img + 200), bare("graph", 16, 320, 47, img + 200)]})
    write(work, "bare_bf16.json", {"results": [
        bare("staged", 1, 90, 11, img), bare("graph", 1, 90, 11, img, "capture failed: sync"),
        bare("staged", 16, 700, 20, img), bare("graph", 16, 700, 20, img, "capture failed: sync")]})
    write(work, "ofaserve_fp32.json", sweep("ofaserve_fp32", [(1, 50, 18, 20), (16, 280, 50, 60), (64, 304, 150, 210)]))
    write(work, "ofaserve_bf16.json", sweep("ofaserve_bf16", [(1, 70, 13, 15), (16, 600, 25, 30), (64, 665, 90, 100)]))
    write(work, "python_batching.json", sweep("python_batching", [(1, 30, 30, 35), (16, 90, 170, 200), (64, 95, 600, 700)]))
    with open(os.path.join(work, "gpu_util.csv"), "w") as f:
        f.write("ofaserve_fp32, 2026/12/02 08:00:00.000, 90, 4000\nofaserve_fp32, 2026/12/02 08:00:00.250, 100, 4000\n")
    with open(os.path.join(work, "logs", "ofaserve_fp32.log"), "w") as f:
        f.write("load_secs 12.5\nwarmup_secs 3.25\n")
    with open(os.path.join(work, "stages.tsv"), "w") as f:
        f.write("export\tok\t80\t\nbare\tTIMEOUT\t100\tlimit 100s\n")
    with open(os.path.join(work, "facts.tsv"), "w") as f:
        f.write("export_secs\t81.5\nmode\tGPU cuda:0\n")
    assert ss.main(["session_summary.py", work, out]) == 0

    fig = json.load(open(os.path.join(out, "summary.json")))
    rt, srv = fig["ratios"], fig["servers"]
    # fp32: the graph was captured at batch 16, so it is the server's path; bf16 fell back to staged.
    assert rt["serving_efficiency_fp32"] == 304 / 320
    assert rt["serving_efficiency_bf16"] == 665 / 700
    # Python's saturation is 95/s at p99 700 ms: ofaserve's best level within 700 ms is c=64 (304/s).
    assert rt["ofaserve_fp32_over_python_batching_at_equal_p99"] == 304 / 95
    assert rt["h2d_bytes_per_sample_before"] == 4 * img + 200 and rt["h2d_bytes_per_sample_after"] == img + 200
    assert rt["graph_over_eager_b1_p50_fp32"] == 10 / 16
    assert rt["graph_over_eager_b1_p50_bf16"] is None  # no graph: no ratio
    assert srv["ofaserve_fp32"]["c1_p99_ms"] == 20 and srv["ofaserve_fp32"]["c16_p50_ms"] == 50
    assert srv["ofaserve_fp32"]["saturation_infer_per_sec"] == 304 and srv["ofaserve_fp32"]["load_secs"] == 12.5
    assert srv["ofaserve_fp32"]["gpu_util_mean_pct"] == 95
    md = open(os.path.join(out, "summary.md")).read()
    assert "| bare | TIMEOUT | 100 | limit 100s |" in md and "81.5 s" in md
    assert "| ofaserve bf16 samples/s at saturation | 665.0 | >= 600 |" in md
    assert "eager: capture failed: sync" in md
    assert sorted(os.listdir(out)) == ["bare.json", "checks.log", "gpu_util.csv", "ofaserve.json", "python.json",
                                       "summary.json", "summary.md"]


def test_partial_results_still_summarize(tmp_path) -> None:
    work, out = str(tmp_path / "work"), str(tmp_path / "out")
    os.makedirs(work)
    with open(os.path.join(work, "stages.tsv"), "w") as f:
        f.write("checks\tFAIL\t3\texit 1\n")
    assert ss.main(["session_summary.py", work, out]) == 0
    md = open(os.path.join(out, "summary.md")).read()
    assert "| checks | FAIL | 3 | exit 1 |" in md and "n/a" in md
    assert json.load(open(os.path.join(out, "summary.json")))["ratios"]["serving_efficiency_fp32"] is None
