"""Relative-position bucket rules of OFA (docs/ofa-visual-entailment.md §2.7), as full tables and as on-the-fly functions.

The tables (``token_rp_bucket`` [P, P], ``image_rp_bucket`` [G*G+1, G*G+1]) are what checkpoints store.
The model computes the same numbers on the fly for the sizes it sees, from the same float32 ops, so the
exported module carries no large index tables and works for any text length and image grid.
"""

from __future__ import annotations

import math

import torch


def token_bucket(relative: torch.Tensor, bucket_size: int, max_position: int) -> torch.Tensor:
    """Bucket index (0 .. 2*bucket_size-2) for relative distances r = query - key (int64 tensor).

    |r| <= mid (= bucket_size // 2) keeps r; beyond that, sign(r) * (ceil(log(|r|/mid) /
    log((max_position-1)/mid) * (mid-1)) + mid), computed in float32 like the reference.
    """
    mid = bucket_size // 2
    sign = torch.sign(relative)
    inside = (relative < mid) & (relative > -mid)
    # Inside the linear zone the log branch is unused; mid-1 keeps its argument positive.
    abs_pos = torch.where(inside, torch.full_like(relative, mid - 1), relative.abs())
    log_pos = torch.ceil(torch.log(abs_pos.float() / mid) / math.log((max_position - 1) / mid) * (mid - 1)) + mid
    bucket = torch.where(abs_pos <= mid, relative, log_pos.long() * sign)
    return bucket + bucket_size - 1


def make_token_bucket_position(bucket_size: int = 256, max_position: int = 1024) -> torch.Tensor:
    """The ``token_rp_bucket`` table: int64 [max_position, max_position], entry [i, j] for r = i - j."""
    pos = torch.arange(max_position)
    return token_bucket(pos[:, None] - pos[None, :], bucket_size, max_position)


def image_bucket_grid(h: int, w: int, bucket_size: int, device: torch.device) -> torch.Tensor:
    """Bucket indices [h*w, h*w] between the cells of an h x w grid (row-major), i.e.
    ``image_rp_bucket[pid][:, pid]`` for ``pid = row * bucket_size + col + 1``."""
    rows = torch.arange(h, device=device)[:, None].expand(h, w).reshape(-1)
    cols = torch.arange(w, device=device)[None, :].expand(h, w).reshape(-1)
    dr = rows[:, None] - rows[None, :] + (bucket_size - 1)
    dc = cols[:, None] - cols[None, :] + (bucket_size - 1)
    return dr * (2 * bucket_size - 1) + dc


def image_position_ids(h: int, w: int, bucket_size: int, device: torch.device) -> torch.Tensor:
    """1-based flat grid ids ``row * bucket_size + col + 1`` of an h x w grid, row-major ([h*w])."""
    rows = torch.arange(h, device=device)[:, None] * bucket_size
    cols = torch.arange(w, device=device)[None, :]
    return (rows + cols + 1).reshape(-1)


def image_num_relative_distance(bucket_size: int) -> int:
    return (2 * bucket_size - 1) ** 2 + 3


def make_image_bucket_position(bucket_size: int = 42) -> torch.Tensor:
    """The ``image_rp_bucket`` table: int64 [bucket_size**2 + 1, bucket_size**2 + 1].

    Index 0 is the reserved (non-grid) position: row 0 = n-3, column 0 = n-2, [0, 0] = n-1 where
    n = (2*bucket_size-1)**2 + 3.
    """
    n = image_num_relative_distance(bucket_size)
    size = bucket_size * bucket_size + 1
    table = torch.zeros(size, size, dtype=torch.long)
    table[1:, 1:] = image_bucket_grid(bucket_size, bucket_size, bucket_size, torch.device("cpu"))
    table[0, :] = n - 3
    table[:, 0] = n - 2
    table[0, 0] = n - 1
    return table


def make_image_position_idx(code_image_size: int, bucket_size: int, length: int) -> torch.Tensor:
    """The decoder's ``image_position_idx`` buffer (image-code generation only; unused for VE):
    [0] + the ids of the (code_image_size/8)^2 grid + padding with 1024 up to ``length``."""
    side = code_image_size // 8
    ids = torch.cat([torch.zeros(1, dtype=torch.long), image_position_ids(side, side, bucket_size, torch.device("cpu"))])
    if length < ids.numel():
        raise ValueError(f"image_position_idx length {length} is below {ids.numel()}")
    return torch.cat([ids, torch.full((length - ids.numel(),), 1024, dtype=torch.long)])
