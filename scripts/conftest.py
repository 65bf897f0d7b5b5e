"""pytest setup for scripts/: makes the ``ofa`` package importable and offers shared fixtures."""

import os
import sys

SCRIPTS = os.path.dirname(os.path.abspath(__file__))
if SCRIPTS not in sys.path:
    sys.path.insert(0, SCRIPTS)


import pytest  # noqa: E402

from ofa.vocab import default_bpe_dir  # noqa: E402


@pytest.fixture(scope="session")
def bpe_dir() -> str:
    """OFA's BPE files (third_party/ofa-bpe, or $OFASERVE_BPE_DIR); a test that needs them fails when they are absent."""
    d = default_bpe_dir()
    missing = [f for f in ("encoder.json", "vocab.bpe", "dict.txt") if not os.path.isfile(os.path.join(d, f))]
    if missing:
        pytest.fail(f"OFA BPE data missing in {d}: {', '.join(missing)} (the repository ships them in third_party/ofa-bpe; "
                    "$OFASERVE_BPE_DIR overrides)", pytrace=False)
    return d
