#!/usr/bin/python3
"""Reference GPT-2 / OFA BPE for preprocess/bpe's tests.

Written for this project from the published algorithm (GPT-2's encoder.py,
as fairseq's GPT2BPE and OFA use it); it shares no code with the Go
tokenizer. The pre-tokenizer is the real regex, run by the `regex` module.

Modes (the BPE files are read from --bpe-dir):
  encode      stdin: JSON list of strings; stdout: {"gpt2": [[id...]...],
              "ofa": [[id...]...]} (GPT-2 ids, and fairseq/BART ids).
  classes     stdout: JSON list of [first_code_point, class] runs covering
              U+0000..U+10FFFF, class 0 other, 1 \\p{L}, 2 \\p{N}, 3 \\s.
  bart-vocab  stdout: a BART vocab.json built from encoder.json + dict.txt
              (<s> <pad> </s> <unk>, dict.txt lines from 4, then <mask>).
"""
import argparse
import json
import os
import sys

import regex

GPT2_PATTERN = regex.compile(
    r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")
SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]


def byte_alphabet() -> dict[int, str]:
    keep = set(range(0x21, 0x7F)) | set(range(0xA1, 0xAD)) | set(range(0xAE, 0x100))
    table: dict[int, str] = {}
    shifted = 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(0x100 + shifted)
            shifted += 1
    return table


class Reference:
    def __init__(self, bpe_dir: str) -> None:
        with open(os.path.join(bpe_dir, "encoder.json"), encoding="utf-8") as f:
            self.encoder: dict[str, int] = json.load(f)
        with open(os.path.join(bpe_dir, "vocab.bpe"), encoding="utf-8") as f:
            lines = f.read().split("\n")
        pairs = [tuple(line.split()) for line in lines if line and not line.startswith("#version")]
        self.ranks: dict[tuple[str, ...], int] = {p: r for r, p in enumerate(pairs)}
        self.alphabet = byte_alphabet()
        self.fairseq: dict[int, int] = {}
        self.dict_symbols: list[str] = []
        with open(os.path.join(bpe_dir, "dict.txt"), encoding="utf-8") as f:
            for index, line in enumerate(f):
                symbol = line.rstrip().rsplit(" ", 1)[0]
                self.dict_symbols.append(symbol)
                if symbol.isdigit():
                    self.fairseq[int(symbol)] = index + len(SPECIALS)

    def merge(self, spelled: str) -> list[str]:
        parts = list(spelled)
        while len(parts) > 1:
            ranked = [(self.ranks[p], p) for p in zip(parts, parts[1:]) if p in self.ranks]
            if not ranked:
                break
            first, second = min(ranked)[1]
            joined: list[str] = []
            i = 0
            while i < len(parts):
                if i + 1 < len(parts) and parts[i] == first and parts[i + 1] == second:
                    joined.append(first + second)
                    i += 2
                else:
                    joined.append(parts[i])
                    i += 1
            parts = joined
        return parts

    def gpt2_ids(self, text: str) -> list[int]:
        ids: list[int] = []
        for piece in GPT2_PATTERN.findall(text):
            spelled = "".join(self.alphabet[b] for b in piece.encode("utf-8"))
            ids.extend(self.encoder[tok] for tok in self.merge(spelled))
        return ids

    def ofa_ids(self, gpt2: list[int]) -> list[int]:
        unk = SPECIALS.index("<unk>")
        return [self.fairseq.get(g, unk) for g in gpt2]

    def bart_vocab(self) -> dict[str, int]:
        spelling = {v: k for k, v in self.encoder.items()}
        vocab = {s: i for i, s in enumerate(SPECIALS)}
        for index, symbol in enumerate(self.dict_symbols):
            tok = spelling[int(symbol)] if symbol.isdigit() else symbol
            vocab[tok] = index + len(SPECIALS)
        vocab["<mask>"] = len(vocab)
        return vocab


def classes() -> list[list[int]]:
    letter, number, space = regex.compile(r"\p{L}"), regex.compile(r"\p{N}"), regex.compile(r"\s")
    runs: list[list[int]] = []
    for cp in range(0x110000):
        ch = chr(cp)
        cls = 1 if letter.match(ch) else 2 if number.match(ch) else 3 if space.match(ch) else 0
        if not runs or runs[-1][1] != cls:
            runs.append([cp, cls])
    return runs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["encode", "classes", "bart-vocab"])
    ap.add_argument("--bpe-dir", default="")
    args = ap.parse_args()
    if args.mode == "classes":
        json.dump(classes(), sys.stdout)
        return
    ref = Reference(args.bpe_dir)
    if args.mode == "bart-vocab":
        json.dump(ref.bart_vocab(), sys.stdout, ensure_ascii=False)
        return
    texts = json.load(sys.stdin)
    gpt2 = [ref.gpt2_ids(t) for t in texts]
    json.dump({"gpt2": gpt2, "ofa": [ref.ofa_ids(g) for g in gpt2]}, sys.stdout)


if __name__ == "__main__":
    main()
