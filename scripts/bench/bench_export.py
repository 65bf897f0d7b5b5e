#!/usr/bin/env python3
"""Measures the exporter and the exported module on this machine (CPU).

1. Export wall time and model.pt size for each --configs entry (random init, fp32, CPU), each export
   in a fresh temporary repository.
2. Forward time of the eager VisualEntailment module vs the scripted one for --forward-config at batch
   sizes 1 and 16 (same weights, same inputs, interleaved, median of --iters runs) and their ratio.

Usage: /usr/bin/python3 scripts/bench/bench_export.py [--configs micro,tiny,large] [--forward-config tiny]
       [--image-size 480] [--iters 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from typing import Any, Dict, List

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # scripts/, for the ofa package

import torch  # noqa: E402

from ofa.config import preset  # noqa: E402
from ofa.entailment import VisualEntailment  # noqa: E402
from ofa.export import export, script_module  # noqa: E402
from ofa.modeling import build_model  # noqa: E402


def bench_export(name: str) -> Dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ofa-bench-") as out:
        t0 = time.perf_counter()
        summary = export(["--random-init", "--config", name, "--out", out, "--quiet"])
        return {"config": name, "export_s": round(time.perf_counter() - t0, 2),
                "model_mb": round(summary["model_bytes"] / 1e6, 1),
                "image_size": preset(name).patch_image_size}


def bench_forward(name: str, image_size: int, iters: int, text_len: int) -> List[Dict[str, Any]]:
    cfg = preset(name, patch_image_size=image_size)
    ans = [4420, 117, 2085]
    eager = VisualEntailment(build_model(cfg, seed=0), ans).eval()
    scripted = script_module(VisualEntailment(build_model(cfg, seed=0), ans).eval())
    rows = []
    for bsz in (1, 16):
        g = torch.Generator().manual_seed(bsz)
        imgs = torch.rand(bsz, 3, image_size, image_size, generator=g) * 2 - 1
        ids = torch.randint(4, 50000, (bsz, text_len), generator=g)
        ids[:, 0], ids[:, -1] = 0, 2
        times: Dict[str, List[float]] = {"eager": [], "torchscript": []}
        with torch.no_grad():
            for _ in range(2):  # warm-up (TorchScript's profiling executor optimises on the first runs)
                eager(imgs, ids)
                scripted(imgs, ids)
            for _ in range(iters):
                for kind, mod in (("eager", eager), ("torchscript", scripted)):
                    t0 = time.perf_counter()
                    mod(imgs, ids)
                    times[kind].append(time.perf_counter() - t0)
        e, s = statistics.median(times["eager"]), statistics.median(times["torchscript"])
        rows.append({"config": name, "image_size": image_size, "text_len": text_len, "batch": bsz,
                     "eager_ms": round(e * 1e3, 1), "torchscript_ms": round(s * 1e3, 1),
                     "eager_over_torchscript": round(e / s, 3)})
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--configs", default="micro,tiny,large")
    p.add_argument("--forward-config", default="tiny")
    p.add_argument("--image-size", type=int, default=480)
    p.add_argument("--text-len", type=int, default=30)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--json", default=None)
    a = p.parse_args()
    result: Dict[str, Any] = {"torch": torch.__version__, "threads": torch.get_num_threads(), "export": [],
                              "forward": []}
    for name in [c for c in a.configs.split(",") if c]:
        r = bench_export(name)
        print(json.dumps(r), flush=True)
        result["export"].append(r)
    if a.forward_config:
        for r in bench_forward(a.forward_config, a.image_size, a.iters, a.text_len):
            print(json.dumps(r), flush=True)
            result["forward"].append(r)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
