"""Key set, shapes and parameter count of `large` (docs/ofa-visual-entailment.md §4.2) and strict loading of every naming."""

from __future__ import annotations

import io
from typing import Dict, Tuple

import pytest
import torch

from ofa.checkpoint import CheckpointError, load_state_dict_strict, match_keys, normalize_keys
from ofa.config import preset
from ofa.modeling import build_model, unique_parameter_count

from .helpers import batch, micro

Shape = Tuple[int, ...]


def spec_keys(d: int = 1024, heads: int = 16, layers: int = 12, ffn: int = 4096, vocab: int = 59457,
              blocks: Tuple[int, int, int] = (3, 8, 36)) -> Dict[str, Shape]:
    """The HF/ModelScope key list of docs/ofa-visual-entailment.md §4.2, written out from that text."""
    k: Dict[str, Shape] = {}

    def lin(p: str, i: int, o: int) -> None:
        k[p + ".weight"], k[p + ".bias"] = (o, i), (o,)

    def ln(p: str, n: int) -> None:
        k[p + ".weight"], k[p + ".bias"] = (n,), (n,)

    def bn(p: str, n: int) -> None:
        for s in ("weight", "bias", "running_mean", "running_var"):
            k[f"{p}.{s}"] = (n,)
        k[p + ".num_batches_tracked"] = ()

    def attn(p: str) -> None:
        for s in ("q_proj", "k_proj", "v_proj", "out_proj"):
            lin(f"{p}.{s}", d, d)
        k[p + ".c_attn"] = (heads,)

    k["encoder.embed_tokens.weight"] = (vocab, d)
    k["encoder.type_embedding.weight"] = (2, d)
    k["encoder.embed_images.conv1.weight"] = (64, 3, 7, 7)
    bn("encoder.embed_images.bn1", 64)
    inplanes = 64
    for li, (planes, n) in enumerate(zip((64, 128, 256), blocks), 1):
        for b in range(n):
            p = f"encoder.embed_images.layer{li}.{b}"
            k[p + ".conv1.weight"] = (planes, inplanes if b == 0 else planes * 4, 1, 1)
            bn(p + ".bn1", planes)
            k[p + ".conv2.weight"] = (planes, planes, 3, 3)
            bn(p + ".bn2", planes)
            k[p + ".conv3.weight"] = (planes * 4, planes, 1, 1)
            bn(p + ".bn3", planes * 4)
            if b == 0:
                k[p + ".downsample.0.weight"] = (planes * 4, inplanes, 1, 1)
                bn(p + ".downsample.1", planes * 4)
        inplanes = planes * 4
    lin("encoder.image_proj", 1024, d)
    ln("encoder.patch_layernorm_embedding", d)
    ln("encoder.layernorm_embedding", d)
    k["encoder.embed_positions.weight"] = (1026, d)
    k["encoder.embed_image_positions.weight"] = (1765, d)
    ln("encoder.pos_ln", d)
    ln("encoder.image_pos_ln", d)
    lin("encoder.pos_q_linear", d, d)
    lin("encoder.pos_k_linear", d, d)
    for n in range(layers):
        p = f"encoder.layers.{n}"
        attn(p + ".self_attn")
        ln(p + ".self_attn_layer_norm", d)
        ln(p + ".self_attn_mid_layer_norm", d)
        lin(p + ".fc1", d, ffn)
        lin(p + ".fc2", ffn, d)
        ln(p + ".ffn_layer_norm", ffn)
        ln(p + ".final_layer_norm", d)
        k[f"encoder.token_rel_pos_table_list.{n}.weight"] = (511, heads)
        k[f"encoder.image_rel_pos_table_list.{n}.weight"] = (6892, heads)
    ln("encoder.layer_norm", d)
    k["encoder.token_rp_bucket"] = (1024, 1024)
    k["encoder.image_rp_bucket"] = (1765, 1765)

    k["decoder.embed_tokens.weight"] = (vocab, d)
    k["decoder.output_projection.weight"] = (vocab, d)
    ln("decoder.layernorm_embedding", d)
    ln("decoder.code_layernorm_embedding", d)
    k["decoder.embed_positions.weight"] = (1026, d)
    k["decoder.embed_image_positions.weight"] = (1765, d)
    ln("decoder.pos_ln", d)
    ln("decoder.image_pos_ln", d)
    for s in ("self_pos_q_linear", "self_pos_k_linear", "cross_pos_q_linear", "cross_pos_k_linear"):
        lin("decoder." + s, d, d)
    for n in range(layers):
        p = f"decoder.layers.{n}"
        attn(p + ".self_attn")
        ln(p + ".self_attn_layer_norm", d)
        ln(p + ".self_attn_mid_layer_norm", d)
        attn(p + ".cross_attn")
        ln(p + ".cross_attn_layer_norm", d)
        ln(p + ".cross_attn_mid_layer_norm", d)
        lin(p + ".fc1", d, ffn)
        lin(p + ".fc2", ffn, d)
        ln(p + ".ffn_layer_norm", ffn)
        ln(p + ".final_layer_norm", d)
        k[f"decoder.token_rel_pos_table_list.{n}.weight"] = (511, heads)
        k[f"decoder.image_rel_pos_table_list.{n}.weight"] = (6892, heads)
    ln("decoder.layer_norm", d)
    k["decoder.token_rp_bucket"] = (1024, 1024)
    k["decoder.image_rp_bucket"] = (1765, 1765)
    k["decoder.image_position_idx"] = (1025,)
    return k


