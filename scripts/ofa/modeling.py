"""OFA encoder-decoder in plain PyTorch (docs/ofa-visual-entailment.md §2), written to be scriptable by ``torch.jit.script``.

Module and parameter names reproduce the HF/ModelScope port, so ``state_dict()`` has exactly the key set
of docs/ofa-visual-entailment.md §4.2.  Positions enter only as additive attention biases (absolute ``LN(pos)Wq·(LN(pos)Wk)^T``
shared by the layers, plus per-layer relative-position tables).  Masks are always built (no data-dependent
branches), attention softmax, LayerNorm and GELU run in float32 whatever the weight dtype.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .buckets import (image_bucket_grid, image_num_relative_distance, image_position_ids,
                      make_image_bucket_position, make_image_position_idx, make_token_bucket_position,
                      token_bucket)
from .config import OFAConfig
from .resnet import ResNet

RESNET_CHANNELS = 1024  # layer3 of every ResNet variant: 256 planes x 4


class LayerNorm(nn.LayerNorm):
    """nn.LayerNorm computed in float32 and cast back (fp16/bf16 exports keep fp32 statistics)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x.float(), self.normalized_shape, self.weight.float(), self.bias.float(),
                            self.eps).to(x.dtype)


def _gelu(x: torch.Tensor) -> torch.Tensor:
    return F.gelu(x.float()).to(x.dtype)


