"""Exports the small TorchScript modules backend/libtorch's tests serve.

Usage: make_models.py OUTDIR. Each module is written to OUTDIR/<name>.pt.
The arithmetic is simple on purpose: the Go tests compute the expected
results themselves.
"""
import sys
from typing import Optional, Tuple

import torch


class Pair(torch.nn.Module):
    """(a @ W + b, (a - b).sum(1, keepdim)) with W[i][j] = (4*i + j) / 10 - 0.5."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("w", torch.arange(16, dtype=torch.float32).reshape(4, 4) / 10 - 0.5)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return a @ self.w + b, (a - b).sum(1, keepdim=True)


class Seq(torch.nn.Module):
    """Sum of each row of int64 ids, as float32 [B, 1], times 0.5."""

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return ids.sum(1, keepdim=True).to(torch.float32) * 0.5


class Single(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 1


class Fail(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if bool(x.sum() < 0):
            raise RuntimeError("negative sum")
        return x * 3


class Grid(torch.nn.Module):
    """Takes [B, 2, 3] (a reshape of the protocol's [B, 6]) and returns row sums [B, 2]."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.dim() == 3
        return x.sum(2)


class Opt(torch.nn.Module):
    def forward(self, x: torch.Tensor, y: Optional[torch.Tensor] = None) -> torch.Tensor:
        if y is None:
            return x
        return x + y


def main() -> None:
    out = sys.argv[1]
    torch.manual_seed(0)
    for name, mod in [("pair", Pair()), ("seq", Seq()), ("single", Single()), ("fail", Fail()),
                      ("grid", Grid()), ("opt", Opt())]:
        torch.jit.save(torch.jit.script(mod.eval()), f"{out}/{name}.pt")


if __name__ == "__main__":
    main()
