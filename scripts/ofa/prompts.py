"""The visual-entailment prompt as an exported model states it (``ofa_meta.json``), and as ModelScope's
preprocessor builds it (docs/ofa-visual-entailment.md §3.2-3.3).

ModelScope's ``OfaVisualEntailmentPreprocessor`` takes one optional ``prompt`` from ``configuration.json``
(``model.prompt``) and, when it is set, uses it for *both* kinds of request with Python's ``str.format``:
``prompt.format(hypothesis)`` without a premise, ``prompt.format(premise, hypothesis)`` with one.
``str.format`` ignores arguments a template does not use and raises ``IndexError`` for a field past the
last argument, so:

- a prompt with no field is the same text for every request;
- a prompt with one field gets the hypothesis alone, and with a premise gets the *premise* (the hypothesis is
  dropped);
- a prompt with two fields gets premise and hypothesis; without a premise ModelScope raises, so the export
  keeps the default template for those requests (and says so);
- more fields, named fields, conversions or format specs fail for every request: the export refuses them.

The metadata spells templates with named fields (``{premise}``, ``{hypothesis}``, ``{{``/``}}`` escapes).
Each text is normalised with ``pre_caption(text, max_src_length)`` (ModelScope truncates words there too),
and the prompt's BPE ids are cut to ``max_src_length`` (and to the position table, ``max_text_length - 2``)
before ``[bos] + ids + [eos]``.
"""

from __future__ import annotations

import string
from typing import Any, List, Mapping, Optional, Tuple

from .bpe import BPE, PROMPT_WITH_PREMISE, PROMPT_WITHOUT_PREMISE, encode_prompt, pre_caption


class PromptError(ValueError):
    """configuration.json's prompt cannot be served (ModelScope would fail on every request)."""


def _fields(prompt: str) -> List[Tuple[str, Optional[int]]]:
    """(literal text, positional index or None at the end) pairs of a Python format string."""
    out: List[Tuple[str, Optional[int]]] = []
    auto, manual = 0, False
    try:
        parsed = list(string.Formatter().parse(prompt))
    except ValueError as e:
        raise PromptError(f"prompt {prompt!r} is not a Python format string: {e}") from e
    for literal, name, spec, conv in parsed:
        if name is None:
            out.append((literal, None))
            continue
        if spec or conv:
            raise PromptError(f"prompt {prompt!r}: field {{{name}{'!' + conv if conv else ''}"
                              f"{':' + spec if spec else ''}}} has a conversion or format spec")
        if name == "":
            if manual:
                raise PromptError(f"prompt {prompt!r} mixes {{}} with numbered fields")
            index = auto
            auto += 1
        elif name.isdigit():
            if auto:
                raise PromptError(f"prompt {prompt!r} mixes {{}} with numbered fields")
            manual, index = True, int(name)
        else:
            raise PromptError(f"prompt {prompt!r}: named field {{{name}}}; ModelScope formats the prompt "
                              "with positional arguments only")
        out.append((literal, index))
    return out


def _escape(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def _named(parts: List[Tuple[str, Optional[int]]], names: Tuple[str, ...]) -> Optional[str]:
    """The template with positional index k written as {names[k]}; None when an index has no name."""
    out = []
    for literal, index in parts:
        out.append(_escape(literal))
        if index is not None:
            if index >= len(names):
                return None
            out.append("{" + names[index] + "}")
    return "".join(out)


def templates_from_prompt(prompt: Optional[str]) -> Tuple[str, str, List[str]]:
    """(prompt_with_premise, prompt_without_premise, notes) for configuration.json's ``model.prompt``
    (None: ModelScope's defaults). Raises :class:`PromptError` for a prompt no request could use."""
    if prompt is None:
        return PROMPT_WITH_PREMISE, PROMPT_WITHOUT_PREMISE, []
    parts = _fields(prompt)
    used = sorted({i for _, i in parts if i is not None})
    with_premise = _named(parts, ("premise", "hypothesis"))
    if with_premise is None:
        raise PromptError(f"prompt {prompt!r} uses argument {used[-1]}, but ModelScope passes at most two "
                          "(premise, hypothesis): every request would fail")
    notes = [f"configuration.json prompt {prompt!r} replaces both templates (as in ModelScope)"]
    without = _named(parts, ("hypothesis",))
    if without is None:
        without = PROMPT_WITHOUT_PREMISE
        notes.append("it uses a second argument, so ModelScope raises IndexError for a request without a premise; "
                     "such requests use the default template " + repr(PROMPT_WITHOUT_PREMISE))
    elif 0 not in used:
        notes.append("it has no field, so a request without a premise gets this text whatever its hypothesis")
    dropped = [name for k, name in enumerate(("premise", "hypothesis")) if k not in used]
    if dropped:
        notes.append(f"with a premise, ModelScope's str.format leaves out the {' and the '.join(dropped)}; "
                     "the server does the same")
    return with_premise, without, notes


def meta_prompt(meta: Mapping[str, Any], hypothesis: str, premise: Optional[str] = None) -> str:
    """The prompt text for a request, from an exported model's metadata."""
    max_words = meta.get("max_src_length") or None
    hyp = pre_caption(hypothesis, max_words)
    if premise is None:
        return meta["prompt_without_premise"].format(hypothesis=hyp)
    return meta["prompt_with_premise"].format(premise=pre_caption(premise, max_words), hypothesis=hyp)


def max_prompt_tokens(meta: Mapping[str, Any]) -> int:
    """The prompt's BPE-id budget before bos and eos: max_src_length, capped by the position table."""
    n = int(meta.get("max_src_length") or 0)
    cap = int(meta["max_text_length"]) - 2
    return cap if n == 0 or n > cap else n


def meta_input_ids(bpe: BPE, meta: Mapping[str, Any], hypothesis: str, premise: Optional[str] = None) -> List[int]:
    """The encoder input ids of a request: [bos] + bpe(prompt)[:budget] + [eos]."""
    return encode_prompt(bpe, meta_prompt(meta, hypothesis, premise), meta["bos_id"], meta["eos_id"],
                         max_prompt_tokens(meta))
