#!/usr/bin/python3
"""Reference for preprocess/prompt's tests, in Python as OFA runs it.

Written for this project from the steps of OFA's pre_caption (see
../precaption.go); it relies on Python's own str.lower and re.

Modes:
  caption  stdin: {"texts": [...], "max_words": N}; stdout: list of results.
  casing   stdout: {"lower": [[cp, lowered]...] for every code point whose
           lower() is not itself, "sigma": [[first_cp, bits]...] runs where
           bit 1 = "<c>Σ", bit 2 = "A<c>Σ", bit 4 = "AΣ<c>" lower to a
           final ς, "unassigned": [[first, last]...] runs of category Cn,
           "space": code points matched by re's \\s}.
"""
import json
import re
import sys
import unicodedata

LEADING = ",.!?*#:;~"
SPACE_RUN = re.compile(r"\s{2,}")


def pre_caption(caption: str, max_words: int | None) -> str:
    text = caption.lower().lstrip(LEADING)
    text = text.replace("-", " ").replace("/", " ").replace("<person>", "person")
    text = SPACE_RUN.sub(" ", text)
    text = text.rstrip("\n").strip(" ")
    words = text.split(" ")
    if max_words is not None and len(words) > max_words:
        text = " ".join(words[:max_words])
    return text


def casing() -> dict:
    lower: list[list] = []
    sigma: list[list[int]] = []
    unassigned: list[list[int]] = []
    space: list[int] = []
    for cp in range(0x110000):
        ch = chr(cp)
        if ch.lower() != ch:
            lower.append([cp, ch.lower()])
        bits = 0
        if (ch + "Σ").lower().endswith("ς"):
            bits |= 1
        if ("A" + ch + "Σ").lower().endswith("ς"):
            bits |= 2
        if ("AΣ" + ch).lower()[1] == "ς":
            bits |= 4
        if not sigma or sigma[-1][1] != bits:
            sigma.append([cp, bits])
        if unicodedata.category(ch) == "Cn":
            if unassigned and unassigned[-1][1] == cp - 1:
                unassigned[-1][1] = cp
            else:
                unassigned.append([cp, cp])
        if re.match(r"\s", ch):
            space.append(cp)
    return {"lower": lower, "sigma": sigma, "unassigned": unassigned, "space": space}


def main() -> None:
    mode = sys.argv[1]
    if mode == "casing":
        json.dump(casing(), sys.stdout, ensure_ascii=True)
        return
    req = json.load(sys.stdin)
    mw = req.get("max_words")
    json.dump([pre_caption(t, mw) for t in req["texts"]], sys.stdout, ensure_ascii=True)


if __name__ == "__main__":
    main()
