#!/usr/bin/env python3
"""simulated_summary.py: the table and plot of scripts/bench/bench_simulated.sh.

    simulated_summary.py OUT_DIR DEST_DIR

Reads OUT_DIR/closed_*.json, OUT_DIR/open_*.json and OUT_DIR/ab_*.json (ofabench --json of simulated models)
and writes DEST_DIR/simulated.md (markdown tables: throughput, mean batch, p50/p99, device efficiency; open
loop p99 and drops; the repeated one-instance 70 % pair, each window's p99 and their mean per policy) and
DEST_DIR/simulated.png (throughput and mean batch against concurrency, p99 against load).
Device efficiency is what the devices did over what they could: the samples the server executed in the
measured window (its inference_count delta, the "server" part of ofabench's result) per second, over
instances x 16 / t(16). The client's throughput (requests that started and ended inside the window, as
perf_analyzer counts) is shown beside it as "client-counted efficiency": it comes out lower by up to
latency / window at high concurrency, although the device never stopped.
"""
from __future__ import annotations

import glob
import json
import os
import sys
from typing import Any


def load(path: str) -> dict[str, Any]:
    with open(path) as f:
        return json.load(f)


def instances(label: str) -> int:
    return int(label.split("_")[2])


def row(res: dict[str, Any], lvl: dict[str, Any]) -> dict[str, Any]:
    r = lvl["result"]
    srv = r.get("server") or {}
    execs = srv.get("executions", 0)
    ideal = (res.get("simulated_device") or {}).get("ideal_samples_per_sec", 0.0) * instances(res["label"])
    errors = sum((r.get("errors") or {}).values())
    secs = r.get("duration_ns", 0) / 1e9
    executed = srv.get("inferences", 0) / secs if secs > 0 else 0.0
    return {
        "value": lvl["value"],
        "tput": r["throughput_infer_per_sec"],
        "batch": srv.get("inferences", 0) / execs if execs else 0.0,
        "p50": r["p50_ns"] / 1e6,
        "p99": r["p99_ns"] / 1e6,
        "executed": executed,
        "eff": executed / ideal if ideal else 0.0,
        "client_eff": r["throughput_infer_per_sec"] / ideal if ideal else 0.0,
        "sent": r.get("send_rate", 0.0),
        "errors": errors,
        "stable": lvl.get("stable", False),
    }


def host_costs(out: str) -> dict[str, dict[str, Any]]:
    """The LABEL.host.json files bench_simulated.sh writes for the closed-loop runs, by label."""
    costs: dict[str, dict[str, Any]] = {}
    for p in sorted(glob.glob(os.path.join(out, "closed_*.host.json"))):
        costs[os.path.basename(p)[: -len(".host.json")]] = load(p)
    return costs


def results(out: str, kind: str) -> list[dict[str, Any]]:
    """The ofabench results of OUT_DIR/KIND_*.json (closed or open), not the LABEL.host.json beside them."""
    return [load(p) for p in sorted(glob.glob(os.path.join(out, f"{kind}_*.json"))) if not p.endswith(".host.json")]


def ab_p99s(opened: dict[str, dict[str, Any]], repeats: list[dict[str, Any]]) -> dict[str, list[float]]:
    """Every one-instance 70 % window's p99 by policy: the main open-loop run's first, then the repeats'
    (ab_POLICY_1_0.7_I) in their order."""
    by: dict[str, list[float]] = {}
    for label, r in opened.items():
        _, policy, n, load_ = label.split("_")
        if n == "1" and float(load_) == 0.7:
            by.setdefault(policy, []).append(r["p99"])
    for res in sorted(repeats, key=lambda res: int(res["label"].split("_")[4])):
        if res["levels"]:
            by.setdefault(res["label"].split("_")[1], []).append(row(res, res["levels"][0])["p99"])
    return by


