"""Strict checkpoint loading: HF/ModelScope or fairseq key names, optional ``model.`` prefix, any float dtype.

Every parameter key of the model must be in the file with the same shape, and every key of the file must
be known; otherwise :class:`CheckpointError` lists the missing and unexpected keys and the shape
differences.  Only the index buffers (relative-position buckets, ``image_position_idx``) and BatchNorm
``num_batches_tracked`` counters may be absent (they are recomputed/zeroed), and the length of
``decoder.image_position_idx`` follows the file (1025 in HF/MS, 1026 in fairseq).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch

from .config import ConfigError, OFAConfig, from_hf_config
from .modeling import INDEX_BUFFERS, OFAModel, build_model, check_buffers
from .prompts import PromptError, templates_from_prompt

# fairseq -> HF/ModelScope names of single dotted components (docs/ofa-visual-entailment.md §0.9).
FAIRSEQ_RENAMES: Dict[str, str] = {
    "attn_ln": "self_attn_mid_layer_norm",
    "self_attn_ln": "self_attn_mid_layer_norm",
    "cross_attn_ln": "cross_attn_mid_layer_norm",
    "ffn_layernorm": "ffn_layer_norm",
    "encoder_attn": "cross_attn",
    "encoder_attn_layer_norm": "cross_attn_layer_norm",
}
TIED_KEYS = ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight", "decoder.output_projection.weight")
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
GEN_TYPES = ("generation", "traverse")  # ModelScope's OFA scoring modes (docs/ofa-visual-entailment.md §2.8)


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be loaded strictly; the message lists every problem."""


Shape = Tuple[int, ...]


@dataclass
class MatchReport:
    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    shape_mismatch: List[Tuple[str, Shape, Shape]] = field(default_factory=list)  # key, expected, got
    filled: List[str] = field(default_factory=list)  # optional keys absent from the file

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.shape_mismatch)

    def describe(self, limit: int = 20) -> str:
        lines = []

        def block(title: str, items: Sequence[str]) -> None:
            if items:
                lines.append(f"{title} ({len(items)}):")
                lines.extend(f"  {x}" for x in items[:limit])
                if len(items) > limit:
                    lines.append(f"  ... and {len(items) - limit} more")

        block("missing keys", self.missing)
        block("unexpected keys", self.unexpected)
        block("shape differences (key: model expects -> file has)",
              [f"{k}: {list(a)} -> {list(b)}" for k, a, b in self.shape_mismatch])
        return "\n".join(lines)


def _optional(key: str) -> bool:
    return key in INDEX_BUFFERS or key.endswith(".num_batches_tracked")


def normalize_keys(sd: Mapping[str, Any]) -> Tuple[Dict[str, Any], List[str]]:
    """Unwrap a fairseq ``{"model": ...}`` checkpoint, strip a ``model.`` prefix, rename fairseq keys,
    drop ``*.version``.  Returns the new dict and notes saying what was done."""
    notes: List[str] = []
    if "model" in sd and isinstance(sd["model"], Mapping):
        sd = sd["model"]
        notes.append("unwrapped the 'model' entry of a training checkpoint")
    non_tensor = [k for k, v in sd.items() if not isinstance(v, torch.Tensor)]
    if non_tensor:
        raise CheckpointError(f"not a state_dict: {len(non_tensor)} entries are not tensors, e.g. {non_tensor[:5]}")
    keys = list(sd)
    if keys and all(k.startswith("model.") for k in keys):
        sd = {k[len("model."):]: v for k, v in sd.items()}
        notes.append("stripped the 'model.' prefix")
    out: Dict[str, Any] = {}
    renamed = dropped = 0
    for k, v in sd.items():
        parts = k.split(".")
        if parts[-1] == "version":
            dropped += 1
            continue
        new = [FAIRSEQ_RENAMES.get(p, p) for p in parts]
        if new != parts:
            renamed += 1
        out[".".join(new)] = v
    if renamed:
        notes.append(f"fairseq naming: renamed {renamed} keys")
    if dropped:
        notes.append(f"dropped {dropped} '*.version' keys")
    return out, notes


def match_keys(expected: Mapping[str, Shape], got: Mapping[str, Shape]) -> MatchReport:
    """Compare key sets and shapes (pure function of names and shapes)."""
    rep = MatchReport()
    tied_present = [k for k in TIED_KEYS if k in got]
    for k, shape in expected.items():
        if k not in got:
            if _optional(k) or (k in TIED_KEYS and tied_present):
                rep.filled.append(k)
            else:
                rep.missing.append(k)
        elif tuple(got[k]) != tuple(shape) and k != "decoder.image_position_idx":
            rep.shape_mismatch.append((k, tuple(shape), tuple(got[k])))
    rep.unexpected = sorted(k for k in got if k not in expected)
    return rep


