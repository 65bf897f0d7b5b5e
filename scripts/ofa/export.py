"""Exports an OFA visual-entailment model to a Triton-layout model repository (see models/README.md).

Writes ``<out>/ofa_entailment_raw`` (platform pytorch_libtorch: the TorchScript module) and
``<out>/ofa_entailment`` (backend ofa: the same module plus tokenizer files and ``ofa_meta.json``).
Everything is built in a temporary directory inside ``<out>`` and renamed into place only after the
scripted module has been checked against the eager one and reloaded from disk, so a failed export never
leaves a partial repository.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from .bpe import BPE
from .checkpoint import CheckpointError, TaskSettings, load_model_dir
from .config import PRESETS, ConfigError, preset
from .entailment import ANSWERS, LABELS, VisualEntailment
from .modeling import OFAModel, build_model
from .prompts import templates_from_prompt
from .vocab import default_bpe_dir, write_tokenizer_files

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
RAW_NAME = "ofa_entailment_raw"
OFA_NAME = "ofa_entailment"
META_FILE = "ofa_meta.json"
META_FORMAT_VERSION = 1
# How the server scores: one encoder and one decoder pass, the three answers' logits at the decision
# position, softmax over them (ModelScope's gen_type "traverse"; docs/ofa-visual-entailment.md §2.8).
SCORING = "traverse"


class ExportError(RuntimeError):
    """The export failed; nothing was written to the output repository."""


def repo_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="export_ofa.py", description=__doc__.split("\n")[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model-dir", help="ModelScope checkpoint directory: config.json + pytorch_model.bin + "
                     "configuration.json (+ the answer file it names) [+ vocab.json, merges.txt]")
    src.add_argument("--random-init", action="store_true", help="seeded random weights (tests, `make run`)")
    p.add_argument("--config", default="tiny", choices=sorted(PRESETS), help="preset for --random-init")
    p.add_argument("--seed", type=int, default=0, help="seed for --random-init")
    p.add_argument("--image-size", type=int, default=None,
                   help="square input resolution (default: the config's / configuration.json's, 480 for real models)")
    p.add_argument("--prompt-type", choices=["prev_output", "none"], default=None,
                   help="decoder prompt (default: configuration.json's, else prev_output)")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="fp32")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--out", default=os.path.join(repo_root(), "models"), help="model repository (default: models/)")
    p.add_argument("--bpe-dir", default=None, help="OFA BPE files (encoder.json, vocab.bpe, dict.txt); "
                   "default $OFASERVE_BPE_DIR, else the repository's third_party/ofa-bpe")
    p.add_argument("--max-batch-size", type=int, default=16)
    p.add_argument("--quiet", action="store_true", help="no progress output")
    return p.parse_args(argv)


def _log(quiet: bool) -> Any:
    def log(msg: str) -> None:
        if not quiet:
            print(msg, file=sys.stderr, flush=True)
    return log


def instance_group(device: str) -> str:
    """The one instance both models run: on GPU 0 for a --device cuda export, else on the CPU."""
    return "instance_group [ { count: 1 kind: KIND_GPU gpus: [ 0 ] } ]" if device == "cuda" else \
        "instance_group [ { count: 1 kind: KIND_CPU } ]"


def raw_config_pbtxt(h: int, w: int, max_batch: int, device: str, *,
                     vocab_size: Optional[int] = None, max_length: Optional[int] = None) -> str:
    """The raw model's config.  vocab_size / max_length (the embedding's rows, the position table's length)
    become pytorch_libtorch's value_range:/max_length: parameters on INPUT_IDS, so the server refuses an
    id or a length the module would fail on, per request, before it joins (and fails) a batch."""
    kind = instance_group(device)
    limits = ""
    if vocab_size is not None:
        limits += f'parameters {{ key: "value_range:INPUT_IDS" value: {{ string_value: "0,{vocab_size}" }} }}\n'
    if max_length is not None:
        limits += f'parameters {{ key: "max_length:INPUT_IDS" value: {{ string_value: "{max_length}" }} }}\n'
    return f"""name: "{RAW_NAME}"
