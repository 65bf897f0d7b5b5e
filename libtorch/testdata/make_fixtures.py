#!/usr/bin/env python3
"""Builds the TorchScript fixtures the libtorch package's tests load, and records Python's outputs.

Usage: make_fixtures.py --out DIR [--device cuda:0]

The expected outputs are computed on --device (default cpu), the device the Go tests will run on, so
that GPU runs compare libtorch-through-the-shim with PyTorch on the same kernels.

Writes DIR/<model>.pt for each fixture, DIR/<model>/b<B>_in<i>.bin and b<B>_out<j>.bin (raw little-endian,
row-major tensors) for batch sizes 1..16, and DIR/index.json describing every case:

    {"models": {"<name>": {"file": "<name>.pt", "precision": "float32",
                           "cases": [{"batch": B, "inputs": [T...], "outputs": [T...]}]}}}
    T = {"dtype": "float32", "shape": [..], "file": "<name>/b<B>_in0.bin"}

Everything is seeded, so the files are the same on every run with the same torch.
"""
from __future__ import annotations

import argparse
import json
import os
from typing import Callable, Dict, List, Tuple

import torch
from torch import Tensor, nn

BATCHES = range(1, 17)

DTYPE_NAMES: Dict[torch.dtype, str] = {
    torch.float32: "float32",
    torch.float16: "float16",
    torch.bfloat16: "bfloat16",
    torch.int64: "int64",
    torch.int32: "int32",
    torch.uint8: "uint8",
    torch.bool: "bool",
    torch.float64: "float64",
    torch.int8: "int8",
    torch.int16: "int16",
}


