"""GPT-2 byte-level BPE over HF-style ``vocab.json`` + ``merges.txt``, and OFA's text normalisation and
visual-entailment prompts (docs/ofa-visual-entailment.md §3.2-3.3).

Special and added tokens (``<s>``, ``<code_i>`` ...) inside user text are *not* split out: text is
encoded like fairseq's GPT-2 BPE does, byte by byte.
"""

from __future__ import annotations

import json
import os
import re as _re
from functools import lru_cache
from typing import Dict, List, Optional, Tuple


# GPT-2 pre-tokenisation: contractions, letter runs, digit runs, other-symbol runs (each with an optional
# leading space), then whitespace.
try:
    import regex

    _PRETOKENIZE = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")
except ImportError:  # a GPU box with only the torch wheel: the stdlib approximation is exact for ASCII text
    _PRETOKENIZE = _re.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+""")

PROMPT_WITHOUT_PREMISE = ' does the image describe " {hypothesis} "?'
PROMPT_WITH_PREMISE = ' can image and text1 " {premise} " imply text2 " {hypothesis} "?'


@lru_cache(maxsize=1)
def byte_to_unicode() -> Dict[int, str]:
    """GPT-2's reversible byte -> printable character map: printable Latin-1 bytes map to themselves,
    the other 68 bytes to U+0100 onwards in byte order."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    table: Dict[int, str] = {b: chr(b) for b in keep}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


class BPE:
    """Byte-level BPE encoder; ``encode`` returns token ids of ``vocab.json``."""

    def __init__(self, vocab: Dict[str, int], merges: List[Tuple[str, str]]) -> None:
        self.vocab = vocab
        self.ranks = {pair: i for i, pair in enumerate(merges)}
        self.byte_map = byte_to_unicode()
        self._cache: Dict[str, List[str]] = {}

    @classmethod
    def from_files(cls, vocab_file: str, merges_file: str) -> "BPE":
        with open(vocab_file, "r", encoding="utf-8") as f:
            vocab = json.load(f)
        merges: List[Tuple[str, str]] = []
        with open(merges_file, "r", encoding="utf-8") as f:
            for line in f:
                line = line.rstrip("\n")
                if not line or line.startswith("#version"):
                    continue
                a, b = line.split(" ")
                merges.append((a, b))
        return cls(vocab, merges)

    @classmethod
    def from_dir(cls, directory: str) -> "BPE":
        return cls.from_files(os.path.join(directory, "vocab.json"), os.path.join(directory, "merges.txt"))

    def _merge(self, word: str) -> List[str]:
        if word in self._cache:
            return self._cache[word]
        parts = list(word)
        while len(parts) > 1:
            best: Optional[Tuple[int, int]] = None
            for i in range(len(parts) - 1):
                rank = self.ranks.get((parts[i], parts[i + 1]))
                if rank is not None and (best is None or rank < best[0]):
                    best = (rank, i)
            if best is None:
                break
            pair = (parts[best[1]], parts[best[1] + 1])
            merged: List[str] = []
            i = 0
            while i < len(parts):  # merge every occurrence of the best pair, left to right
                if i < len(parts) - 1 and (parts[i], parts[i + 1]) == pair:
                    merged.append(parts[i] + parts[i + 1])
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        self._cache[word] = parts
        return parts

    def tokenize(self, text: str) -> List[str]:
        out: List[str] = []
        for piece in _PRETOKENIZE.findall(text):
            mapped = "".join(self.byte_map[b] for b in piece.encode("utf-8"))
            out.extend(self._merge(mapped))
        return out

    def encode(self, text: str) -> List[int]:
        ids = []
        for tok in self.tokenize(text):
            if tok not in self.vocab:
                raise KeyError(f"BPE token {tok!r} is not in the vocabulary")
            ids.append(self.vocab[tok])
        return ids


def pre_caption(text: str, max_words: Optional[int] = None) -> str:
    """OFA's caption normalisation: lower-case, strip leading ``,.!?*#:;~``, ``-`` and ``/`` to spaces,
    ``<person>`` to ``person``, collapse whitespace, strip, keep at most ``max_words`` words."""
    text = text.lower().lstrip(",.!?*#:;~").replace("-", " ").replace("/", " ").replace("<person>", "person")
    text = _re.sub(r"\s{2,}", " ", text)
    text = text.rstrip("\n").strip(" ")
    if max_words is not None:
        words = text.split(" ")
        if len(words) > max_words:
            text = " ".join(words[:max_words])
    return text


def build_prompt(hypothesis: str, premise: Optional[str] = None, max_words: Optional[int] = None) -> str:
    """The SNLI-VE prompt (leading space included) for normalised hypothesis/premise."""
    hyp = pre_caption(hypothesis, max_words)
    if premise is None:
        return PROMPT_WITHOUT_PREMISE.format(hypothesis=hyp)
    return PROMPT_WITH_PREMISE.format(premise=pre_caption(premise, max_words), hypothesis=hyp)


def encode_prompt(bpe: BPE, prompt: str, bos_id: int, eos_id: int, max_src_length: Optional[int] = None) -> List[int]:
    """``[bos] + bpe(prompt)[:max_src_length] + [eos]`` (ModelScope truncates the BPE ids)."""
    ids = bpe.encode(prompt)
    if max_src_length is not None:
        ids = ids[:max_src_length]
    return [bos_id] + ids + [eos_id]
