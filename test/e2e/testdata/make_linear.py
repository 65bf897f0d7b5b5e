"""Exports the TorchScript model test/e2e serves.

Usage: make_linear.py OUT.pt

linear(x, y) = (x @ A + y @ B + c, (x * y).sum(1, keepdim)) over FP32 [B, 8]
inputs, with A[i][j] = (i + 1) * (j + 1) / 100, B[i][j] = (i - j) / 10 and
c[j] = j: two inputs, two outputs (FP32 [4] and FP32 [1] per item). The Go
test computes the expected values itself from these formulas.
"""
import sys
from typing import Tuple

import torch


class Linear(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        i = torch.arange(8, dtype=torch.float32).reshape(8, 1)
        j = torch.arange(4, dtype=torch.float32).reshape(1, 4)
        self.register_buffer("a", (i + 1) * (j + 1) / 100)
        self.register_buffer("b", (i - j) / 10)
        self.register_buffer("c", torch.arange(4, dtype=torch.float32))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return x @ self.a + y @ self.b + self.c, (x * y).sum(1, keepdim=True)


def main() -> None:
    torch.jit.script(Linear()).save(sys.argv[1])


if __name__ == "__main__":
    main()
