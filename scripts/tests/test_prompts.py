"""ofa/prompts.py: configuration.json's prompt replaces both templates as in ModelScope, max_src_length
truncates words and tokens, and prompts no request could use are refused."""

from __future__ import annotations

from typing import Any, Dict, Optional

import pytest

from ofa.bpe import PROMPT_WITH_PREMISE, PROMPT_WITHOUT_PREMISE, BPE, encode_prompt, pre_caption
from ofa.prompts import PromptError, max_prompt_tokens, meta_input_ids, meta_prompt, templates_from_prompt
from ofa.vocab import write_tokenizer_files

DEFAULT_PREMISE = ' can image and text1 " {} " imply text2 " {} "?'
DEFAULT_ALONE = ' does the image describe " {} "?'


def modelscope_text(prompt: Optional[str], max_src_length: int, text: str, text2: Optional[str]) -> str:
    """What ModelScope's visual-entailment preprocessor builds (docs/ofa-visual-entailment.md §3.3):
    text = hypothesis, text2 = premise; cfg.model.prompt (or the default) .format(...)."""
    hypothesis = pre_caption(text, max_src_length)
    if text2 is None:
        return (prompt if prompt is not None else DEFAULT_ALONE).format(hypothesis)
    caption = pre_caption(text2, max_src_length)
    return (prompt if prompt is not None else DEFAULT_PREMISE).format(caption, hypothesis)


def meta_for(prompt: Optional[str], max_src_length: int = 256, max_text_length: int = 1024) -> Dict[str, Any]:
    with_premise, without, _ = templates_from_prompt(prompt)
    return {"prompt_with_premise": with_premise, "prompt_without_premise": without, "prompt_override": prompt,
            "max_src_length": max_src_length, "max_text_length": max_text_length, "bos_id": 0, "eos_id": 2}


LONG = " ".join(f"Word{i}-x" for i in range(300))
REQUESTS = [("Two dogs play.", None), ("Two dogs play.", "There are two dogs."), (LONG, None), (LONG, LONG),
            ("a {brace} }{ text", "{0} premise")]


@pytest.mark.parametrize("prompt", [None, DEFAULT_ALONE, DEFAULT_PREMISE, "{1} given {0}", "constant {{x}} prompt",
                                    " is {} true?", "{0} and {0}"])
@pytest.mark.parametrize("max_src_length", [5, 256])
def test_meta_prompt_is_modelscope(prompt: Optional[str], max_src_length: int) -> None:
    meta = meta_for(prompt, max_src_length)
    for text, text2 in REQUESTS:
        try:
            want = modelscope_text(prompt, max_src_length, text, text2)
        except IndexError:  # ModelScope fails this request; the export serves it with the default template
            assert text2 is None and meta["prompt_without_premise"] == PROMPT_WITHOUT_PREMISE
            want = DEFAULT_ALONE.format(pre_caption(text, max_src_length))
        assert meta_prompt(meta, text, text2) == want


def test_default_templates_unchanged() -> None:
    assert templates_from_prompt(None) == (PROMPT_WITH_PREMISE, PROMPT_WITHOUT_PREMISE, [])


def test_override_notes_say_what_modelscope_does() -> None:
    with_premise, without, notes = templates_from_prompt(DEFAULT_ALONE)
    assert with_premise == ' does the image describe " {premise} "?' and without == PROMPT_WITHOUT_PREMISE
    assert any("replaces both templates" in n for n in notes)
    assert any("leaves out the hypothesis" in n for n in notes)
    _, without, notes = templates_from_prompt(DEFAULT_PREMISE)
    assert without == PROMPT_WITHOUT_PREMISE and any("IndexError" in n for n in notes)


@pytest.mark.parametrize("prompt,why", [("{} {} {}", "uses argument 2"), ("{name}", "named field"),
                                        ("{!r}", "conversion or format spec"), ("{0} {}", "mixes"),
                                        ("{", "not a Python format string")])
def test_unusable_prompts_are_refused(prompt: str, why: str) -> None:
    with pytest.raises(PromptError, match=why):
        templates_from_prompt(prompt)


def test_max_src_length_truncates_words_then_tokens(bpe_dir: str, tmp_path) -> None:
    write_tokenizer_files(bpe_dir, str(tmp_path))
    bpe = BPE.from_dir(str(tmp_path))
    meta = meta_for(None, max_src_length=5)
    # pre_caption keeps 5 words of each text ...
    assert meta_prompt(meta, "one two three four five six seven", "a b c d e f") == \
        ' can image and text1 " a b c d e " imply text2 " one two three four five "?'
    # ... and the prompt keeps 5 BPE ids, as ModelScope's tokenizer truncation does.
    ids = meta_input_ids(bpe, meta, "one two three four five six seven")
    assert ids == encode_prompt(bpe, modelscope_text(None, 5, "one two three four five six seven", None), 0, 2, 5)
    assert len(ids) == 7
    # The position table caps the budget below max_src_length.
    assert max_prompt_tokens(meta_for(None, 256, 20)) == 18 and max_prompt_tokens(meta_for(None, 0, 20)) == 18
    assert len(meta_input_ids(bpe, meta_for(None, 256, 20), LONG)) == 20
