"""simulated_summary.py computes device efficiency and mean batch by their definitions (docs/PERFORMANCE.md)."""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Dict

SCRIPTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(SCRIPTS, "bench"))

import simulated_summary as sm  # noqa: E402


def result(label: str, value: float, thr: float, inferences: int, executions: int, p99_ms: float = 90.0) -> Dict[str, Any]:
    return {"label": label, "simulated_device": {"ideal_samples_per_sec": 16 / 0.060},
            "levels": [{"mode": "concurrency", "value": value, "stable": True,
                        "result": {"duration_ns": 1e9, "throughput_infer_per_sec": thr, "p50_ns": 50e6, "p99_ns": p99_ms * 1e6, "send_rate": thr,
                                   "errors": {"503": 2},
                                   "server": {"inferences": inferences, "executions": executions}}}]}


def test_row_efficiency_counts_instances() -> None:
    # The device executed 240 samples in the 1 s window; the client saw 200 requests start and end in it.
    one = result("closed_triton_1", 16, 200.0, 240, 15)
    r = sm.row(one, one["levels"][0])
    assert abs(r["eff"] - 240.0 / (16 / 0.060)) < 1e-9
    assert abs(r["client_eff"] - 200.0 / (16 / 0.060)) < 1e-9
    assert r["batch"] == 16.0 and r["errors"] == 2 and r["p99"] == 90.0 and r["executed"] == 240.0
    two = result("closed_triton_2", 16, 200.0, 240, 30)
    r2 = sm.row(two, two["levels"][0])
    assert abs(r2["eff"] - r["eff"] / 2) < 1e-9 and r2["batch"] == 8.0


def test_row_without_server_statistics() -> None:
    res = result("closed_triton_1", 16, 200.0, 0, 0)
    del res["levels"][0]["result"]["server"]
    r = sm.row(res, res["levels"][0])
    assert r["eff"] == 0.0 and r["batch"] == 0.0 and r["client_eff"] > 0


def test_main_writes_table_and_plot(tmp_path: Any) -> None:
    out, dest = tmp_path / "out", tmp_path / "dest"
    out.mkdir()
    for label in ("closed_adaptive_1", "open_triton_1_0.7"):
        (out / f"{label}.json").write_text(json.dumps(result(label, 64, 200.0, 160, 10)))
    (out / "closed_adaptive_1.host.json").write_text(json.dumps(
        {"requests": 1200, "server_cpu_ms_per_request": 3.04, "client_cpu_ms_per_request": 0.21}))
    sm.main(str(out), str(dest))
    md = (dest / "simulated.md").read_text()
    assert "| adaptive_1 | 1200 | 3.04 | 0.21 |" in md
    assert "| adaptive | 1 | 64 | 200.0 | 160.0 | 16.00 | 50.0 | 90.0 | 0.600 | 0.750 |" in md
    assert "| triton | 1 | 70% |" in md
    assert (dest / "simulated.png").stat().st_size > 1000


def test_ab_windows_are_listed_in_order_with_their_mean(tmp_path: Any) -> None:
    out, dest = tmp_path / "out", tmp_path / "dest"
    out.mkdir()
    runs = {"open_triton_1_0.7": 110.0, "open_adaptive_1_0.7": 112.0, "open_adaptive_2_0.7": 500.0,
            "open_triton_1_0.5": 400.0, "ab_adaptive_1_0.7_1": 108.0, "ab_triton_1_0.7_1": 111.0,
            "ab_triton_1_0.7_2": 109.0, "ab_adaptive_1_0.7_2": 106.0}
    for label, p99 in runs.items():
        (out / f"{label}.json").write_text(json.dumps(result(label, 186.7, 186.0, 186, 25, p99)))
    sm.main(str(out), str(dest))
    md = (dest / "simulated.md").read_text()
    # Only one instance at 70 % counts: the main run's window first, then the repeats by their number.
    assert "| adaptive | 3 | 112.0 / 108.0 / 106.0 | 108.7 |" in md
    assert "| triton | 3 | 110.0 / 111.0 / 109.0 | 110.0 |" in md
