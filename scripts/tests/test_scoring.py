"""Single-pass scoring (docs/ofa-visual-entailment.md §2.8) equals the constrained per-candidate traverse scoring."""

from __future__ import annotations

import torch

from ofa.entailment import VisualEntailment

from .helpers import ANSWER_IDS, micro, pad_rows, random_rows, images


def traverse_scores(model, image: torch.Tensor, row: list, prompt_type: str) -> torch.Tensor:
    """Spec §2.8 per candidate: decoder input = prompt + [a], target = prompt[1:] + [a, eos]; logits
    outside the constraint set are -inf at the answer steps, unconstrained prompt steps and pads score 0."""
    prompt = row[:-1] if prompt_type == "prev_output" else [0]
    ids = torch.tensor([row])
    scores = []
    for a in ANSWER_IDS:
        dec = torch.tensor([prompt + [a]])
        target = prompt[1:] + [a, 2]
        with torch.no_grad():
            logits = model(ids, image[None], dec)[0]  # [T, V]
        total = torch.zeros((), dtype=torch.float64)
        for t, tok in enumerate(target):
            if t < len(prompt) - 1:
                continue  # prompt positions: all-False mask rows -> 0
            allowed = ANSWER_IDS if t == len(prompt) - 1 else [2]
            masked = torch.full_like(logits[t], float("-inf"))
            masked[allowed] = logits[t][allowed]
            total += torch.log_softmax(masked.double(), dim=0)[tok]
        scores.append(total)
    return torch.stack(scores)


def test_single_pass_equals_traverse_prev_output_and_none() -> None:
    model = micro(seed=21)
    rows = random_rows([9, 17], seed=22)
    imgs = images(2, 64, seed=23)
    for prompt_type in ("prev_output", "none"):
        ve = VisualEntailment(model, ANSWER_IDS, prompt_type).eval()
        with torch.no_grad():
            logits = ve(imgs, pad_rows(rows)).double()
        for i, r in enumerate(rows):
            want = traverse_scores(model, imgs[i], r, prompt_type)
            got = torch.log_softmax(logits[i], dim=0)
            assert (got - want).abs().max().item() < 1e-5, prompt_type


def test_prompt_types_differ_and_answer_order() -> None:
    model = micro(seed=24)
    rows = random_rows([12], seed=25)
    imgs = images(1, 64, seed=26)
    ids = pad_rows(rows)
    with torch.no_grad():
        a = VisualEntailment(model, ANSWER_IDS, "prev_output")(imgs, ids)
        b = VisualEntailment(model, ANSWER_IDS, "none")(imgs, ids)
        swapped = VisualEntailment(model, [117, 4420, 2085], "prev_output")(imgs, ids)
    assert (a - b).abs().max().item() > 1e-3
    assert torch.equal(swapped[:, [1, 0, 2]], a)
