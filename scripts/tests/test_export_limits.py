"""The raw export's input limits (value_range:/max_length: on INPUT_IDS) are exactly what the module accepts:
the last valid id and the longest row run, one past either fails, so the server's refusal is never stricter
or looser than the module."""

from __future__ import annotations

import os
import re

import pytest
import torch

from ofa.config import preset
from ofa.export import export, raw_config_pbtxt

pytestmark = pytest.mark.usefixtures("bpe_dir")


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> str:
    out = str(tmp_path_factory.mktemp("repo"))
    export(["--random-init", "--config", "micro", "--seed", "3", "--out", out, "--quiet"])
    return os.path.join(out, "ofa_entailment_raw")


def _limits(config: str) -> tuple[int, int, int]:
    m = re.search(r'key: "value_range:INPUT_IDS" value: \{ string_value: "(\d+),(\d+)" \}', config)
    n = re.search(r'key: "max_length:INPUT_IDS" value: \{ string_value: "(\d+)" \}', config)
    assert m and n, config
    return int(m.group(1)), int(m.group(2)), int(n.group(1))


def test_raw_config_names_the_micro_limits(raw: str) -> None:
    lo, hi, length = _limits(open(os.path.join(raw, "config.pbtxt")).read())
    cfg = preset("micro")
    assert (lo, hi, length) == (0, cfg.vocab_size, cfg.max_text_length)


def test_limits_are_the_modules(raw: str) -> None:
    lo, hi, length = _limits(open(os.path.join(raw, "config.pbtxt")).read())
    mod = torch.jit.load(os.path.join(raw, "1", "model.pt"))
    side = int(re.search(r"dims: \[ 3, (\d+), \d+ \]", open(os.path.join(raw, "config.pbtxt")).read()).group(1))
    image = torch.zeros(1, 3, side, side)

    def ids(n: int, last: int) -> torch.Tensor:
        row = torch.full((1, n), 4, dtype=torch.long)
        row[0, 0], row[0, -1] = 0, 2
        row[0, 1] = last
        return row

    mod(image, ids(8, hi - 1))  # the largest id and the longest row run
    mod(image, ids(length, 5))
    for bad in (ids(8, hi), ids(8, lo - 5), ids(length + 1, 5)):
        with pytest.raises(Exception):
            mod(image, bad)


def test_no_limits_without_sizes() -> None:
    assert "parameters" not in raw_config_pbtxt(64, 64, 16, "cpu")