# HF -> fairseq, written from the rename table of docs/ofa-visual-entailment.md §0.9, applied per dotted component.
def to_fairseq(key: str) -> str:
    parts = key.split(".")
    enc = parts[0] == "encoder"
    m = {"self_attn_mid_layer_norm": "attn_ln" if enc else "self_attn_ln", "cross_attn_mid_layer_norm": "cross_attn_ln",
         "ffn_layer_norm": "ffn_layernorm", "cross_attn": "encoder_attn", "cross_attn_layer_norm": "encoder_attn_layer_norm"}
    return ".".join(m.get(p, p) for p in parts)


@pytest.fixture(scope="module")
def large_meta() -> torch.nn.Module:
    return build_model(preset("large"), init="meta")


def test_large_parameter_count(large_meta: torch.nn.Module) -> None:
    n = unique_parameter_count(large_meta)
    assert 460e6 <= n <= 480e6, n  # spec: ≈470M
    emb = large_meta.encoder.embed_tokens.weight
    assert large_meta.decoder.embed_tokens.weight is emb and large_meta.decoder.output_projection.weight is emb


def test_large_key_set_and_shapes(large_meta: torch.nn.Module) -> None:
    got = {k: tuple(v.shape) for k, v in large_meta.state_dict().items()}
    want = spec_keys()
    assert sorted(set(want) - set(got)) == [] and sorted(set(got) - set(want)) == []
    diffs = {k: (want[k], got[k]) for k in want if want[k] != got[k]}
    assert diffs == {}
    assert got["encoder.embed_images.layer3.35.conv3.weight"] == (1024, 256, 1, 1)
    assert not any(".layer4." in k or ".fc." in k for k in got)


def test_large_fairseq_and_prefixed_names_match(large_meta: torch.nn.Module) -> None:
    expected = {k: tuple(v.shape) for k, v in large_meta.state_dict().items()}
    sd = large_meta.state_dict()
    fairseq = {to_fairseq(k): v for k, v in sd.items()}
    fairseq["encoder.version"] = torch.empty(1, device="meta")
    fairseq["decoder.version"] = torch.empty(1, device="meta")
    fairseq["decoder.image_position_idx"] = torch.empty(1026, device="meta")
    assert "encoder.layers.0.attn_ln.weight" in fairseq and "decoder.layers.0.encoder_attn.c_attn" in fairseq
    for variant in (fairseq, {"model." + k: v for k, v in sd.items()}, {"model." + k: v for k, v in fairseq.items()}):
        norm, _ = normalize_keys(variant)
        rep = match_keys(expected, {k: tuple(v.shape) for k, v in norm.items()})
        assert rep.ok, rep.describe()
        assert rep.filled == []


