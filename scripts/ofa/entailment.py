"""The exported visual-entailment scorer: one encoder pass, one decoder pass, 3 answer logits (docs/ofa-visual-entailment.md §2.8).

``forward(patch_images f32[B,3,H,W], input_ids i64[B,L]) -> f32[B,3]``; ``input_ids`` rows are
``[bos] + bpe(prompt) + [eos]`` right-padded with the pad id.  The output holds the decoder logits of the
answer tokens at each row's decision position, ordered entailment (" yes"), contradiction (" no"),
neutral (" maybe"); a softmax over them gives the constrained (traverse) probabilities.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from .modeling import OFAModel, encoder_decoder_prompt

LABELS = ("entailment", "contradiction", "neutral")
ANSWERS = (" yes", " no", " maybe")  # in LABELS order
PROMPT_TYPES = ("prev_output", "none")


class VisualEntailment(nn.Module):
    """Wraps an :class:`OFAModel`; the ``model.`` prefix of its state_dict keys is the only naming change."""

    def __init__(self, model: OFAModel, answer_ids: Sequence[int], prompt_type: str = "prev_output") -> None:
        super().__init__()
        if prompt_type not in PROMPT_TYPES:
            raise ValueError(f"prompt_type must be one of {PROMPT_TYPES}, not {prompt_type!r}")
        if len(answer_ids) != 3:
            raise ValueError(f"need 3 answer ids (entailment, contradiction, neutral), got {list(answer_ids)}")
        vocab = model.config.vocab_size
        if any(not 0 <= int(a) < vocab for a in answer_ids):
            raise ValueError(f"answer ids {list(answer_ids)} are outside the vocabulary of {vocab}")
        self.model = model
        self.prev_output = prompt_type == "prev_output"
        self.pad_id = model.config.pad_token_id
        self.bos_id = model.config.bos_token_id
        self.register_buffer("answer_ids", torch.tensor([int(a) for a in answer_ids], dtype=torch.long,
                                                        device=model.encoder.type_embedding.weight.device))

    def forward(self, patch_images: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
        weight = self.model.encoder.image_proj.weight
        images = patch_images.to(device=weight.device, dtype=weight.dtype)
        input_ids = input_ids.to(weight.device)
        enc, enc_mask, enc_pos = self.model.encoder(input_ids, images)
        if self.prev_output:
            dec_in, last = encoder_decoder_prompt(input_ids, self.pad_id)
        else:
            dec_in = torch.full((input_ids.size(0), 1), self.bos_id, dtype=torch.long, device=input_ids.device)
            last = torch.zeros(input_ids.size(0), dtype=torch.long, device=input_ids.device)
        hidden = self.model.decoder.hidden(dec_in, enc, enc_mask, enc_pos)  # [B, T, d]
        rows = torch.arange(hidden.size(0), device=hidden.device)
        h = hidden[rows, last].float()  # [B, d]
        w = self.model.decoder.output_projection.weight.index_select(0, self.answer_ids).float()  # [3, d]
        return torch.matmul(h, w.t())