platform: "pytorch_libtorch"
max_batch_size: {max_batch}
input [
  {{ name: "IMAGE" data_type: TYPE_FP32 dims: [ 3, {h}, {w} ] }},
  {{ name: "INPUT_IDS" data_type: TYPE_INT64 dims: [ -1 ] }}
]
output [
  {{ name: "LOGITS" data_type: TYPE_FP32 dims: [ 3 ] }}
]
dynamic_batching {{ max_queue_delay_microseconds: 2000 }}
{kind}
{limits}"""


def ofa_config_pbtxt(max_batch: int, device: str = "cpu") -> str:
    return f"""name: "{OFA_NAME}"
backend: "ofa"
max_batch_size: {max_batch}
input [
  {{ name: "IMAGE" data_type: TYPE_STRING dims: [ 1 ] }},
  {{ name: "HYPOTHESIS" data_type: TYPE_STRING dims: [ 1 ] }},
  {{ name: "PREMISE" data_type: TYPE_STRING dims: [ 1 ] optional: true }}
]
output [
  {{ name: "RESULT" data_type: TYPE_STRING dims: [ 1 ] }},
  {{ name: "LABEL" data_type: TYPE_STRING dims: [ 1 ] }},
  {{ name: "SCORES" data_type: TYPE_FP32 dims: [ 3 ] }}
]
dynamic_batching {{ max_queue_delay_microseconds: 2000 }}
{instance_group(device)}
parameters {{ key: "metadata_file" value: {{ string_value: "{META_FILE}" }} }}
"""


def answer_ids(bpe: BPE) -> List[int]:
    ids = []
    for ans in ANSWERS:
        enc = bpe.encode(ans)
        if len(enc) != 1:
            raise ExportError(f"answer {ans!r} is {len(enc)} BPE tokens {enc}; single-pass scoring needs one")
        ids.append(enc[0])
    return ids


def validation_batch(model: OFAModel, lengths: Sequence[int], seed: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Random images and right-padded random prompts ([bos] + ids + [eos]) of the given lengths."""
    cfg = model.config
    g = torch.Generator().manual_seed(seed)
    size = cfg.patch_image_size
    images = torch.rand(len(lengths), 3, size, size, generator=g) * 2 - 1
    ids = torch.full((len(lengths), max(lengths)), cfg.pad_token_id, dtype=torch.long)
    for i, n in enumerate(lengths):
        ids[i, 0] = cfg.bos_token_id
        ids[i, 1:n - 1] = torch.randint(4, min(cfg.vocab_size, 50000), (n - 2,), generator=g)
        ids[i, n - 1] = cfg.eos_token_id
    return images, ids


def script_module(ve: VisualEntailment, dtype: torch.dtype = torch.float32, device: str = "cpu") -> torch.jit.ScriptModule:
    """Cast ``ve`` (in place) to dtype/device, drop the index buffers the forward recomputes, and
    ``torch.jit.script`` it.  Script (not trace) keeps batch size and text length dynamic."""
    ve.model.drop_index_buffers()
    ve.to(device=torch.device(device), dtype=dtype)
    ve.answer_ids = ve.answer_ids.long()
    return torch.jit.script(ve.eval())


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def scoring_note(gen_type: Optional[str]) -> str:
    """The export log's line on scoring: what the server does, and how ModelScope's gen_type compares."""
    what = ("scoring: the server scores the three answers in one pass (traverse: logits of ' yes', ' no', "
            "' maybe' at the decision position, softmax over them; label = argmax, confidence = its probability)")
    if gen_type is None:
        return what + "; no configuration.json, so no ModelScope gen_type to compare"
    if gen_type == "traverse":
        return what + "; configuration.json gen_type=traverse: the same scoring as ModelScope"
    return (what + f"; configuration.json gen_type={gen_type}: ModelScope would beam-search the answer under the "
            "same constraint and report score 1.0, so labels agree and confidences differ")


