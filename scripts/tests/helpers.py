"""Shared test helpers: small strongly-randomised models and right-padded batches."""

from __future__ import annotations

from typing import List, Sequence, Tuple

import torch

from ofa.config import OFAConfig, preset
from ofa.modeling import OFAModel, build_model, init_weights

ANSWER_IDS = [4420, 117, 2085]


def strong_model(cfg: OFAConfig, seed: int = 0) -> OFAModel:
    """A model whose every parameter matters: larger weights, random norms, BN stats and c_attn."""
    model = build_model(cfg, init="random", seed=seed)
    init_weights(model, seed, std=0.2, perturb_norms=True)
    return model


def micro(seed: int = 0, **changes: object) -> OFAModel:
    return strong_model(preset("micro", **changes), seed)


def random_rows(lengths: Sequence[int], seed: int, vocab: int = 50000) -> List[List[int]]:
    g = torch.Generator().manual_seed(seed)
    return [[0] + torch.randint(4, vocab, (n - 2,), generator=g).tolist() + [2] for n in lengths]


def pad_rows(rows: Sequence[Sequence[int]], pad: int = 1) -> torch.Tensor:
    out = torch.full((len(rows), max(len(r) for r in rows)), pad, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(list(r), dtype=torch.long)
    return out


def images(n: int, size: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g) * 2 - 1


def batch(lengths: Sequence[int], size: int, seed: int) -> Tuple[torch.Tensor, torch.Tensor]:
    return images(len(lengths), size, seed), pad_rows(random_rows(lengths, seed))