class Attention(nn.Module):
    """Multi-head attention with an additive fp32 bias, key padding mask and a per-head output scale c_attn."""

    def __init__(self, d_model: int, heads: int, scale_factor: float, device: Optional[torch.device] = None) -> None:
        super().__init__()
        self.num_heads = heads
        self.head_dim = d_model // heads
        self.scaling = float(self.head_dim * scale_factor) ** -0.5
        self.q_proj = nn.Linear(d_model, d_model, device=device)
        self.k_proj = nn.Linear(d_model, d_model, device=device)
        self.v_proj = nn.Linear(d_model, d_model, device=device)
        self.out_proj = nn.Linear(d_model, d_model, device=device)
        self.c_attn = nn.Parameter(torch.ones(heads, device=device))

    def forward(self, x: torch.Tensor, kv: torch.Tensor, bias: torch.Tensor,
                key_padding_mask: torch.Tensor) -> torch.Tensor:
        """x [B,T,d] queries, kv [B,S,d], bias fp32 [1|B,H,T,S], key_padding_mask bool [B,S] (True = pad)."""
        b, t, d = x.shape
        s = kv.size(1)
        q = (self.q_proj(x) * self.scaling).view(b, t, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(kv).view(b, s, self.num_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(kv).view(b, s, self.num_heads, self.head_dim).transpose(1, 2)
        logits = torch.matmul(q, k.transpose(2, 3)).float() + bias
        logits = logits.masked_fill(key_padding_mask[:, None, None, :], float("-inf"))
        probs = torch.softmax(logits, dim=-1).to(v.dtype)
        out = torch.matmul(probs, v).transpose(1, 2)  # [B, T, H, hd]
        out = out * self.c_attn.view(1, 1, self.num_heads, 1)
        return self.out_proj(out.reshape(b, t, d))


class EncoderLayer(nn.Module):
    """Pre-LN NormFormer layer: LN -> attn -> mid-LN -> residual; LN -> fc1 -> GELU -> LN(ffn) -> fc2 -> residual."""

    def __init__(self, cfg: OFAConfig, device: Optional[torch.device] = None) -> None:
        super().__init__()
        d, eps = cfg.d_model, cfg.layer_norm_eps
        self.self_attn = Attention(d, cfg.encoder_attention_heads, cfg.attn_scale_factor, device)
        self.self_attn_layer_norm = LayerNorm(d, eps=eps, device=device)
        self.self_attn_mid_layer_norm = LayerNorm(d, eps=eps, device=device)
        self.fc1 = nn.Linear(d, cfg.encoder_ffn_dim, device=device)
        self.fc2 = nn.Linear(cfg.encoder_ffn_dim, d, device=device)
        self.ffn_layer_norm = LayerNorm(cfg.encoder_ffn_dim, eps=eps, device=device)
        self.final_layer_norm = LayerNorm(d, eps=eps, device=device)

    def forward(self, x: torch.Tensor, bias: torch.Tensor, padding_mask: torch.Tensor) -> torch.Tensor:
        h = self.self_attn_layer_norm(x)
        h = self.self_attn_mid_layer_norm(self.self_attn(h, h, bias, padding_mask))
        x = x + h
        h = _gelu(self.fc1(self.final_layer_norm(x)))
        return x + self.fc2(self.ffn_layer_norm(h))


class DecoderLayer(nn.Module):
    """Pre-LN NormFormer decoder layer: self-attention, cross-attention, FFN (docs/ofa-visual-entailment.md §2.6)."""

    def __init__(self, cfg: OFAConfig, device: Optional[torch.device] = None) -> None:
        super().__init__()
        d, eps = cfg.d_model, cfg.layer_norm_eps
        heads = cfg.decoder_attention_heads
        self.self_attn = Attention(d, heads, cfg.attn_scale_factor, device)
        self.self_attn_layer_norm = LayerNorm(d, eps=eps, device=device)
        self.self_attn_mid_layer_norm = LayerNorm(d, eps=eps, device=device)
        self.cross_attn = Attention(d, heads, cfg.attn_scale_factor, device)
        self.cross_attn_layer_norm = LayerNorm(d, eps=eps, device=device)
        self.cross_attn_mid_layer_norm = LayerNorm(d, eps=eps, device=device)
        self.fc1 = nn.Linear(d, cfg.decoder_ffn_dim, device=device)
        self.fc2 = nn.Linear(cfg.decoder_ffn_dim, d, device=device)
        self.ffn_layer_norm = LayerNorm(cfg.decoder_ffn_dim, eps=eps, device=device)
        self.final_layer_norm = LayerNorm(d, eps=eps, device=device)

    def forward(self, x: torch.Tensor, self_bias: torch.Tensor, self_padding_mask: torch.Tensor,
                enc: torch.Tensor, cross_bias: torch.Tensor, enc_padding_mask: torch.Tensor) -> torch.Tensor:
        h = self.self_attn_layer_norm(x)
        x = x + self.self_attn_mid_layer_norm(self.self_attn(h, h, self_bias, self_padding_mask))
        h = self.cross_attn_layer_norm(x)
        x = x + self.cross_attn_mid_layer_norm(self.cross_attn(h, enc, cross_bias, enc_padding_mask))
        h = _gelu(self.fc1(self.final_layer_norm(x)))
        return x + self.fc2(self.ffn_layer_norm(h))


def _pos_bias(q: torch.Tensor, k: torch.Tensor, heads: int, scaling: float) -> torch.Tensor:
    """Absolute position bias (q * scaling) k^T per head from projected positions q [T,d], k [S,d]
    -> fp32 [1,H,T,S]."""
    t, s = q.size(0), k.size(0)
    qh = (q * scaling).view(t, heads, -1).transpose(0, 1)
    kh = k.view(s, heads, -1).transpose(0, 1)
    return torch.matmul(qh, kh.transpose(1, 2)).float().unsqueeze(0)


def _relative_bias(table: torch.Tensor, bucket: torch.Tensor) -> torch.Tensor:
    """Per-head relative bias: table [R, H] indexed by bucket [T, S] -> fp32 [H, T, S]."""
    return F.embedding(bucket, table).permute(2, 0, 1).float()


class Encoder(nn.Module):
    """Image (ResNet) + text encoder; image tokens come first in the sequence."""

    def __init__(self, cfg: OFAConfig, embed_tokens: nn.Embedding, device: Optional[torch.device] = None) -> None:
        super().__init__()
        d, eps, heads = cfg.d_model, cfg.layer_norm_eps, cfg.encoder_attention_heads
        self.num_heads = heads
        self.pad_id = cfg.pad_token_id
        self.token_bucket_size = cfg.token_bucket_size
        self.max_position = cfg.max_position_embeddings
        self.image_bucket_size = cfg.image_bucket_size
        self.pos_scaling = float(d / heads * cfg.attn_scale_factor) ** -0.5
        self.embed_tokens = embed_tokens
        self.type_embedding = nn.Embedding(2, d, device=device)
        self.embed_images = ResNet(cfg.resnet_layers, device=device)
        self.image_proj = nn.Linear(RESNET_CHANNELS, d, device=device)
        self.patch_layernorm_embedding = LayerNorm(d, eps=eps, device=device)
        self.layernorm_embedding = LayerNorm(d, eps=eps, device=device)
        self.embed_positions = nn.Embedding(cfg.max_position_embeddings + 2, d, device=device)
        self.embed_image_positions = nn.Embedding(cfg.image_bucket_size ** 2 + 1, d, device=device)
        self.pos_ln = LayerNorm(d, eps=eps, device=device)
        self.image_pos_ln = LayerNorm(d, eps=eps, device=device)
        self.pos_q_linear = nn.Linear(d, d, device=device)
        self.pos_k_linear = nn.Linear(d, d, device=device)
        self.layers = nn.ModuleList([EncoderLayer(cfg, device) for _ in range(cfg.encoder_layers)])
        self.layer_norm = LayerNorm(d, eps=eps, device=device)
        self.token_rel_pos_table_list = nn.ModuleList(
            [nn.Embedding(2 * cfg.token_bucket_size - 1, heads, device=device) for _ in range(cfg.encoder_layers)])
        n_img = image_num_relative_distance(cfg.image_bucket_size)
        self.image_rel_pos_table_list = nn.ModuleList(
            [nn.Embedding(n_img, heads, device=device) for _ in range(cfg.encoder_layers)])
        # Persistent like the reference (checkpoints carry them); forward recomputes the same values on the fly.
        self.register_buffer("token_rp_bucket", make_token_bucket_position(
            cfg.token_bucket_size, cfg.max_position_embeddings).to(device))
        self.register_buffer("image_rp_bucket", make_image_bucket_position(cfg.image_bucket_size).to(device))

    def forward(self, input_ids: torch.Tensor, patch_images: torch.Tensor
                ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> (hidden [B,N,d], padding mask bool [B,N], LN'd positions [N,d]) with N = h*w + L."""
        feat = self.embed_images(patch_images)
        h, w = feat.size(2), feat.size(3)
        n_img = h * w
        bsz, length = input_ids.size(0), input_ids.size(1)
        device = input_ids.device
        img_x = self.image_proj(feat.flatten(2).transpose(1, 2)) + self.type_embedding.weight[1]
        img_x = self.patch_layernorm_embedding(img_x)
        txt_x = self.layernorm_embedding(self.embed_tokens(input_ids) + self.type_embedding.weight[0])
        x = torch.cat([img_x, txt_x], dim=1)
        padding_mask = torch.cat([torch.zeros(bsz, n_img, dtype=torch.bool, device=device),
                                  input_ids.eq(self.pad_id)], dim=1)
        x = x * (1 - padding_mask.unsqueeze(-1).to(x.dtype))

        txt_pos = self.pos_ln(self.embed_positions(torch.arange(length, device=device)))
        pid = image_position_ids(h, w, self.image_bucket_size, device)
        img_pos = self.image_pos_ln(self.embed_image_positions(pid))
        pos = torch.cat([img_pos, txt_pos], dim=0)
        abs_bias = _pos_bias(self.pos_q_linear(pos), self.pos_k_linear(pos), self.num_heads, self.pos_scaling)

        txt_idx = torch.arange(length, device=device)
        txt_bucket = token_bucket(txt_idx[:, None] - txt_idx[None, :], self.token_bucket_size, self.max_position)
        img_bucket = image_bucket_grid(h, w, self.image_bucket_size, device)
        for layer, ttab, itab in zip(self.layers, self.token_rel_pos_table_list, self.image_rel_pos_table_list):
            rel_img = F.pad(_relative_bias(itab.weight, img_bucket), [0, length])   # [H, n_img, N]
            rel_txt = F.pad(_relative_bias(ttab.weight, txt_bucket), [n_img, 0])    # [H, L, N]
            bias = abs_bias + torch.cat([rel_img, rel_txt], dim=1).unsqueeze(0)
            x = layer(x, bias, padding_mask)
        return self.layer_norm(x), padding_mask, pos


class Decoder(nn.Module):
    """Text decoder with causal self-attention and cross-attention onto the encoder output."""

    def __init__(self, cfg: OFAConfig, embed_tokens: nn.Embedding, device: Optional[torch.device] = None) -> None:
        super().__init__()
        d, eps, heads = cfg.d_model, cfg.layer_norm_eps, cfg.decoder_attention_heads
        self.num_heads = heads
        self.pad_id = cfg.pad_token_id
        self.token_bucket_size = cfg.token_bucket_size
        self.max_position = cfg.max_position_embeddings
        self.pos_scaling = float(d / heads * cfg.attn_scale_factor) ** -0.5
        self.embed_tokens = embed_tokens
        self.layernorm_embedding = LayerNorm(d, eps=eps, device=device)
        self.code_layernorm_embedding = LayerNorm(d, eps=eps, device=device)  # image-code tokens only
        self.embed_positions = nn.Embedding(cfg.max_position_embeddings + 2, d, device=device)
        self.embed_image_positions = nn.Embedding(cfg.image_bucket_size ** 2 + 1, d, device=device)  # unused
        self.pos_ln = LayerNorm(d, eps=eps, device=device)
        self.image_pos_ln = LayerNorm(d, eps=eps, device=device)  # unused for VE
        self.self_pos_q_linear = nn.Linear(d, d, device=device)
        self.self_pos_k_linear = nn.Linear(d, d, device=device)
        self.cross_pos_q_linear = nn.Linear(d, d, device=device)
        self.cross_pos_k_linear = nn.Linear(d, d, device=device)
        self.layers = nn.ModuleList([DecoderLayer(cfg, device) for _ in range(cfg.decoder_layers)])
        self.layer_norm = LayerNorm(d, eps=eps, device=device)
        self.token_rel_pos_table_list = nn.ModuleList(
            [nn.Embedding(2 * cfg.token_bucket_size - 1, heads, device=device) for _ in range(cfg.decoder_layers)])
        n_img = image_num_relative_distance(cfg.image_bucket_size)
        self.image_rel_pos_table_list = nn.ModuleList(
            [nn.Embedding(n_img, heads, device=device) for _ in range(cfg.decoder_layers)])  # unused for VE
        self.output_projection = nn.Linear(d, cfg.vocab_size, bias=False, device=device)
        self.output_projection.weight = embed_tokens.weight
        self.register_buffer("token_rp_bucket", make_token_bucket_position(
            cfg.token_bucket_size, cfg.max_position_embeddings).to(device))
        self.register_buffer("image_rp_bucket", make_image_bucket_position(cfg.image_bucket_size).to(device))
        self.register_buffer("image_position_idx", make_image_position_idx(
            cfg.code_image_size, cfg.image_bucket_size, cfg.image_position_idx_len).to(device))

    def hidden(self, prev_output_tokens: torch.Tensor, enc: torch.Tensor, enc_padding_mask: torch.Tensor,
               enc_pos: torch.Tensor) -> torch.Tensor:
        """Final-LN'd decoder states [B,T,d] for right-padded ``prev_output_tokens`` [B,T]."""
        t = prev_output_tokens.size(1)
        device = prev_output_tokens.device
        x = self.layernorm_embedding(self.embed_tokens(prev_output_tokens))
        tgt_pos = self.pos_ln(self.embed_positions(torch.arange(t, device=device)))
        causal = torch.triu(torch.full((t, t), float("-inf"), device=device), diagonal=1)
        self_abs = _pos_bias(self.self_pos_q_linear(tgt_pos), self.self_pos_k_linear(tgt_pos),
                             self.num_heads, self.pos_scaling) + causal
        cross_bias = _pos_bias(self.cross_pos_q_linear(tgt_pos), self.cross_pos_k_linear(enc_pos),
                               self.num_heads, self.pos_scaling)
        idx = torch.arange(t, device=device)
        bucket = token_bucket(idx[:, None] - idx[None, :], self.token_bucket_size, self.max_position)
        self_padding_mask = prev_output_tokens.eq(self.pad_id)
        for layer, ttab in zip(self.layers, self.token_rel_pos_table_list):
            self_bias = self_abs + _relative_bias(ttab.weight, bucket).unsqueeze(0)
            x = layer(x, self_bias, self_padding_mask, enc, cross_bias, enc_padding_mask)
        return self.layer_norm(x)

    def forward(self, prev_output_tokens: torch.Tensor, enc: torch.Tensor, enc_padding_mask: torch.Tensor,
                enc_pos: torch.Tensor) -> torch.Tensor:
        """Full-vocabulary logits [B,T,V] (fp32)."""
        return self.output_projection(self.hidden(prev_output_tokens, enc, enc_padding_mask, enc_pos)).float()


class OFAModel(nn.Module):
    """The OFA encoder-decoder. ``state_dict()`` keys are the HF/ModelScope names (docs/ofa-visual-entailment.md §4.2)."""

    def __init__(self, cfg: OFAConfig, device: Optional[torch.device] = None) -> None:
        super().__init__()
        cfg.validate()
        self.config = cfg
        shared = nn.Embedding(cfg.vocab_size, cfg.d_model, padding_idx=cfg.pad_token_id, device=device)
        self.encoder = Encoder(cfg, shared, device)
        self.decoder = Decoder(cfg, shared, device)

    def tie_weights(self) -> None:
        """Make encoder/decoder embed_tokens and the output projection one Parameter again."""
        self.decoder.embed_tokens = self.encoder.embed_tokens
        self.decoder.output_projection.weight = self.encoder.embed_tokens.weight

    def reset_buffers(self) -> None:
        """Recompute the index buffers (after ``to_empty`` or to repair a checkpoint's copies)."""
        cfg = self.config
        for mod in (self.encoder, self.decoder):
            if "token_rp_bucket" in mod._buffers:
                mod.token_rp_bucket = make_token_bucket_position(
                    cfg.token_bucket_size, cfg.max_position_embeddings).to(mod.token_rp_bucket.device)
            if "image_rp_bucket" in mod._buffers:
                mod.image_rp_bucket = make_image_bucket_position(cfg.image_bucket_size).to(mod.image_rp_bucket.device)
        if "image_position_idx" in self.decoder._buffers:
            buf = self.decoder.image_position_idx
            self.decoder.image_position_idx = make_image_position_idx(
                cfg.code_image_size, cfg.image_bucket_size, buf.numel()).to(buf.device)

    def drop_index_buffers(self) -> None:
        """Remove the big index buffers (forward recomputes them), e.g. before export (saves ~66 MB)."""
        for mod in (self.encoder, self.decoder):
            for name in ("token_rp_bucket", "image_rp_bucket", "image_position_idx"):
                mod._buffers.pop(name, None)

    def forward(self, input_ids: torch.Tensor, patch_images: torch.Tensor,
                prev_output_tokens: torch.Tensor) -> torch.Tensor:
        enc, enc_mask, enc_pos = self.encoder(input_ids, patch_images)
        return self.decoder(prev_output_tokens, enc, enc_mask, enc_pos)


INDEX_BUFFERS = ("encoder.token_rp_bucket", "encoder.image_rp_bucket", "decoder.token_rp_bucket",
                 "decoder.image_rp_bucket", "decoder.image_position_idx")


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def init_weights(model: OFAModel, seed: int, std: Optional[float] = None, perturb_norms: bool = False) -> None:
    """Deterministic random init in the style of the HF port: Linear/Embedding ~ N(0, std), biases 0,
    norms identity, convs Kaiming.  ``perturb_norms`` also randomises LayerNorm/BatchNorm affine
    parameters, BN running statistics and c_attn, so that tests exercise every parameter."""
    std = model.config.init_std if std is None else std
    with _seeded(seed), torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, nn.Linear):
                mod.weight.normal_(0.0, std)
                if mod.bias is not None:
                    mod.bias.zero_() if not perturb_norms else mod.bias.normal_(0.0, std)
            elif isinstance(mod, nn.Embedding):
                mod.weight.normal_(0.0, std)
                if mod.padding_idx is not None:
                    mod.weight[mod.padding_idx].zero_()
            elif isinstance(mod, nn.Conv2d):
                nn.init.kaiming_normal_(mod.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(mod, (nn.LayerNorm, nn.BatchNorm2d)):
                mod.weight.fill_(1.0)
                mod.bias.zero_()
                if perturb_norms:
                    mod.weight.uniform_(0.5, 1.5)
                    mod.bias.normal_(0.0, 0.1)
                if isinstance(mod, nn.BatchNorm2d):
                    mod.running_mean.zero_()
                    mod.running_var.fill_(1.0)
                    mod.num_batches_tracked.zero_()
                    if perturb_norms:
                        mod.running_mean.normal_(0.0, 0.1)
                        mod.running_var.uniform_(0.5, 2.0)
            elif isinstance(mod, Attention):
                mod.c_attn.fill_(1.0)
                if perturb_norms:
                    mod.c_attn.uniform_(0.5, 1.5)
        # The Linear loop re-drew the tied output projection; keep the embedding's pad row zero.
        emb = model.encoder.embed_tokens
        if emb.padding_idx is not None:
            emb.weight[emb.padding_idx].zero_()


def build_model(cfg: OFAConfig, init: str = "random", seed: int = 0, device: str = "cpu",
                dtype: torch.dtype = torch.float32) -> OFAModel:
    """Build an OFAModel in eval mode without paying for PyTorch's default init.

    ``init``: ``random`` (seeded :func:`init_weights`), ``empty`` (uninitialised memory, to be filled by
    a checkpoint) or ``meta`` (shapes only, no memory: for key/shape/parameter-count checks).
    """
    if init not in ("random", "empty", "meta"):
        raise ValueError(f"init must be random, empty or meta, not {init!r}")
    model = OFAModel(cfg, device=torch.device("meta"))
    if init != "meta":
        model = model.to_empty(device=torch.device(device))
        model.tie_weights()
        model.reset_buffers()
        if init == "random":
            init_weights(model, seed)
        else:
            with torch.no_grad():  # BN counters must be valid even if a checkpoint lacks them
                for mod in model.modules():
                    if isinstance(mod, nn.BatchNorm2d):
                        mod.num_batches_tracked.zero_()
    else:
        model.tie_weights()
    if dtype != torch.float32:
        model = model.to(dtype)
    return model.eval()


def unique_parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def encoder_decoder_prompt(input_ids: torch.Tensor, pad_id: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """prompt_type prev_output: decoder input = each row's tokens minus its final token (the </s>),
    right-padded to L-1; and the index of each row's last decoder position (length - 2)."""
    length = input_ids.size(1)
    lengths = input_ids.ne(pad_id).sum(dim=1)
    keep = torch.arange(length - 1, device=input_ids.device)[None, :] < (lengths - 1)[:, None]
    dec = torch.where(keep, input_ids[:, : length - 1], torch.full_like(input_ids[:, : length - 1], pad_id))
    return dec, (lengths - 2).clamp(min=0)


def check_buffers(model: OFAModel) -> List[str]:
    """Names of index buffers whose values differ from the recomputed ones (normally empty)."""
    cfg = model.config
    bad: List[str] = []
    tok = make_token_bucket_position(cfg.token_bucket_size, cfg.max_position_embeddings)
    img = make_image_bucket_position(cfg.image_bucket_size)
    for prefix, mod in (("encoder", model.encoder), ("decoder", model.decoder)):
        if "token_rp_bucket" in mod._buffers and not torch.equal(mod.token_rp_bucket.cpu(), tok):
            bad.append(prefix + ".token_rp_bucket")
        if "image_rp_bucket" in mod._buffers and not torch.equal(mod.image_rp_bucket.cpu(), img):
            bad.append(prefix + ".image_rp_bucket")
    return bad
