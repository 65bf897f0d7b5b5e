"""OFA model configurations: the preset sizes (micro, tiny ... huge) and HF ``config.json`` parsing."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping

# Bottleneck block counts of ResNet stages 1..3 (the OFA ports map resnet34 to Bottleneck [3,4,6] too).
RESNET_LAYERS: Dict[str, List[int]] = {
    "resnet34": [3, 4, 6],
    "resnet50": [3, 4, 6],
    "resnet101": [3, 4, 23],
    "resnet152": [3, 8, 36],
}


class ConfigError(ValueError):
    """A configuration this port cannot build (unknown field value, unsupported variant)."""


@dataclass
class OFAConfig:
    """Hyper-parameters of one OFA variant.  Field names follow the HF/ModelScope ``config.json``."""

    name: str = "custom"
    vocab_size: int = 59457
    d_model: int = 1024
    encoder_layers: int = 12
    decoder_layers: int = 12
    encoder_attention_heads: int = 16
    decoder_attention_heads: int = 16
    encoder_ffn_dim: int = 4096
    decoder_ffn_dim: int = 4096
    resnet_layers: List[int] = field(default_factory=lambda: [3, 8, 36])
    max_position_embeddings: int = 1024
    token_bucket_size: int = 256
    image_bucket_size: int = 42
    attn_scale_factor: float = 2.0
    code_image_size: int = 128
    patch_image_size: int = 480
    layer_norm_eps: float = 1e-5
    init_std: float = 0.02
    pad_token_id: int = 1
    bos_token_id: int = 0
    eos_token_id: int = 2
    # Length of the decoder buffer image_position_idx: 1025 in the HF/MS port, 1026 in fairseq.
    image_position_idx_len: int = 1025

    def validate(self) -> None:
        problems = []
        for enc, heads in (("encoder", self.encoder_attention_heads), ("decoder", self.decoder_attention_heads)):
            if heads <= 0 or self.d_model % heads:
                problems.append(f"d_model {self.d_model} is not divisible by {enc}_attention_heads {heads}")
        if len(self.resnet_layers) != 3 or min(self.resnet_layers) < 1:
            problems.append(f"resnet_layers must be 3 positive block counts, got {self.resnet_layers}")
        side = -(-self.patch_image_size // 16)
        if side > self.image_bucket_size:
            problems.append(
                f"patch_image_size {self.patch_image_size} gives a {side}x{side} grid, larger than "
                f"image_bucket_size {self.image_bucket_size}")
        if self.patch_image_size < 16:
            problems.append(f"patch_image_size {self.patch_image_size} is below 16")
        if self.token_bucket_size < 4 or self.max_position_embeddings < 2:
            problems.append("token_bucket_size and max_position_embeddings are too small")
        if problems:
            raise ConfigError("invalid OFA config: " + "; ".join(problems))

    @property
    def image_grid(self) -> int:
        """Side of the image token grid (ResNet stride 16, each stride-2 op rounds up)."""
        return -(-self.patch_image_size // 16)

    @property
    def max_text_length(self) -> int:
        """Longest input_ids row (bos and eos included) the position tables can hold."""
        return self.max_position_embeddings

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "OFAConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"unknown OFAConfig fields: {unknown}")
        cfg = cls(**dict(d))
        cfg.validate()
        return cfg

    def replace(self, **changes: Any) -> "OFAConfig":
        cfg = dataclasses.replace(self, **changes)
        cfg.validate()
        return cfg


def _variant(name: str, d: int, ffn: int, heads: int, enc: int, dec: int, resnet: str) -> OFAConfig:
    return OFAConfig(name=name, d_model=d, encoder_ffn_dim=ffn, decoder_ffn_dim=ffn,
                     encoder_attention_heads=heads, decoder_attention_heads=heads,
                     encoder_layers=enc, decoder_layers=dec, resnet_layers=list(RESNET_LAYERS[resnet]))


# Spec §1.2; micro is our own smallest shape for unit tests (real vocab, real 1024-channel ResNet output).
PRESETS: Dict[str, OFAConfig] = {
    "micro": OFAConfig(name="micro", d_model=32, encoder_ffn_dim=64, decoder_ffn_dim=64,
                       encoder_attention_heads=2, decoder_attention_heads=2, encoder_layers=1,
                       decoder_layers=1, resnet_layers=[1, 1, 1], patch_image_size=64),
    "tiny": _variant("tiny", 256, 1024, 4, 4, 4, "resnet50"),
    "medium": _variant("medium", 512, 2048, 8, 4, 4, "resnet101"),
    "base": _variant("base", 768, 3072, 12, 6, 6, "resnet101"),
    "large": _variant("large", 1024, 4096, 16, 12, 12, "resnet152"),
    "huge": _variant("huge", 1280, 5120, 16, 24, 12, "resnet152"),
}


def preset(name: str, **changes: Any) -> OFAConfig:
    """A copy of the named preset with optional field changes."""
    if name not in PRESETS:
        raise ConfigError(f"unknown config {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name].replace(**changes)


# HF config.json switches this port implements only at one value: name -> (accepted values).
_FIXED_SWITCHES: Dict[str, tuple] = {
    "normformer": (True,),
    "layernorm_embedding": (True,),
    "patch_layernorm_embedding": (True,),
    "code_layernorm_embedding": (True,),
    "scale_embedding": (False,),
    "add_type_embedding": (True,),
    "share_decoder_input_output_embed": (True,),
    "share_attn_bias": (False,),
    "entangle_position_embedding": (False,),
    "use_ofasys": (False, None),
    "encoder_normalize_before": (True,),
    "decoder_normalize_before": (True,),
    "activation_function": ("gelu",),
    "interpolate_position": (False,),
    "use_gamma_feature": (False,),
    "exclude_mlp": (True,),
    "temperature_init_value": (None,),
}

_REQUIRED = ("d_model", "encoder_layers", "decoder_layers", "encoder_attention_heads",
             "decoder_attention_heads", "encoder_ffn_dim", "decoder_ffn_dim", "vocab_size", "resnet_type")


def from_hf_config(d: Mapping[str, Any], name: str = "checkpoint", patch_image_size: int = 480) -> OFAConfig:
    """Build a config from an HF/ModelScope ``config.json`` dict; unsupported switches are errors."""
    missing = [k for k in _REQUIRED if k not in d]
    if missing:
        raise ConfigError(f"config.json lacks required fields {missing} (the ModelScope defaults are "
                          "medium-like, so they are not guessed)")
    bad = [f"{k}={d[k]!r} (supported: {ok})" for k, ok in _FIXED_SWITCHES.items() if k in d and d[k] not in ok]
    if bad:
        raise ConfigError("config.json selects variants this port does not implement: " + ", ".join(bad))
    resnet = d["resnet_type"]
    if resnet not in RESNET_LAYERS:
        raise ConfigError(f"resnet_type {resnet!r} is not supported; choose one of {sorted(RESNET_LAYERS)}")
    cfg = OFAConfig(
        name=name,
        vocab_size=int(d["vocab_size"]),
        d_model=int(d["d_model"]),
        encoder_layers=int(d["encoder_layers"]),
        decoder_layers=int(d["decoder_layers"]),
        encoder_attention_heads=int(d["encoder_attention_heads"]),
        decoder_attention_heads=int(d["decoder_attention_heads"]),
        encoder_ffn_dim=int(d["encoder_ffn_dim"]),
        decoder_ffn_dim=int(d["decoder_ffn_dim"]),
        resnet_layers=list(RESNET_LAYERS[resnet]),
        max_position_embeddings=int(d.get("max_position_embeddings", 1024)),
        token_bucket_size=int(d.get("token_bucket_size", 256)),
        image_bucket_size=int(d.get("image_bucket_size", 42)),
        attn_scale_factor=float(d.get("attn_scale_factor", 2.0)),
        code_image_size=int(d.get("code_image_size", 128)),
        patch_image_size=int(patch_image_size),
        init_std=float(d.get("init_std", 0.02)),
        pad_token_id=int(d.get("pad_token_id", 1)),
        bos_token_id=int(d.get("bos_token_id", 0)),
        eos_token_id=int(d.get("eos_token_id", 2)),
    )
    cfg.validate()
    return cfg


def to_hf_config(cfg: OFAConfig) -> Dict[str, Any]:
    """The HF-style ``config.json`` content for ``cfg`` (the inverse of :func:`from_hf_config`)."""
    resnet = next((k for k, v in RESNET_LAYERS.items() if v == list(cfg.resnet_layers) and k != "resnet34"), None)
    out: Dict[str, Any] = {
        "model_type": "ofa",
        "vocab_size": cfg.vocab_size, "d_model": cfg.d_model,
        "encoder_layers": cfg.encoder_layers, "decoder_layers": cfg.decoder_layers,
        "encoder_attention_heads": cfg.encoder_attention_heads,
        "decoder_attention_heads": cfg.decoder_attention_heads,
        "encoder_ffn_dim": cfg.encoder_ffn_dim, "decoder_ffn_dim": cfg.decoder_ffn_dim,
        "resnet_type": resnet, "max_position_embeddings": cfg.max_position_embeddings,
        "token_bucket_size": cfg.token_bucket_size, "image_bucket_size": cfg.image_bucket_size,
        "attn_scale_factor": cfg.attn_scale_factor, "code_image_size": cfg.code_image_size,
        "pad_token_id": cfg.pad_token_id, "bos_token_id": cfg.bos_token_id, "eos_token_id": cfg.eos_token_id,
    }
    out.update({k: v[0] for k, v in _FIXED_SWITCHES.items()})
    return out


def load_json(path: str) -> Dict[str, Any]:
    with open(path, "r", encoding="utf-8") as f:
        return json.load(f)