def main(out: str, dest: str) -> None:
    closed: dict[str, list[dict[str, Any]]] = {}
    for res in results(out, "closed"):
        closed[res["label"]] = [row(res, lvl) for lvl in res["levels"]]
    opened: dict[str, dict[str, Any]] = {}
    for res in results(out, "open"):
        if res["levels"]:
            opened[res["label"]] = row(res, res["levels"][0])
    lines = ["# ofaserve on the simulated device (t(b) = 20 ms + 2.5 ms·b, max_batch_size 16)", "",
             "Produced by `scripts/bench/bench_simulated.sh`. Device efficiency = samples the server executed per "
             "second of the window ÷ (instances × 16 / t(16)); client-counted efficiency = the client's samples/s "
             "(requests that started and ended inside the window, perf_analyzer's rule) ÷ the same.", "",
             "## Closed loop", "",
             "| policy | instances | c | client samples/s | executed samples/s | mean batch | p50 ms | p99 ms | "
             "device efficiency | client-counted efficiency |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for label, rows in closed.items():
        _, policy, n = label.split("_")
        for r in rows:
            mark = "" if r["stable"] else " (not stable)"
            lines.append(f"| {policy} | {n} | {r['value']:g} | {r['tput']:.1f}{mark} | {r['executed']:.1f} | "
                         f"{r['batch']:.2f} | {r['p50']:.1f} | {r['p99']:.1f} | {r['eff']:.3f} | {r['client_eff']:.3f} |")
    hosts = host_costs(out)
    if hosts:
        lines += ["", "## Host cost per request (each closed-loop sweep, warm-ups included)", "",
                  "| run | requests | server CPU ms/request | client CPU ms/request |", "|---|---|---|---|"]
        for label, h in hosts.items():
            lines.append(f"| {label[len('closed_'):]} | {h['requests']} | {h['server_cpu_ms_per_request']:.2f} | "
                         f"{h['client_cpu_ms_per_request']:.2f} |")
    lines += ["", "## Open loop, Poisson arrivals", "",
              "| policy | instances | load | offered req/s | sent req/s | samples/s | mean batch | p50 ms | p99 ms | drops (errors) |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for label, r in opened.items():
        _, policy, n, load_ = label.split("_")
        lines.append(f"| {policy} | {n} | {float(load_):.0%} | {r['value']:g} | {r['sent']:.1f} | {r['tput']:.1f} | "
                     f"{r['batch']:.2f} | {r['p50']:.1f} | {r['p99']:.1f} | {r['errors']} |")
    ab = ab_p99s(opened, results(out, "ab"))
    if ab:
        lines += ["", "## One instance at 70 %: every window", "",
                  "The pair above once more in each order (scripts/bench/bench_simulated.sh PAIRS): under Poisson "
                  "arrivals the two policies nearly always decide alike, and one window's p99 (its ~15 slowest "
                  "requests) moves by a few per cent from run to run.", "",
                  "| policy | windows | p99 ms of each | mean p99 ms |", "|---|---|---|---|"]
        for policy, p99s in sorted(ab.items()):
            lines.append(f"| {policy} | {len(p99s)} | {' / '.join(f'{v:.1f}' for v in p99s)} | "
                         f"{sum(p99s) / len(p99s):.1f} |")
    os.makedirs(dest, exist_ok=True)
    with open(os.path.join(dest, "simulated.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    plot(closed, opened, os.path.join(dest, "simulated.png"))
    print("\n".join(lines))


def plot(closed: dict[str, list[dict[str, Any]]], opened: dict[str, dict[str, Any]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(15, 4.5))
    for label, rows in closed.items():
        c = [r["value"] for r in rows]
        ax[0].plot(c, [r["eff"] for r in rows], marker="o", label=label[7:])
        ax[1].plot(c, [r["batch"] for r in rows], marker="o", label=label[7:])
    for a, t in ((ax[0], "device efficiency"), (ax[1], "mean batch")):
        a.set_xscale("log", base=2)
        a.set_xlabel("concurrency")
        a.set_title(t)
        a.grid(True, alpha=0.3)
        a.legend()
    series: dict[str, list[tuple[float, float]]] = {}
    for label, r in opened.items():
        _, policy, n, load_ = label.split("_")
        series.setdefault(f"{policy}_{n}", []).append((float(load_), r["p99"]))
    for name, pts in sorted(series.items()):
        pts.sort()
        ax[2].plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name)
    ax[2].set_xlabel("offered load / capacity")
    ax[2].set_ylabel("p99 ms")
    ax[2].set_title("open loop (Poisson) p99")
    ax[2].grid(True, alpha=0.3)
    ax[2].legend()
    fig.suptitle("ofaserve, simulated device t(b) = 20 ms + 2.5 ms·b: Triton rules vs adaptive")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