def build_meta(model: OFAModel, ts: TaskSettings, ans_ids: List[int], args: argparse.Namespace,
               source: str, bpe_vocab_size: int) -> Dict[str, Any]:
    cfg = model.config
    with_premise, without_premise, _ = templates_from_prompt(ts.prompt)
    return {
        "format_version": META_FORMAT_VERSION,
        "config_name": cfg.name,
        "source": source,
        "seed": args.seed if args.random_init else None,
        "dtype": args.dtype,
        "device": args.device,
        "image_size": [cfg.patch_image_size, cfg.patch_image_size],
        "image_tokens": cfg.image_grid * cfg.image_grid,
        "resample": "bicubic",
        "mean": ts.mean,
        "std": ts.std,
        "prompt_with_premise": with_premise,
        "prompt_without_premise": without_premise,
        "prompt_override": ts.prompt,
        "text_normalization": "ofa_pre_caption",
        "bos_id": cfg.bos_token_id,
        "pad_id": cfg.pad_token_id,
        "eos_id": cfg.eos_token_id,
        "answers": list(ANSWERS),
        "answer_ids": ans_ids,
        "labels": list(LABELS),
        "max_text_length": cfg.max_text_length,
        "max_src_length": ts.max_src_length,
        "prompt_type": ts.prompt_type,
        "gen_type": ts.gen_type,
        "scoring": SCORING,
        "vocab_file": "vocab.json",
        "merges_file": "merges.txt",
        "vocab_size": bpe_vocab_size,
        "max_batch_size": args.max_batch_size,
        "model_file": "model.pt",
        "model_config": cfg.to_dict(),
        "torch_version": torch.__version__,
    }


def _replace_dir(tmp_dir: str, final: str) -> None:
    """Swap ``tmp_dir`` into ``final`` (old content removed only after the new one is in place)."""
    old = None
    if os.path.exists(final):
        old = final + f".old-{os.getpid()}"
        os.rename(final, old)
    os.rename(tmp_dir, final)
    if old:
        shutil.rmtree(old, ignore_errors=True)


