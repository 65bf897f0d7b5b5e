"""A plain-PyTorch port of OFA (One-For-All) for visual entailment.

The package owns the model (``modeling``), its configurations (``config``), the relative-position
bucket rules (``buckets``), strict checkpoint loading (``checkpoint``), the single-pass
visual-entailment scorer that is exported to TorchScript (``entailment``), the GPT-2 byte-level BPE
and OFA vocabulary files (``bpe``, ``vocab``), the exporter (``export``) and a Python reference
pipeline (``reference``).  No transformers, fairseq or modelscope code is used.
"""

from .config import OFAConfig, PRESETS, preset  # noqa: F401
