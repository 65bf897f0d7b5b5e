"""Tokenizer files built from third_party/ofa-bpe and the BPE encoder against docs/ofa-visual-entailment.md §3.3 worked examples."""

from __future__ import annotations

import json
import os

import pytest

from ofa.bpe import BPE, build_prompt, encode_prompt, pre_caption
from ofa.vocab import write_tokenizer_files


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory: pytest.TempPathFactory, bpe_dir: str) -> str:
    d = str(tmp_path_factory.mktemp("tok"))
    write_tokenizer_files(bpe_dir, d)
    return d


def test_vocab_layout(tok_dir: str) -> None:
    with open(os.path.join(tok_dir, "vocab.json"), encoding="utf-8") as f:
        vocab = json.load(f)
    assert len(vocab) == 59457 and sorted(vocab.values()) == list(range(59457))
    assert [vocab[t] for t in ("<s>", "<pad>", "</s>", "<unk>", "<mask>")] == [0, 1, 2, 3, 50264]
    assert vocab["<code_0>"] == 50265 and vocab["<code_8191>"] == 58456
    assert vocab["<bin_0>"] == 58457 and vocab["<bin_999>"] == 59456
    assert vocab["madeupword0002"] == 50263
    with open(os.path.join(tok_dir, "merges.txt"), encoding="utf-8") as f:
        assert f.readline().startswith("#version")


def test_spec_worked_examples(tok_dir: str) -> None:
    bpe = BPE.from_dir(tok_dir)
    assert bpe.tokenize(' does the image describe " there are two birds. "?') == [
        "Ġdoes", "Ġthe", "Ġimage", "Ġdescribe", 'Ġ"', "Ġthere", "Ġare", "Ġtwo", "Ġbirds", ".", 'Ġ"', "?"]
    assert encode_prompt(bpe, build_prompt("There are two birds."), 0, 2) == [
        0, 473, 5, 2274, 6190, 22, 89, 32, 80, 7723, 4, 22, 116, 2]
    assert bpe.encode(build_prompt("the two dogs are eating.", "there are two dogs.")) == [
        64, 2274, 8, 2788, 134, 22, 89, 32, 80, 3678, 4, 22, 25696, 2788, 176, 22, 5, 80, 3678, 32, 4441, 4, 22, 116]
    assert [bpe.encode(a) for a in (" yes", " no", " maybe")] == [[4420], [117], [2085]]


def test_bytes_roundtrip_unicode(tok_dir: str) -> None:
    bpe = BPE.from_dir(tok_dir)
    inv = {v: k for k, v in bpe.vocab.items()}
    from ofa.bpe import byte_to_unicode
    back = {c: b for b, c in byte_to_unicode().items()}
    text = " café – naïve 東京 🙂 it's  x\n"
    ids = bpe.encode(text)
    assert bytes(back[c] for i in ids for c in inv[i]).decode("utf-8") == text


def test_pre_caption_rules() -> None:
    assert pre_caption("...Hello, World!  ") == "hello, world!"
    # spec order: the punctuation lstrip runs before the whitespace strip
    assert pre_caption("  ...Hello") == "...hello"
    assert pre_caption(",.!?*#:;~A dog-running/fast.") == "a dog running fast."
    assert pre_caption("a   <person>\t\tb") == "a person b"
    assert pre_caption("a\tb") == "a\tb"  # only runs of 2+ whitespace collapse
    assert pre_caption("one two three four", max_words=2) == "one two"


def test_prompts_are_character_exact() -> None:
    assert build_prompt("X") == ' does the image describe " x "?'
    assert build_prompt("H.", "P.") == ' can image and text1 " p. " imply text2 " h. "?'