class Multi(nn.Module):
    """Two inputs of different dtypes: x f32[B,4], ids i64[B,3] -> f32[B,8]. torch.mm needs rank 2 and
    the embedding needs integer ids, so wrong ranks and dtypes raise inside the module."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(4, 8))
        self.emb = nn.Embedding(10, 8)

    def forward(self, x: Tensor, ids: Tensor) -> Tensor:
        return torch.mm(x, self.weight) + self.emb(ids).sum(1)


class TupleOut(nn.Module):
    """Nested tuple output, flattened in order: f32[B,4], i64[B], f32[B], f32[]."""

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor, Tuple[Tensor, Tensor]]:
        return x * 1.5 + 0.25, x.argmax(1), (x.sum(1), x.max())


class ListOut(nn.Module):
    """List output: [f32[B,4], f32[B,4], f32[B]]."""

    def forward(self, x: Tensor) -> List[Tensor]:
        return [x - 1.0, x * x, x.mean(1)]


class DTypes(nn.Module):
    """One input and one output per dtype, each transformed in its own dtype."""

    def forward(self, f32: Tensor, f16: Tensor, bf16: Tensor, i64: Tensor, i32: Tensor, u8: Tensor,
                b: Tensor, f64: Tensor, i8: Tensor, i16: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor,
                                                                       Tensor, Tensor, Tensor, Tensor, Tensor]:
        return (f32 * 2.0 + 1.0, f16 * 2.0 + 1.0, bf16 * 2.0 + 1.0, i64 * 3 - 1, i32 * 3 - 1, u8 * 3 + 1,
                torch.logical_not(b), f64 * 2.0 + 1.0, i8 * 3 - 1, i16 * 3 - 1)


class Gather(nn.Module):
    """Integer state beside floating state, as in the exported OFA module (its answer ids feed
    index_select): an int64 buffer offsets int64 input ids that index_select picks rows of a float
    parameter with; a float buffer scales the result. x f32[B,4], ids i64[B,3] -> (f32[B,4], i64[B,3]).
    Loaded in reduced precision, the float tensors must convert and the integer ones must not (a converted
    index makes index_select raise); the second output hands ids back as they came."""

    def __init__(self) -> None:
        super().__init__()
        self.table = nn.Parameter(torch.randn(16, 4))
        self.proj = nn.Linear(4, 4)
        self.register_buffer("offset", torch.tensor(3, dtype=torch.int64))
        self.register_buffer("scale", torch.rand(4) + 0.5)

    def forward(self, x: Tensor, ids: Tensor) -> Tuple[Tensor, Tensor]:
        rows = torch.index_select(self.table, 0, (ids % 13 + self.offset).reshape(-1))
        summed = rows.reshape(ids.size(0), ids.size(1), 4).sum(1)
        return self.proj(summed + x) * self.scale, ids


class Raises(nn.Module):
    """Raises a ValueError (with a message naming the problem) when the inputs sum below zero."""

    def forward(self, x: Tensor) -> Tensor:
        if bool(x.sum() < 0):
            raise ValueError("negative input sum: this module only takes non-negative inputs")
        return x * 2.0


class Tiny(nn.Module):
    """A tiny MLP f32[B,16] -> f32[B,4], for the concurrency test and the overhead benchmark."""

    def __init__(self) -> None:
        super().__init__()
        self.l1 = nn.Linear(16, 32)
        self.l2 = nn.Linear(32, 4)

    def forward(self, x: Tensor) -> Tensor:
        return self.l2(torch.relu(self.l1(x)))


class Echo(nn.Module):
    """Returns its inputs: image f32[B,3,H,W], ids i64[B,4] -> (image, ids). The staging tests read back what
    a staged image input became on the device (normalized, and in the module's precision)."""

    def forward(self, image: Tensor, ids: Tensor) -> Tuple[Tensor, Tensor]:
        return image, ids


def f32(b: int, *shape: int) -> Tensor:
    return torch.randn(b, *shape)


def dtype_inputs(b: int) -> List[Tensor]:
    g = torch.randn(b, 5)
    return [g, g.half(), g.bfloat16(), torch.randint(-1000, 1000, (b, 5)), torch.randint(-1000, 1000, (b, 5),
            dtype=torch.int32), torch.randint(0, 256, (b, 5), dtype=torch.uint8), torch.rand(b, 5) > 0.5,
            g.double(), torch.randint(-40, 40, (b, 5), dtype=torch.int8), torch.randint(-9000, 9000, (b, 5),
            dtype=torch.int16)]


FIXTURES: Dict[str, Tuple[Callable[[], nn.Module], Callable[[int], List[Tensor]], str]] = {
    # name: (module factory, inputs for batch b, how to compile)
    "multi": (Multi, lambda b: [f32(b, 4), torch.randint(0, 10, (b, 3))], "script"),
    "tuple_out": (TupleOut, lambda b: [f32(b, 4)], "script"),
    "list_out": (ListOut, lambda b: [f32(b, 4)], "script"),
    "dtypes": (DTypes, dtype_inputs, "script"),
    "raises": (Raises, lambda b: [f32(b, 4).abs()], "script"),
    # ids far beyond what a float type holds exactly, so a conversion could not go unnoticed.
    "gather": (Gather, lambda b: [f32(b, 4), torch.randint(2**40, 2**41, (b, 3))], "script"),
    "tiny": (Tiny, lambda b: [f32(b, 16)], "trace"),
    "echo": (Echo, lambda b: [f32(b, 3, 5, 7), torch.randint(0, 100, (b, 4))], "script"),
}


def flatten(v: object) -> List[Tensor]:
    if isinstance(v, Tensor):
        return [v]
    if isinstance(v, (tuple, list)):
        return [t for e in v for t in flatten(e)]
    raise TypeError(f"unexpected output {type(v)}")


def write_tensor(out: str, rel: str, t: Tensor) -> Dict[str, object]:
    t = t.detach().contiguous()
    with open(os.path.join(out, rel), "wb") as f:
        f.write(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return {"dtype": DTYPE_NAMES[t.dtype], "shape": list(t.shape), "file": rel}


def record(out: str, name: str, module: torch.jit.ScriptModule, inputs: Callable[[int], List[Tensor]],
           precision: torch.dtype, model_file: str, device: str) -> Dict[str, object]:
    os.makedirs(os.path.join(out, name), exist_ok=True)
    cases = []
    for b in BATCHES:
        xs = inputs(b)
        dxs = [x.to(device) for x in xs]
        with torch.no_grad():
            if precision == torch.float32:
                ys = flatten(module(*dxs))
            else:  # what the shim does: floating params, buffers and inputs in precision, outputs back to
                # float32. nn.Module.to(dtype) converts only floating tensors: integer buffers stay.
                low = module.to(precision)
                ys = [y.float() if y.dtype == precision else y
                      for y in flatten(low(*[x.to(precision) if x.is_floating_point() else x for x in dxs]))]
                module.float()
        ys = [y.cpu() for y in ys]
        cases.append({
            "batch": b,
            "inputs": [write_tensor(out, f"{name}/b{b}_in{i}.bin", x) for i, x in enumerate(xs)],
            "outputs": [write_tensor(out, f"{name}/b{b}_out{j}.bin", y) for j, y in enumerate(ys)],
        })
    return {"file": model_file, "precision": DTYPE_NAMES[precision], "cases": cases}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(20240601)
    index: Dict[str, Dict[str, object]] = {}
    for name, (factory, inputs, how) in FIXTURES.items():
        m = factory().eval()
        if how == "trace":
            sm = torch.jit.trace(m, tuple(inputs(2)))
        else:
            sm = torch.jit.script(m)
        sm.save(os.path.join(args.out, f"{name}.pt"))
        loaded = torch.jit.load(os.path.join(args.out, f"{name}.pt"), map_location=args.device)
        index[name] = record(args.out, name, loaded, inputs, torch.float32, f"{name}.pt", args.device)
    # The multi fixture again, loaded with Precision=bfloat16 (CPU libtorch 1.13 has no fp16 matmul).
    loaded = torch.jit.load(os.path.join(args.out, "multi.pt"), map_location=args.device)
    index["multi_bf16"] = record(args.out, "multi_bf16", loaded, FIXTURES["multi"][1], torch.bfloat16, "multi.pt",
                                 args.device)
    # The gather fixture (integer buffer and index input) loaded with Precision=bfloat16. Its inputs are
    # drawn afresh; gather_bf16_f32 runs the same inputs in float32, to check bf16 stays near it.
    loaded = torch.jit.load(os.path.join(args.out, "gather.pt"), map_location=args.device)
    state = torch.get_rng_state()
    index["gather_bf16"] = record(args.out, "gather_bf16", loaded, FIXTURES["gather"][1], torch.bfloat16,
                                  "gather.pt", args.device)
    torch.set_rng_state(state)
    # Loaded afresh: the bf16 run rounded the first copy's parameters (module.float() cannot undo that).
    loaded = torch.jit.load(os.path.join(args.out, "gather.pt"), map_location=args.device)
    index["gather_bf16_f32"] = record(args.out, "gather_bf16_f32", loaded, FIXTURES["gather"][1], torch.float32,
                                      "gather.pt", args.device)
    # A zip archive that torch.load reads but that is not TorchScript.
    torch.save({"weight": torch.zeros(2)}, os.path.join(args.out, "state_dict.pt"))
    with open(os.path.join(args.out, "index.json"), "w") as f:
        json.dump({"torch": torch.__version__, "device": args.device, "models": index}, f, indent=1)


if __name__ == "__main__":
    main()
