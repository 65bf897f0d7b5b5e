"""Scripted module == eager module (fp32, max |diff| <= 1e-5) for batch sizes 1, 3, 16 and text lengths
5..80 mixed in one batch; a padded row == the same row alone; the saved file reloaded in a fresh process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Dict, List

import pytest
import torch

from ofa.entailment import VisualEntailment
from ofa.export import script_module

from .helpers import ANSWER_IDS, micro, pad_rows, random_rows, images

TOL = 1e-5
SIZE = 64
# batch size -> row lengths (mixed, covering 5 and 80)
CASES: Dict[int, List[int]] = {
    1: [80],
    3: [5, 80, 33],
    16: [5, 80] + [int(x) for x in torch.randint(5, 81, (14,), generator=torch.Generator().manual_seed(0))],
}


@pytest.fixture(scope="module")
def modules(tmp_path_factory: pytest.TempPathFactory):
    eager = VisualEntailment(micro(seed=11), ANSWER_IDS).eval()
    # the exporter's path: a second copy with identical weights is cast, stripped and scripted
    copy = VisualEntailment(micro(seed=11), ANSWER_IDS).eval()
    scripted = script_module(copy)
    path = str(tmp_path_factory.mktemp("ts") / "model.pt")
    torch.jit.save(scripted, path)
    return eager, scripted, path


def _inputs(bsz: int):
    rows = random_rows(CASES[bsz], seed=100 + bsz)
    return images(bsz, SIZE, seed=200 + bsz), rows


@pytest.mark.parametrize("bsz", sorted(CASES))
def test_scripted_equals_eager_and_rows_alone(modules, bsz: int) -> None:
    eager, scripted, _ = modules
    imgs, rows = _inputs(bsz)
    ids = pad_rows(rows)
    with torch.no_grad():
        want = eager(imgs, ids)
        got = scripted(imgs, ids)
        assert got.dtype == torch.float32 and got.shape == (bsz, 3)
        assert (got - want).abs().max().item() <= TOL
        for i, r in enumerate(rows):  # padding must not change a row's logits
            alone = eager(imgs[i:i + 1], pad_rows([r]))
            assert (got[i] - alone[0]).abs().max().item() <= TOL, (i, len(r))


def test_every_length_5_to_80(modules) -> None:
    eager, scripted, _ = modules
    lengths = list(range(5, 81))
    rows = random_rows(lengths, seed=7)
    imgs = images(1, SIZE, seed=8).expand(len(lengths), -1, -1, -1)
    with torch.no_grad():
        got = torch.cat([scripted(imgs[i:i + 16], pad_rows(rows[i:i + 16])) for i in range(0, len(rows), 16)])
        alone = torch.cat([eager(imgs[i:i + 1], pad_rows([r])) for i, r in enumerate(rows)])
    assert (got - alone).abs().max().item() <= TOL


def test_logits_depend_on_text_image_and_padding_mask(modules) -> None:
    """Guards against a module that ignores its inputs (which would pass the equality tests)."""
    eager, scripted, _ = modules
    imgs, rows = _inputs(3)
    ids = pad_rows(rows)
    with torch.no_grad():
        base = scripted(imgs, ids)
        assert (scripted(imgs.flip(0), ids) - base).abs().max().item() > 1e-3
        other = ids.clone()
        other[:, 2] = 1000
        assert (scripted(imgs, other) - base).abs().max().item() > 1e-3
        # feeding padding as if it were text changes the short row: the mask is what keeps it out
        unmasked = ids.masked_fill(ids.eq(1), 3)
        assert (scripted(imgs, unmasked)[0] - base[0]).abs().max().item() > 1e-3


REPLAY = r"""
import json, sys, torch
data = torch.load(sys.argv[2])
m = torch.jit.load(sys.argv[1], map_location="cpu")
diffs = []
with torch.no_grad():
    for imgs, ids, want in data:
        diffs.append(float((m(imgs, ids) - want).abs().max()))
print(json.dumps(diffs))
"""


def test_saved_file_in_fresh_process(modules, tmp_path) -> None:
    eager, _, path = modules
    data = []
    with torch.no_grad():
        for bsz in sorted(CASES):
            imgs, rows = _inputs(bsz)
            ids = pad_rows(rows)
            data.append((imgs, ids, eager(imgs, ids)))
    inputs = str(tmp_path / "inputs.pt")
    torch.save(data, inputs)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # no access to the ofa package
    out = subprocess.run([sys.executable, "-c", REPLAY, path, inputs], capture_output=True, text=True,
                         timeout=300, cwd=str(tmp_path), env=env)
    assert out.returncode == 0, out.stderr
    diffs = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(diffs) == len(CASES) and max(diffs) <= TOL, diffs


def test_bf16_export_runs_and_stays_close() -> None:
    eager = VisualEntailment(micro(seed=12), ANSWER_IDS).eval()
    scripted = script_module(VisualEntailment(micro(seed=12), ANSWER_IDS).eval(), torch.bfloat16)
    imgs, rows = _inputs(3)
    ids = pad_rows(rows)
    with torch.no_grad():
        want, got = eager(imgs, ids), scripted(imgs, ids)
    assert got.dtype == torch.float32 and torch.isfinite(got).all()
    assert scripted.model.encoder.image_proj.weight.dtype == torch.bfloat16
    assert (got - want).abs().max().item() < 0.1 * want.abs().max().item() + 0.05


@pytest.mark.skipif(not os.environ.get("OFASERVE_TEST_DEVICE", "").startswith("cuda"),
                    reason="needs OFASERVE_TEST_DEVICE=cuda:N")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_cuda_export(dtype: torch.dtype) -> None:
    dev = os.environ["OFASERVE_TEST_DEVICE"]
    eager = VisualEntailment(micro(seed=13), ANSWER_IDS).eval()
    scripted = script_module(VisualEntailment(micro(seed=13), ANSWER_IDS).eval(), dtype, dev)
    imgs, rows = _inputs(16)
    ids = pad_rows(rows)
    with torch.no_grad():
        want = eager(imgs, ids)
        got = scripted(imgs.to(dev), ids.to(dev)).cpu()
    tol = 1e-4 if dtype == torch.float32 else 0.1 * want.abs().max().item() + 0.05
    assert got.dtype == torch.float32 and (got - want).abs().max().item() <= tol
