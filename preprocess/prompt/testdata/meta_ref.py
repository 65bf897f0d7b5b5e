#!/usr/bin/python3
"""Reference for preprocess/prompt's Meta tests: the exporter's own Python prompt path.

stdin: {"meta": {...ofa_meta.json keys...}, "cases": [[premise or null, hypothesis], ...]}
stdout: [{"prompt": str, "ids": [int...]}, ...] from scripts/ofa/prompts.py (meta_prompt,
meta_input_ids) with the BPE the exporter writes from the repository's OFA BPE files.
"""
import json
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.join(ROOT, "scripts"))

from ofa.bpe import BPE  # noqa: E402
from ofa.prompts import meta_input_ids, meta_prompt  # noqa: E402
from ofa.vocab import default_bpe_dir, write_tokenizer_files  # noqa: E402


def main() -> None:
    req = json.load(sys.stdin)
    meta = req["meta"]
    with tempfile.TemporaryDirectory() as d:
        write_tokenizer_files(default_bpe_dir(), d)
        bpe = BPE.from_dir(d)
    out = []
    for premise, hypothesis in req["cases"]:
        out.append({"prompt": meta_prompt(meta, hypothesis, premise),
                    "ids": meta_input_ids(bpe, meta, hypothesis, premise)})
    json.dump(out, sys.stdout, ensure_ascii=True)


if __name__ == "__main__":
    main()
