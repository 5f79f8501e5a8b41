"""One Whisper-style pre-LN audio encoder, configured two ways (spec §4a, §4b).

* GLM-4-Voice speech tokenizer (``GLMSpeechTokenizer``): causal convs (left pad 2),
  learned positions [0:T), only the ``quantize_position`` layers, block-causal
  attention (block 200) with a key padding mask, average pool ×4, no final
  LayerNorm, then nearest-codebook VQ → discrete 12.5 Hz codes.
* Whisper-large-v3 encoder (``WhisperEncoder``): symmetric convs (pad 1), all 1500
  positions, full attention over padded 30-s windows, final LayerNorm.

Module and parameter names equal the checkpoints' key names, so the state dicts
load with ``strict=True`` and nothing is renamed by hand.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from kimi_model.constants import BLOCK_CAUSAL_SIZE, N_MELS

EAGER_SCORE_ELEMENTS = 4 * 2**20  # ~16 MB of fp32 scores per chunk: cache-friendly, measured fastest on CPU


@dataclass(frozen=True)
class EncoderConfig:
    d_model: int
    heads: int
    ffn: int
    layers: int
    n_mels: int = N_MELS
    max_positions: int = 1500
    causal_conv: bool = False
    block_size: int | None = None  # block-causal attention when set, full attention otherwise
    final_norm: bool = True

    @classmethod
    def whisper(cls, cfg: dict) -> "EncoderConfig":
        return cls(d_model=int(cfg["d_model"]), heads=int(cfg["encoder_attention_heads"]),
                   ffn=int(cfg["encoder_ffn_dim"]), layers=int(cfg["encoder_layers"]),
                   n_mels=int(cfg.get("num_mel_bins", N_MELS)),
                   max_positions=int(cfg.get("max_source_positions", 1500)))

    @classmethod
    def glm(cls, cfg: dict) -> "EncoderConfig":
        return cls(d_model=int(cfg["d_model"]), heads=int(cfg["encoder_attention_heads"]),
                   ffn=int(cfg["encoder_ffn_dim"]), layers=int(cfg["quantize_position"]),
                   n_mels=int(cfg.get("num_mel_bins", N_MELS)),
                   max_positions=int(cfg.get("max_source_positions", 1500)),
                   causal_conv=bool(cfg.get("encoder_causal_convolution", True)),
                   block_size=int(cfg.get("quantize_causal_block_size") or BLOCK_CAUSAL_SIZE),
                   final_norm=False)


class SelfAttention(nn.Module):
    """Multi-head self-attention; q is scaled by head_dim^-0.5 before the product.

    ``impl`` "eager" is the reference's own math (softmax(q·kᵀ + mask)·v) and
    reproduces its fp32 output bit for bit; "sdpa" is the fused kernel (faster,
    no T×T buffer, ~1e-6 different per value) used on GPU where the reference ran fused
    attention in bf16 anyway. ``mask`` is boolean for sdpa, additive for eager.
    """

    impl: str = "eager"

    def __init__(self, d: int, heads: int):
        super().__init__()
        self.heads, self.head_dim = heads, d // heads
        self.scaling = self.head_dim ** -0.5
        self.q_proj = nn.Linear(d, d)
        self.k_proj = nn.Linear(d, d, bias=False)
        self.v_proj = nn.Linear(d, d)
        self.out_proj = nn.Linear(d, d)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        b, t, d = x.shape
        split = lambda y: y.view(b, t, self.heads, self.head_dim).transpose(1, 2)  # noqa: E731
        q = split(self.q_proj(x) * self.scaling)
        k, v = split(self.k_proj(x)), split(self.v_proj(x))
        if self.impl == "sdpa":
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=1.0)
        else:
            # Row chunks bound the [rows, heads, T, T] score buffer.
            rows = max(1, EAGER_SCORE_ELEMENTS // (self.heads * t * t))
            out = torch.cat([self._eager(q[i : i + rows], k[i : i + rows], v[i : i + rows],
                                         None if mask is None else mask[i : i + rows])
                             for i in range(0, b, rows)])
        return self.out_proj(out.transpose(1, 2).reshape(b, t, d))

    @staticmethod
    def _eager(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        scores = q @ k.transpose(-1, -2)
        if mask is not None:
            scores = scores + mask
        return torch.softmax(scores, dim=-1) @ v


class EncoderLayer(nn.Module):
    """Pre-LN block: x + Attn(LN(x)), then x + FC2(GELU(FC1(LN(x))))."""

    def __init__(self, d: int, heads: int, ffn: int):
        super().__init__()
        self.self_attn_layer_norm = nn.LayerNorm(d)
        self.self_attn = SelfAttention(d, heads)
        self.final_layer_norm = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, ffn)
        self.fc2 = nn.Linear(ffn, d)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        x = x + self.self_attn(self.self_attn_layer_norm(x), mask)
        return x + self.fc2(F.gelu(self.fc1(self.final_layer_norm(x))))


class AudioEncoder(nn.Module):
    """Conv stem (stride 1, then 2) + positions + pre-LN layers (+ final LN)."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.cfg = cfg
        pad = 0 if cfg.causal_conv else 1  # causal convs are left-padded by hand
        self.conv1 = nn.Conv1d(cfg.n_mels, cfg.d_model, 3, padding=pad)
        self.conv2 = nn.Conv1d(cfg.d_model, cfg.d_model, 3, stride=2, padding=pad)
        self.embed_positions = nn.Embedding(cfg.max_positions, cfg.d_model)
        self.layers = nn.ModuleList(EncoderLayer(cfg.d_model, cfg.heads, cfg.ffn) for _ in range(cfg.layers))
        self.layer_norm = nn.LayerNorm(cfg.d_model) if cfg.final_norm else None

    @property
    def attention_impl(self) -> str:
        return self.layers[0].self_attn.impl if len(self.layers) else "eager"

    def set_attention_impl(self, impl: str) -> None:
        if impl not in ("eager", "sdpa"):
            raise ValueError(f"attention impl must be 'eager' or 'sdpa', not {impl!r}")
        for layer in self.layers:
            layer.self_attn.impl = impl

    def _conv(self, conv: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
        if self.cfg.causal_conv:
            x = F.pad(x, (2, 0))
        return F.gelu(conv(x))

    def encode(self, mel: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """[B, n_mels, T_mel] → [B, ceil(T_mel/2), d]; ``mask`` [B, 1, T, T] bool (True = may attend)."""
        x = self._conv(self.conv2, self._conv(self.conv1, mel)).transpose(1, 2)
        x = x + self.embed_positions.weight[: x.shape[1]]
        if mask is not None and self.attention_impl == "eager":
            mask = torch.zeros(mask.shape, dtype=x.dtype, device=x.device).masked_fill(~mask, torch.finfo(x.dtype).min)
        for layer in self.layers:
            x = layer(x, mask)
        return self.layer_norm(x) if self.layer_norm is not None else x


def block_causal_mask(valid: torch.Tensor, block: int) -> torch.Tensor:
    """[B, T] key validity → [B, 1, T, T] mask: query i sees key j iff
    (j ≤ i or ⌊i/block⌋ = ⌊j/block⌋) and j is a real (non-padding) frame."""
    t = valid.shape[1]
    idx = torch.arange(t, device=valid.device)
    allowed = (idx[None, :] <= idx[:, None]) | ((idx[:, None] // block) == (idx[None, :] // block))
    return (allowed[None] & valid[:, None, :].bool())[:, None]


def avg_pool_time(x: torch.Tensor, k: int) -> torch.Tensor:
    """[B, T, d] → [B, ceil(T/k), d]: mean of k consecutive frames, right-zero-padded to a multiple of k."""
    rem = (-x.shape[1]) % k
    if rem:
        x = F.pad(x, (0, 0, 0, rem))
    return x.view(x.shape[0], -1, k, x.shape[2]).mean(dim=2)


def nearest_code(x: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Argmin over codes of ‖x‖² + ‖c‖² − 2x·c; ties go to the lowest index."""
    dist = x.pow(2).sum(-1, keepdim=True) + codebook.pow(2).sum(-1) - 2.0 * (x @ codebook.t())
    return dist.argmin(dim=-1)


class GLMSpeechTokenizer(AudioEncoder):
    """GLM-4-Voice ``WhisperVQEncoder`` up to its quantizer: mel → 12.5 Hz codes."""

    def __init__(self, cfg: EncoderConfig, codebook_size: int, pool: int = 4):
        super().__init__(cfg)
        self.pool = pool
        self.codebook = nn.Embedding(codebook_size, cfg.d_model)

    @classmethod
    def from_config(cls, cfg: dict) -> "GLMSpeechTokenizer":
        return cls(EncoderConfig.glm(cfg), int(cfg["quantize_vocab_size"]), int(cfg.get("pooling_kernel_size") or 4))

    def forward(self, mel: torch.Tensor, n_samples: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """mel [B, n_mels, T_mel], real sample count per row → (codes [B, G], keep [B, G] bool).

        Frame f of the encoder is real iff its first sample 320·f < n; pooled group g
        is kept iff its first frame is real, i.e. ceil(n/1280) codes per row.
        """
        t_enc = (mel.shape[-1] + 1) // 2
        starts = torch.arange(t_enc, device=mel.device) * (2 * 160)
        valid = starts[None, :] < n_samples[:, None].to(mel.device)
        mask = block_causal_mask(valid, self.cfg.block_size or BLOCK_CAUSAL_SIZE)
        h = avg_pool_time(self.encode(mel, mask), self.pool)
        codes = nearest_code(h.float(), self.codebook.weight.float())
        keep = valid[:, :: self.pool][:, : codes.shape[1]]
        return codes, keep


class WhisperEncoder(AudioEncoder):
    """Whisper-large-v3 encoder as used for Kimi's continuous features."""

    @classmethod
    def from_config(cls, cfg: dict) -> "WhisperEncoder":
        return cls(EncoderConfig.whisper(cfg))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """[B, n_mels, 3000] → last_hidden_state [B, 1500, d]; full attention, no mask."""
        return self.encode(mel, None)
