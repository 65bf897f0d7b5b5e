"""scripts/dev/make_models.sh: exports once, skips while up to date, re-exports when its arguments change."""

from __future__ import annotations

import os
import subprocess

import pytest

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "dev", "make_models.sh")


@pytest.mark.usefixtures("bpe_dir")
def test_make_models_stamp(tmp_path) -> None:
    repo = str(tmp_path / "models")

    def run(args: str) -> str:
        env = dict(os.environ, OFA_EXPORT_ARGS=args)
        r = subprocess.run(["bash", SCRIPT, repo], capture_output=True, text=True, env=env, timeout=600)
        assert r.returncode == 0, r.stderr
        return r.stdout

    assert "exporting" in run("--random-init --config micro --seed 1 --quiet")
    pt = os.path.join(repo, "ofa_entailment_raw", "1", "model.pt")
    mtime = os.path.getmtime(pt)
    assert "up to date" in run("--random-init --config micro --seed 1 --quiet")
    assert os.path.getmtime(pt) == mtime
    assert "exporting" in run("--random-init --config micro --seed 2 --quiet")
    assert os.path.exists(os.path.join(repo, "ofa_entailment", "1", "ofa_meta.json"))