def expected_shapes(model: torch.nn.Module) -> Dict[str, Shape]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


class _Progress:
    """A one-line progress bar on stderr (only when stderr is a terminal, else start/end lines)."""

    def __init__(self, title: str, total: int, stream: Any = None) -> None:
        self.title, self.total, self.n = title, max(total, 1), 0
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._last = -1

    def update(self, n: int = 1) -> None:
        self.n += n
        pct = int(100 * self.n / self.total)
        if self.tty and pct != self._last:
            bar = "#" * (pct // 4)
            self.stream.write(f"\r{self.title} [{bar:<25}] {pct:3d}%")
            self.stream.flush()
        self._last = pct

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
        else:
            self.stream.write(f"{self.title}: done ({self.n}/{self.total})\n")
        self.stream.flush()


def load_state_dict_strict(model: OFAModel, sd: Mapping[str, torch.Tensor], log: Callable[[str], None] = print,
                           progress: bool = True) -> MatchReport:
    """Load ``sd`` (already normalised) into ``model``; raises :class:`CheckpointError` on any mismatch."""
    if "decoder.image_position_idx" in sd and "image_position_idx" in model.decoder._buffers:
        n = sd["decoder.image_position_idx"].numel()
        buf = model.decoder.image_position_idx
        if buf.numel() != n:
            model.decoder.image_position_idx = torch.zeros(n, dtype=buf.dtype, device=buf.device)
            model.config.image_position_idx_len = n
    rep = match_keys(expected_shapes(model), {k: tuple(v.shape) for k, v in sd.items()})
    if not rep.ok:
        raise CheckpointError("checkpoint does not match the model:\n" + rep.describe())
    tied = [sd[k] for k in TIED_KEYS if k in sd]
    if any(t.shape != tied[0].shape or not torch.equal(t, tied[0]) for t in tied[1:]):
        raise CheckpointError(f"tied embeddings differ between {[k for k in TIED_KEYS if k in sd]}")
    dtypes = sorted({str(v.dtype).replace("torch.", "") for v in sd.values() if v.is_floating_point()})
    target = model.encoder.image_proj.weight.dtype
    if any(d != str(target).replace("torch.", "") for d in dtypes):
        log(f"checkpoint float dtype(s) {dtypes}: cast to {str(target).replace('torch.', '')}")
    own = model.state_dict(keep_vars=True)
    bar = _Progress("loading weights", len(sd)) if progress else None
    with torch.no_grad():
        for k, v in sd.items():
            dst = own[k]
            if dst.is_floating_point() != v.is_floating_point():
                raise CheckpointError(f"{k}: dtype {v.dtype} cannot fill {dst.dtype}")
            dst.copy_(v)
            if bar:
                bar.update()
    if bar:
        bar.close()
    if rep.filled:
        model.reset_buffers()
        log(f"recomputed/zeroed {len(rep.filled)} keys absent from the file "
            f"(index buffers, BN counters, tied copies)")
    bad = check_buffers(model)
    if bad:
        log(f"warning: checkpoint index buffers {bad} differ from the recomputed ones; forward recomputes them")
    return rep


@dataclass
class TaskSettings:
    """What ``configuration.json`` (ModelScope) says about the visual-entailment task."""

    prompt_type: str = "prev_output"
    patch_image_size: Optional[int] = None
    max_src_length: int = 256
    mean: List[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    std: List[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    prompt: Optional[str] = None  # model.prompt: replaces both templates (ofa/prompts.py)
    gen_type: Optional[str] = None  # model.gen_type as configured (ModelScope's default: generation)
    answers: Optional[List[str]] = None
    source: str = "defaults (SNLI-VE fine-tune: prompt_type prev_output)"

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


def read_configuration(model_dir: str, log: Callable[[str], None] = print) -> TaskSettings:
    """Read ModelScope's ``configuration.json`` (ModelScope's defaults for absent keys). A ModelScope model
    directory always has one, and ModelScope reads its task settings nowhere else, so a missing file (or a
    missing answer file it names) is an error, not a guess."""
    ts = TaskSettings()
    path = os.path.join(model_dir, "configuration.json")
    if not os.path.isfile(path):
        raise CheckpointError(f"{path} does not exist: a ModelScope model directory has configuration.json "
                              "(the task settings: prompt_type, patch_image_size, max_src_length, answer2label, ...)")
    try:
        with open(path, "r", encoding="utf-8") as f:
            conf = json.load(f)
    except (OSError, ValueError) as e:
        raise CheckpointError(f"cannot read {path}: {e}") from e
    m = conf.get("model", {}) if isinstance(conf.get("model"), dict) else {}
    ts.source = "configuration.json"
    ts.prompt_type = m.get("prompt_type", "none")  # ModelScope's default when the key is absent
    if "patch_image_size" in m:
        ts.patch_image_size = int(m["patch_image_size"])
    ts.max_src_length = int(m.get("max_src_length", 256))
    if m.get("imagenet_default_mean_and_std", False):
        ts.mean, ts.std = list(IMAGENET_MEAN), list(IMAGENET_STD)
    if "prompt" in m:
        if not isinstance(m["prompt"], str):
            raise CheckpointError(f"{path}: model.prompt is {type(m['prompt']).__name__}, not a string")
        ts.prompt = m["prompt"]
        try:
            templates_from_prompt(ts.prompt)
        except PromptError as e:
            raise CheckpointError(f"{path}: model.prompt: {e}") from e
    ts.gen_type = m.get("gen_type", "generation")  # ModelScope's default when the key is absent
    if ts.gen_type not in GEN_TYPES:
        raise CheckpointError(f"{path}: model.gen_type {ts.gen_type!r} is not one of ModelScope's {GEN_TYPES}")
    a2l = m.get("answer2label")
    if isinstance(a2l, str):
        a2l_path = os.path.join(model_dir, a2l)
        if not os.path.isfile(a2l_path):
            raise CheckpointError(f"{a2l_path} does not exist: {path} names it as model.answer2label "
                                  "(the answer set yes/no/maybe)")
        try:
            with open(a2l_path, "r", encoding="utf-8") as f:
                ts.answers = list(json.load(f))
        except (OSError, ValueError, TypeError) as e:
            raise CheckpointError(f"cannot read the answer file {a2l_path}: {e}") from e
    elif isinstance(a2l, dict):
        ts.answers = list(a2l)
    log("configuration.json: task={} gen_type={} prompt_type={} patch_image_size={} max_src_length={} "
        "imagenet_mean_std={} answers={} prompt={}".format(
            conf.get("task"), ts.gen_type, ts.prompt_type, ts.patch_image_size, ts.max_src_length,
            bool(m.get("imagenet_default_mean_and_std", False)), ts.answers, m.get("prompt")))
    if ts.answers is not None and sorted(a.strip() for a in ts.answers) != ["maybe", "no", "yes"]:
        raise CheckpointError(f"answer set {ts.answers} is not {{yes, no, maybe}}: not a visual-entailment model")
    if ts.prompt_type not in ("prev_output", "none"):
        raise CheckpointError(f"prompt_type {ts.prompt_type!r} is not supported (prev_output or none)")
    return ts


def read_state_dict(path: str) -> Dict[str, torch.Tensor]:
    try:  # weights_only: a checkpoint is data, never code to unpickle
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for corrupt files
        raise CheckpointError(f"cannot read checkpoint {path} (expected a torch.save'd state_dict): "
                              f"{type(e).__name__}: {e}") from e
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"checkpoint {path} holds a {type(obj).__name__}, not a state_dict")
    return dict(obj)


def load_model_dir(model_dir: str, log: Callable[[str], None] = print, progress: bool = True,
                   patch_image_size: Optional[int] = None) -> Tuple[OFAModel, TaskSettings]:
    """Build and strictly load the model in ``model_dir`` (config.json + pytorch_model.bin) in fp32."""
    cfg_path = os.path.join(model_dir, "config.json")
    bin_path = os.path.join(model_dir, "pytorch_model.bin")
    for p in (cfg_path, bin_path):
        if not os.path.exists(p):
            raise CheckpointError(f"{p} does not exist (a model directory needs config.json and pytorch_model.bin)")
    ts = read_configuration(model_dir, log)
    try:
        with open(cfg_path, "r", encoding="utf-8") as f:
            hf = json.load(f)
        size = patch_image_size or ts.patch_image_size or 480
        cfg = from_hf_config(hf, name=os.path.basename(os.path.normpath(model_dir)), patch_image_size=size)
    except (OSError, ValueError, ConfigError) as e:
        raise CheckpointError(f"bad config.json: {e}") from e
    log(f"config.json: d_model={cfg.d_model} layers={cfg.encoder_layers}/{cfg.decoder_layers} "
        f"heads={cfg.encoder_attention_heads} resnet={cfg.resnet_layers} vocab={cfg.vocab_size}")
    sd, notes = normalize_keys(read_state_dict(bin_path))
    for n in notes:
        log("checkpoint: " + n)
    model = build_model(cfg, init="empty")
    load_state_dict_strict(model, sd, log=log, progress=progress)
    return model, ts
