"""Exports the TorchScript "add_sub" model test/ensemble serves.

Usage: make_add_sub.py OUT.pt

add_sub(a, b) = (a + b, a - b) over FP32 [B, N] inputs of any length N (Triton's
"simple" model with variable dims). Inputs of different lengths make forward fail,
which is how the tests make a step fail inside an ensemble.
"""
import sys
from typing import Tuple

import torch


class AddSub(torch.nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return a + b, a - b


def main() -> None:
    torch.jit.script(AddSub()).save(sys.argv[1])


if __name__ == "__main__":
    main()
