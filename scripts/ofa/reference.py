"""Python reference pipeline for end-to-end tests: image file + hypothesis [+ premise] -> 3 logits.

Preprocessing follows ModelScope/OFA: PIL open, ``ImageOps.exif_transpose``, ``convert("RGB")``, bicubic
resize to the model size (aspect not kept), ToTensor (/255), Normalize(mean, std) - all from the
repository's ``ofa_meta.json``; the prompt is OFA's ``pre_caption`` (truncated to ``max_src_length``
words) + the model's template (``ofa/prompts.py``), tokenised with our GPT-2 BPE over the repository's
``vocab.json``/``merges.txt``.  The model is the *eager* module rebuilt from the config in
``ofa_meta.json`` and the weights inside ``model.pt`` (loaded strictly), or, with ``torchscript=True``,
the exported module itself.

CLI (from scripts/, or with PYTHONPATH=scripts):
  python3 -m ofa.reference --repo models --image dog.jpg --hypothesis "there are two birds." [--premise P]
prints JSON {label, logits, probabilities, input_ids, ...}.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from PIL import Image, ImageOps

from .bpe import BPE
from .checkpoint import load_state_dict_strict, normalize_keys
from .config import OFAConfig
from .entailment import VisualEntailment
from .export import META_FILE, OFA_NAME
from .modeling import build_model
from .prompts import meta_input_ids, meta_prompt

ImageSource = Union[str, bytes, Image.Image]


def preprocess_image(src: ImageSource, height: int, width: int, mean: Sequence[float],
                     std: Sequence[float]) -> torch.Tensor:
    """PIL preprocessing -> float32 [3, height, width]."""
    if isinstance(src, Image.Image):
        img = src
    elif isinstance(src, bytes):
        img = Image.open(io.BytesIO(src))
    else:
        img = Image.open(src)
    img = ImageOps.exif_transpose(img).convert("RGB")
    img = img.resize((width, height), Image.BICUBIC)
    x = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1).float().div(255.0)
    m = torch.tensor(list(mean), dtype=torch.float32).view(3, 1, 1)
    s = torch.tensor(list(std), dtype=torch.float32).view(3, 1, 1)
    return (x - m) / s


class Reference:
    """The reference pipeline over one exported ``ofa_entailment`` model version directory."""

    def __init__(self, repo: str, model_name: str = OFA_NAME, version: str = "1", torchscript: bool = False) -> None:
        self.dir = os.path.join(repo, model_name, version)
        with open(os.path.join(self.dir, META_FILE), "r", encoding="utf-8") as f:
            self.meta: Dict[str, Any] = json.load(f)
        self.bpe = BPE.from_files(os.path.join(self.dir, self.meta["vocab_file"]),
                                  os.path.join(self.dir, self.meta["merges_file"]))
        scripted = torch.jit.load(os.path.join(self.dir, self.meta.get("model_file", "model.pt")), map_location="cpu")
        self.module: torch.nn.Module
        if torchscript:
            self.module = scripted
        else:
            sd = dict(scripted.state_dict())
            sd.pop("answer_ids", None)
            sd, _ = normalize_keys(sd)
            model = build_model(OFAConfig.from_dict(self.meta["model_config"]), init="empty")
            load_state_dict_strict(model, sd, log=lambda m: None, progress=False)
            self.module = VisualEntailment(model, self.meta["answer_ids"], self.meta["prompt_type"]).eval()

    def input_ids(self, hypothesis: str, premise: Optional[str] = None) -> List[int]:
        """The model's templates, pre_caption(max_src_length) and the token budget (ofa/prompts.py)."""
        return meta_input_ids(self.bpe, self.meta, hypothesis, premise)

    def image_tensor(self, image: ImageSource) -> torch.Tensor:
        h, w = self.meta["image_size"]
        return preprocess_image(image, h, w, self.meta["mean"], self.meta["std"])

    def logits(self, images: torch.Tensor, ids: List[List[int]]) -> torch.Tensor:
        """Batched forward: images [B,3,H,W], token rows of any lengths (right-padded here)."""
        length = max(len(r) for r in ids)
        batch = torch.full((len(ids), length), self.meta["pad_id"], dtype=torch.long)
        for i, r in enumerate(ids):
            batch[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        with torch.no_grad():
            return self.module(images, batch).float()

    def predict(self, image: ImageSource, hypothesis: str, premise: Optional[str] = None) -> Dict[str, Any]:
        ids = self.input_ids(hypothesis, premise)
        logits = self.logits(self.image_tensor(image).unsqueeze(0), [ids])[0]
        probs = torch.softmax(logits.double(), dim=0)
        best = int(torch.argmax(probs))
        labels = self.meta["labels"]
        return {
            "label": labels[best],
            "confidence": float(probs[best]),
            "labels": labels,
            "logits": [float(v) for v in logits],
            "probabilities": [float(v) for v in probs],
            "input_ids": ids,
            "prompt": meta_prompt(self.meta, hypothesis, premise),
        }


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m ofa.reference", description="OFA visual-entailment reference")
    p.add_argument("--repo", required=True, help="model repository written by export_ofa.py")
    p.add_argument("--model", default=OFA_NAME)
    p.add_argument("--image", required=True)
    p.add_argument("--hypothesis", required=True)
    p.add_argument("--premise", default=None)
    p.add_argument("--torchscript", action="store_true", help="run the exported module instead of the eager one")
    p.add_argument("--dump-image", default=None, help="also write the preprocessed image as raw float32 CHW")
    a = p.parse_args(argv)
    try:
        ref = Reference(a.repo, a.model, torchscript=a.torchscript)
        out = ref.predict(a.image, a.hypothesis, a.premise)
        if a.dump_image:
            ref.image_tensor(a.image).numpy().astype("<f4").tofile(a.dump_image)
    except (OSError, ValueError, RuntimeError, KeyError) as e:
        print(f"reference: error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
