"""Relative-position buckets against the check values of docs/ofa-visual-entailment.md §2.7."""

import pytest
import torch

from ofa.buckets import (image_bucket_grid, image_position_ids, make_image_bucket_position,
                         make_image_position_idx, make_token_bucket_position, token_bucket)

# r = query - key -> final index, docs/ofa-visual-entailment.md §2.7
TOKEN_CHECKS = {0: 255, 1: 256, -1: 254, 127: 382, 128: 383, 129: 384, 200: 411, -200: 99,
                500: 467, 1023: 510, -1023: 0}


@pytest.fixture(scope="module")
def token_table() -> torch.Tensor:
    return make_token_bucket_position(256, 1024)


@pytest.mark.parametrize("r,want", sorted(TOKEN_CHECKS.items()))
def test_token_bucket_check_values(token_table: torch.Tensor, r: int, want: int) -> None:
    i, j = (r, 0) if r >= 0 else (0, -r)
    assert int(token_table[i, j]) == want
    assert int(token_bucket(torch.tensor([r]), 256, 1024)[0]) == want


def test_token_table_shape_range_and_toeplitz(token_table: torch.Tensor) -> None:
    assert token_table.shape == (1024, 1024) and token_table.dtype == torch.long
    assert int(token_table.min()) == 0 and int(token_table.max()) == 510
    # depends only on i - j
    assert torch.equal(token_table[1:, 1:], token_table[:-1, :-1])
    # linear zone
    r = torch.arange(-128, 129)
    assert torch.equal(token_bucket(r, 256, 1024), r + 255)


def test_token_on_the_fly_equals_table_slice(token_table: torch.Tensor) -> None:
    for n in (1, 5, 80, 300):
        idx = torch.arange(n)
        assert torch.equal(token_bucket(idx[:, None] - idx[None, :], 256, 1024), token_table[:n, :n])


IMAGE_CHECKS = {(1, 1): 3444, (1, 2): 3443, (2, 1): 3445, (43, 1): 3527, (1, 43): 3361}


def test_image_bucket_check_values() -> None:
    t = make_image_bucket_position(42)
    assert t.shape == (1765, 1765) and t.dtype == torch.long
    for (i, j), want in IMAGE_CHECKS.items():
        assert int(t[i, j]) == want, (i, j)
    assert bool((t[0, 1:] == 6889).all()) and bool((t[1:, 0] == 6890).all()) and int(t[0, 0]) == 6891
    assert int(t[1:, 1:].max()) < 6889


@pytest.mark.parametrize("h,w", [(30, 30), (4, 4), (16, 16), (3, 7), (42, 42)])
def test_image_grid_equals_table_indexing(h: int, w: int) -> None:
    t = make_image_bucket_position(42)
    pid = image_position_ids(h, w, 42, torch.device("cpu"))
    assert int(pid[0]) == 1 and int(pid[-1]) == (h - 1) * 42 + (w - 1) + 1
    assert torch.equal(image_bucket_grid(h, w, 42, torch.device("cpu")), t[pid][:, pid])


def test_image_position_ids_30x30_range() -> None:
    pid = image_position_ids(30, 30, 42, torch.device("cpu"))
    assert pid.numel() == 900 and int(pid.min()) == 1 and int(pid.max()) == 29 * 42 + 29 + 1


def test_decoder_image_position_idx() -> None:
    hf = make_image_position_idx(128, 42, 1025)
    fs = make_image_position_idx(128, 42, 1026)
    assert hf.numel() == 1025 and fs.numel() == 1026
    assert int(hf[0]) == 0 and int(hf[1]) == 1 and int(hf[256]) == 15 * 42 + 15 + 1
    assert bool((hf[257:] == 1024).all()) and torch.equal(fs[:1025], hf)
