"""Builds the HF-style OFA vocabulary (``vocab.json`` + ``merges.txt``) from OFA's fairseq BPE files.

Inputs (``encoder.json``: GPT-2 token -> GPT-2 id; ``vocab.bpe``: GPT-2 merges; ``dict.txt``: fairseq
dictionary, one GPT-2 id (or ``madeupwordNNNN``) per line).  Output ids (docs/ofa-visual-entailment.md §3.4): ``<s>``=0,
``<pad>``=1, ``</s>``=2, ``<unk>``=3, dict.txt line i -> 4+i, ``<mask>``, then ``<code_0..8191>`` and
``<bin_0..999>`` -> 59457 entries for OFA's dict.txt.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Dict

SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")
NUM_CODES = 8192
NUM_BINS = 1000


def default_bpe_dir() -> str:
    """``$OFASERVE_BPE_DIR``, else the repository's own copy in ``third_party/ofa-bpe``."""
    env = os.environ.get("OFASERVE_BPE_DIR")
    if env:
        return env
    repo_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return os.path.join(repo_root, "third_party", "ofa-bpe")


def build_vocab(bpe_dir: str) -> Dict[str, int]:
    """token string -> id, in id order."""
    with open(os.path.join(bpe_dir, "encoder.json"), "r", encoding="utf-8") as f:
        gpt2 = json.load(f)
    by_gpt2_id = {v: k for k, v in gpt2.items()}
    vocab: Dict[str, int] = {tok: i for i, tok in enumerate(SPECIALS)}
    with open(os.path.join(bpe_dir, "dict.txt"), "r", encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line:
                continue
            field = line.rsplit(" ", 1)[0]
            if field.isdigit():
                if int(field) not in by_gpt2_id:
                    raise ValueError(f"dict.txt:{lineno}: GPT-2 id {field} is not in encoder.json")
                tok = by_gpt2_id[int(field)]
            else:
                tok = field
            if tok in vocab:
                raise ValueError(f"dict.txt:{lineno}: duplicate token {tok!r}")
            vocab[tok] = len(vocab)
    for tok in ["<mask>"] + [f"<code_{i}>" for i in range(NUM_CODES)] + [f"<bin_{i}>" for i in range(NUM_BINS)]:
        vocab[tok] = len(vocab)
    return vocab


def write_tokenizer_files(bpe_dir: str, out_dir: str) -> int:
    """Write ``vocab.json`` and ``merges.txt`` into ``out_dir``; returns the vocabulary size."""
    vocab = build_vocab(bpe_dir)
    with open(os.path.join(out_dir, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    shutil.copyfile(os.path.join(bpe_dir, "vocab.bpe"), os.path.join(out_dir, "merges.txt"))
    return len(vocab)