def export(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Run the export; returns a summary dict.  Raises ExportError/CheckpointError/ConfigError."""
    args = parse_args(argv)
    log = _log(args.quiet)
    t0 = time.time()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise ExportError("--device cuda but torch.cuda.is_available() is false")
    if args.max_batch_size < 1:
        raise ExportError("--max-batch-size must be >= 1")
    bpe_dir = args.bpe_dir or default_bpe_dir()
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    work = tempfile.mkdtemp(prefix=".ofa-export-", dir=out)
    try:
        # 1. the eager fp32 model
        if args.model_dir:
            log(f"[1/5] loading {args.model_dir}")
            model, ts = load_model_dir(args.model_dir, log=log, progress=not args.quiet,
                                       patch_image_size=args.image_size)
            source = os.path.basename(os.path.normpath(args.model_dir))
        else:
            changes = {"patch_image_size": args.image_size} if args.image_size else {}
            cfg = preset(args.config, **changes)
            log(f"[1/5] building {cfg.name} with random weights (seed {args.seed}, {cfg.patch_image_size} px)")
            model = build_model(cfg, init="random", seed=args.seed)
            ts = TaskSettings()
            source = "random-init"
        if args.prompt_type:
            ts.prompt_type = args.prompt_type
        for note in templates_from_prompt(ts.prompt)[2]:
            log("      prompt: " + note)
        log("      " + scoring_note(ts.gen_type))

        # 2. tokenizer files
        raw_dir = os.path.join(work, RAW_NAME)
        ofa_dir = os.path.join(work, OFA_NAME)
        for d in (raw_dir, ofa_dir):
            os.makedirs(os.path.join(d, "1"))
        ofa_ver = os.path.join(ofa_dir, "1")
        own_vocab = args.model_dir and all(os.path.exists(os.path.join(args.model_dir, f))
                                           for f in ("vocab.json", "merges.txt"))
        if own_vocab:
            log("[2/5] tokenizer: the checkpoint's vocab.json + merges.txt")
            for f in ("vocab.json", "merges.txt"):
                shutil.copyfile(os.path.join(args.model_dir, f), os.path.join(ofa_ver, f))
        else:
            log(f"[2/5] tokenizer: building vocab.json + merges.txt from {bpe_dir}")
            try:
                write_tokenizer_files(bpe_dir, ofa_ver)
            except OSError as e:
                raise ExportError(f"cannot build the tokenizer from {bpe_dir}: {e} (set --bpe-dir)") from e
        bpe = BPE.from_dir(ofa_ver)
        ans = answer_ids(bpe)
        if len(bpe.vocab) > model.config.vocab_size:
            raise ExportError(f"tokenizer has {len(bpe.vocab)} entries, the model only {model.config.vocab_size}")

        # 3. reference outputs of the eager fp32 module on a mixed-length batch
        ve = VisualEntailment(model, ans, ts.prompt_type).eval()
        images, ids = validation_batch(model, [14, 7, 31], seed=1234)
        with torch.no_grad():
            expected = ve(images, ids)

        # 4. cast, script, check
        log(f"[3/5] scripting ({args.dtype}, {args.device})")
        scripted = script_module(ve, DTYPES[args.dtype], args.device)
        tol = 1e-4 if args.dtype == "fp32" else 0.25
        got = _run_checked(scripted, images, ids, args, log)
        if got is not None:
            diff = (got - expected).abs().max().item()
            log(f"      scripted vs eager fp32: max |diff| = {diff:.3g}")
            if not diff <= tol:
                raise ExportError(f"scripted module disagrees with the eager one: max |diff| {diff:.3g} > {tol}")

        # 5. write + reload from disk
        log("[4/5] saving")
        model_pt = os.path.join(raw_dir, "1", "model.pt")
        torch.jit.save(scripted, model_pt)
        try:
            os.link(model_pt, os.path.join(ofa_ver, "model.pt"))
        except OSError:
            shutil.copyfile(model_pt, os.path.join(ofa_ver, "model.pt"))
        reloaded = torch.jit.load(model_pt, map_location=args.device)
        again = _run_checked(reloaded, images, ids, args, log)
        if got is not None and again is not None and not torch.equal(again, got):
            raise ExportError("the saved module gives different logits after reloading")
        h = w = model.config.patch_image_size
        with open(os.path.join(raw_dir, "config.pbtxt"), "w") as f:
            f.write(raw_config_pbtxt(h, w, args.max_batch_size, args.device,
                                     vocab_size=model.config.vocab_size, max_length=model.config.max_text_length))
        with open(os.path.join(ofa_dir, "config.pbtxt"), "w") as f:
            f.write(ofa_config_pbtxt(args.max_batch_size, args.device))
        meta = build_meta(model, ts, ans, args, source, len(bpe.vocab))
        meta["model_sha256"] = _sha256(model_pt)
        with open(os.path.join(ofa_ver, META_FILE), "w") as f:
            json.dump(meta, f, indent=2)
            f.write("\n")

        log(f"[5/5] installing into {out}")
        _replace_dir(raw_dir, os.path.join(out, RAW_NAME))
        _replace_dir(ofa_dir, os.path.join(out, OFA_NAME))
        final_pt = os.path.join(out, RAW_NAME, "1", "model.pt")
        summary = {"out": out, "seconds": round(time.time() - t0, 2), "model_bytes": os.path.getsize(final_pt),
                   "config": model.config.name, "dtype": args.dtype, "answer_ids": ans}
        log(f"done in {summary['seconds']} s: {final_pt} ({summary['model_bytes'] / 1e6:.1f} MB)")
        return summary
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run_checked(module: Any, images: torch.Tensor, ids: torch.Tensor, args: argparse.Namespace,
                 log: Any) -> Optional[torch.Tensor]:
    """Run the module on the validation batch; None when this torch cannot run fp16 on CPU."""
    try:
        with torch.no_grad():
            out = module(images.to(args.device), ids.to(args.device)).cpu()
    except RuntimeError as e:
        if args.device == "cpu" and args.dtype == "fp16" and "Half" in str(e):
            log("      note: this torch cannot run fp16 on CPU; the numeric check is skipped")
            return None
        raise ExportError(f"the exported module fails on a validation batch: {e}") from e
    if out.dtype != torch.float32 or tuple(out.shape) != (images.size(0), 3):
        raise ExportError(f"the module returned {out.dtype} {list(out.shape)}, expected float32 [B, 3]")
    if not torch.isfinite(out).all():
        raise ExportError("the module returned non-finite logits on the validation batch")
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    try:
        export(argv)
    except (ExportError, CheckpointError, ConfigError) as e:
        print(f"export_ofa: error: {e}", file=sys.stderr)
        print("export_ofa: nothing was written", file=sys.stderr)
        return 1
    return 0
