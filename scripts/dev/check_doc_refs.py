#!/usr/bin/env python3
"""Checks that every `docs/<file>.md §N[.M]` citation in the tracked files names a file under docs/ and a section
that exists in it (a heading numbered N.M, or N for a whole chapter; §0.n is item n of a chapter-0 list), and
that no file cites a document outside the repository (the team's old specs folder beside the clone, or a bare
"spec" section sign). Run by `make lint`. It reads only tracked files of this repository.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import Dict, List, Set

CITE = re.compile(r"(docs/[A-Za-z0-9_.-]+\.md)\s*§\s*((?:[A-Z]\.)?\d+(?:\.\d+)*)")
HEADING = re.compile(r"^#{1,6}\s+(?:Appendix\s+)?((?:[A-Z]\.)?\d+(?:\.\d+)*|[A-Z])[.\s]", re.M)
# The old specs lived in a folder beside the repository; the pattern is spelled with a class so that this file,
# which only refuses such citations, does not itself look like one.
OUTSIDE = re.compile(r"share[d]/specs|\bspec §")


def sections(path: str) -> Set[str]:
    with open(path, encoding="utf-8") as f:
        text = f.read()
    found = set(HEADING.findall(text))
    # Chapter-0 lists are cited item by item (§0.9 is item 9 of "## 0.").
    m = re.search(r"^## 0\..*?(?=^## )", text, re.M | re.S)
    if m:
        for item in re.findall(r"^(\d+)\.\s", m.group(0), re.M):
            found.add(f"0.{item}")
    return found


def main() -> int:
    root = subprocess.run(["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True,
                          check=True).stdout.strip()
    files = subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True, check=True).stdout.split()
    cache: Dict[str, Set[str]] = {}
    bad: List[str] = []
    count = 0
    for rel in files:
        if rel.endswith((".json", ".txt", ".bpe", ".pb.go")) or rel.startswith("third_party/"):
            continue
        path = os.path.join(root, rel)
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.readlines()
        except (UnicodeDecodeError, IsADirectoryError, FileNotFoundError):
            continue
        for n, line in enumerate(lines, 1):
            if OUTSIDE.search(line):
                bad.append(f"{rel}:{n}: cites a document outside the repository: {line.strip()}")
            for doc, sec in CITE.findall(line):
                count += 1
                dpath = os.path.join(root, doc)
                if not os.path.isfile(dpath):
                    bad.append(f"{rel}:{n}: {doc} does not exist")
                    continue
                if doc not in cache:
                    cache[doc] = sections(dpath)
                if sec not in cache[doc]:
                    bad.append(f"{rel}:{n}: {doc} has no section §{sec}")
    for b in bad:
        print(b)
    if bad:
        return 1
    print(f"doc references: {count} citations resolve")
    return 0


if __name__ == "__main__":
    sys.exit(main())