def test_match_keys_reports_every_problem(large_meta: torch.nn.Module) -> None:
    expected = {k: tuple(v.shape) for k, v in large_meta.state_dict().items()}
    got = dict(expected)
    del got["encoder.layers.3.fc1.weight"]
    got["encoder.layers.3.fc9.weight"] = (1, 1)
    got["decoder.layers.0.self_attn.c_attn"] = (8,)
    del got["encoder.token_rp_bucket"]  # optional: recomputed
    rep = match_keys(expected, got)
    assert rep.missing == ["encoder.layers.3.fc1.weight"]
    assert rep.unexpected == ["encoder.layers.3.fc9.weight"]
    assert rep.shape_mismatch == [("decoder.layers.0.self_attn.c_attn", (16,), (8,))]
    assert rep.filled == ["encoder.token_rp_bucket"]
    text = rep.describe()
    assert "fc9" in text and "fc1.weight" in text and "[16] -> [8]" in text


def _outputs(model: torch.nn.Module) -> torch.Tensor:
    from ofa.entailment import VisualEntailment
    from .helpers import ANSWER_IDS
    imgs, ids = batch([9, 14], 64, seed=3)
    with torch.no_grad():
        return VisualEntailment(model, ANSWER_IDS).eval()(imgs, ids)


@pytest.mark.parametrize("naming", ["hf", "fairseq", "model_prefix", "fairseq_model_prefix", "training_ckpt"])
def test_real_load_micro_strict(naming: str) -> None:
    src = micro(seed=5)
    sd = src.state_dict()
    if "fairseq" in naming:
        sd = {to_fairseq(k): v for k, v in sd.items()}
        sd["decoder.image_position_idx"] = torch.cat([sd["decoder.image_position_idx"], torch.tensor([1024])])
        sd["encoder.version"] = torch.tensor([3.0])
    if "prefix" in naming:
        sd = {"model." + k: v for k, v in sd.items()}
    if naming == "training_ckpt":
        sd = {"model": sd}
    buf = io.BytesIO()
    torch.save(sd, buf)  # round trip through the file format
    buf.seek(0)
    loaded, _ = normalize_keys(torch.load(buf))
    dst = build_model(preset("micro"), init="empty")
    load_state_dict_strict(dst, loaded, log=lambda m: None, progress=False)
    for k, v in src.state_dict().items():
        if k != "decoder.image_position_idx":
            assert torch.equal(dst.state_dict()[k], v), k
    assert torch.equal(_outputs(dst), _outputs(src))


def test_fp16_checkpoint_is_cast_and_reported() -> None:
    src = micro(seed=6)
    sd = {k: (v.half() if v.is_floating_point() else v) for k, v in src.state_dict().items()}
    dst = build_model(preset("micro"), init="empty")
    logs = []
    load_state_dict_strict(dst, sd, log=logs.append, progress=False)
    w = dst.encoder.layers[0].fc1.weight
    assert w.dtype == torch.float32 and torch.equal(w, src.encoder.layers[0].fc1.weight.half().float())
    assert any("float16" in m for m in logs)


def test_missing_buffers_are_recomputed() -> None:
    src = micro(seed=7)
    sd = {k: v for k, v in src.state_dict().items() if "rp_bucket" not in k and "num_batches" not in k}
    dst = build_model(preset("micro"), init="empty")
    rep = load_state_dict_strict(dst, sd, log=lambda m: None, progress=False)
    assert len(rep.filled) >= 4
    assert torch.equal(dst.encoder.token_rp_bucket, src.encoder.token_rp_bucket)


def test_mismatches_raise_with_details() -> None:
    src = micro(seed=8)
    sd = dict(src.state_dict())
    sd.pop("decoder.layers.0.fc2.bias")
    sd["encoder.bogus.weight"] = torch.zeros(2)
    sd["encoder.type_embedding.weight"] = torch.zeros(3, 32)
    with pytest.raises(CheckpointError) as e:
        load_state_dict_strict(build_model(preset("micro"), init="empty"), sd, log=lambda m: None, progress=False)
    msg = str(e.value)
    assert "decoder.layers.0.fc2.bias" in msg and "encoder.bogus.weight" in msg
    assert "encoder.type_embedding.weight: [2, 32] -> [3, 32]" in msg


def test_untied_embeddings_are_rejected() -> None:
    sd = dict(micro(seed=9).state_dict())
    sd["decoder.output_projection.weight"] = sd["decoder.output_projection.weight"] + 1
    with pytest.raises(CheckpointError, match="tied embeddings differ"):
        load_state_dict_strict(build_model(preset("micro"), init="empty"), sd, log=lambda m: None, progress=False)
