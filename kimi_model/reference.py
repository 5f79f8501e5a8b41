"""Plain-PyTorch Kimi-Audio ASR forward and generation loop (no vLLM), batch 1.

Written from the spec (../shared/spec/kimi-audio-asr.md §5, §6) as the parity oracle
for the vLLM model (`kimi_model.vllm_model`) and as the `reference_loop` benchmark
baseline. It is deliberately simple: one prompt at a time, a per-layer KV cache,
no padding, no batching.

    lm = ReferenceLM.load(model_dir)                  # fp32 by default
    out = generate(lm, prompt, max_new_tokens=24)     # prompt: KimiPrompt-like
    out.token_ids                                     # sampled text ids, 151667 excluded

What it reproduces (and the vLLM model must match):
- prefill embedding x_p = a_p + E[TS_p], a_p = E[AS_p] or (E[AS_p] + A(f_p))·1.4140625
  at continuous-mask positions; E[TS] is added only if sum(TS) != 0 (§5.2);
- decode embedding E[151666] + E[t], or E[151666] alone when t == 0 (§5.5);
- Qwen2 decoder (RMSNorm, GQA attention with q/k/v bias and rotate-half RoPE,
  SwiGLU), final norm, text logits = lm_head over all 168,448 ids (§5.1, §5.3);
- the MIMO branch is not computed (exact for ASR, §5.4);
- sampler: repetition penalty over the last 16 *generated* ids only when step
  i > 16, log_softmax in fp32, greedy at T = 0, else top-k over exp(logprobs/T)
  with multinomial (§6). Stops on 151667, which is not returned.
"""
from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn.functional as F

from kimi_model import constants as K

_SKIP_PREFIXES = ("model.mimo_layers.", "mimo_output.", "model.mimo_norm.")


class PromptLike(Protocol):
    audio_ids: Sequence[int]
    text_ids: Sequence[int]
    continuous_mask: Sequence[int]
    whisper_features: torch.Tensor


def load_checkpoint_tensors(model_dir: str | Path, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """All LLM tensors of a (possibly sharded) safetensors checkpoint, MIMO and
    rotary buffers dropped, cast to ``dtype``."""
    from safetensors.torch import load_file

    model_dir = Path(model_dir)
    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    out: dict[str, torch.Tensor] = {}
    for name in files:
        for key, tensor in load_file(str(model_dir / name)).items():
            if key.startswith(_SKIP_PREFIXES) or key.endswith("rotary_emb.inv_freq"):
                continue
            out[key] = tensor.to(dtype)
    return out


def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    # HF Qwen2RMSNorm: normalise in fp32, cast back, then scale.
    dtype = x.dtype
    h = x.float()
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return weight * h.to(dtype)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


@dataclass
class _Layer:
    q_w: torch.Tensor
    q_b: torch.Tensor
    k_w: torch.Tensor
    k_b: torch.Tensor
    v_w: torch.Tensor
    v_b: torch.Tensor
    o_w: torch.Tensor
    ln1: torch.Tensor
    ln2: torch.Tensor
    gate: torch.Tensor
    up: torch.Tensor
    down: torch.Tensor


class KVCache:
    def __init__(self, num_layers: int) -> None:
        self.k: list[torch.Tensor | None] = [None] * num_layers
        self.v: list[torch.Tensor | None] = [None] * num_layers
        self.length = 0

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.k[layer] is None:
            self.k[layer], self.v[layer] = k, v
        else:
            self.k[layer] = torch.cat([self.k[layer], k], dim=1)
            self.v[layer] = torch.cat([self.v[layer], v], dim=1)
        return self.k[layer], self.v[layer]


class ReferenceLM:
    """The Kimi-Audio main LLM branch (28 Qwen2 layers in the real model)."""

    def __init__(self, config: dict[str, Any], tensors: dict[str, torch.Tensor], dtype: torch.dtype):
        self.config = config
        self.dtype = dtype
        self.hidden = int(config["hidden_size"])
        self.n_heads = int(config["num_attention_heads"])
        self.n_kv = int(config["num_key_value_heads"])
        self.head_dim = int(config.get("head_dim") or self.hidden // self.n_heads)
        self.eps = float(config["rms_norm_eps"])
        theta = float(config.get("rope_theta") or (config.get("rope_parameters") or {}).get("rope_theta", 1e6))
        t = tensors
        self.embed = t["model.embed_tokens.weight"]
        self.norm = t["model.norm.weight"]
        self.lm_head = t["lm_head.weight"]
        self.adaptor = (t["model.vq_adaptor.layers.0.weight"], t["model.vq_adaptor.layers.0.bias"],
                        t["model.vq_adaptor.layers.3.weight"], t["model.vq_adaptor.layers.3.bias"],
                        t["model.vq_adaptor.layers.4.weight"], t["model.vq_adaptor.layers.4.bias"])
        self.layers = []
        for i in range(int(config["num_hidden_layers"])):
            p = f"model.layers.{i}."
            self.layers.append(_Layer(
                t[p + "self_attn.q_proj.weight"], t[p + "self_attn.q_proj.bias"],
                t[p + "self_attn.k_proj.weight"], t[p + "self_attn.k_proj.bias"],
                t[p + "self_attn.v_proj.weight"], t[p + "self_attn.v_proj.bias"],
                t[p + "self_attn.o_proj.weight"],
                t[p + "input_layernorm.weight"], t[p + "post_attention_layernorm.weight"],
                t[p + "mlp.gate_proj.weight"], t[p + "mlp.up_proj.weight"], t[p + "mlp.down_proj.weight"],
            ))
        # RoPE table for max_position_embeddings positions; computed in fp32 and
        # cast to the model dtype like the reference's cached cos/sin.
        max_pos = int(config.get("max_position_embeddings", K.MAX_POSITIONS))
        inv_freq = 1.0 / (theta ** (torch.arange(0, self.head_dim, 2, dtype=torch.int64).float() / self.head_dim))
        freqs = torch.outer(torch.arange(max_pos, dtype=torch.int64).float(), inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        self.cos = emb.cos().to(dtype)
        self.sin = emb.sin().to(dtype)

    @classmethod
    def load(cls, model_dir: str | Path, dtype: torch.dtype = torch.float32) -> "ReferenceLM":
        config = json.loads((Path(model_dir) / "config.json").read_text())
        return cls(config, load_checkpoint_tensors(model_dir, dtype), dtype)

    def to(self, device: str | torch.device) -> "ReferenceLM":
        """Move every tensor (weights, RoPE tables) to ``device``: the reference_loop
        benchmark runs on the GPU too."""
        move = lambda t: t.to(device)  # noqa: E731
        self.embed, self.norm, self.lm_head = move(self.embed), move(self.norm), move(self.lm_head)
        self.adaptor = tuple(move(t) for t in self.adaptor)
        self.layers = [_Layer(*(move(getattr(layer, f)) for f in _Layer.__dataclass_fields__)) for layer in self.layers]
        self.cos, self.sin = move(self.cos), move(self.sin)
        return self

    # --- embeddings (§5.2, §5.5) ---------------------------------------------------
    def adaptor_forward(self, features: torch.Tensor) -> torch.Tensor:
        w0, b0, w3, b3, ln_w, ln_b = self.adaptor
        h = F.linear(features.to(device=w0.device, dtype=self.dtype), w0, b0)
        h = F.silu(h)
        h = F.linear(h, w3, b3)
        return F.layer_norm(h, (h.shape[-1],), ln_w, ln_b, eps=self.eps)

    def embed_prompt(self, prompt: PromptLike) -> torch.Tensor:
        dev = self.embed.device
        audio_ids = torch.as_tensor(list(prompt.audio_ids), dtype=torch.long, device=dev)
        text_ids = torch.as_tensor(list(prompt.text_ids), dtype=torch.long, device=dev)
        mask = torch.as_tensor(list(prompt.continuous_mask), dtype=torch.bool, device=dev)
        if not (len(audio_ids) == len(text_ids) == len(mask)):
            raise ValueError("audio_ids, text_ids and continuous_mask must have the same length")
        feats = prompt.whisper_features
        if feats.dim() == 3:
            feats = feats[0]
        if int(mask.sum()) != feats.shape[0]:
            raise ValueError(f"continuous mask has {int(mask.sum())} positions but {feats.shape[0]} feature rows")
        x = self.embed[audio_ids].clone()
        if feats.shape[0]:
            sqrt2 = torch.tensor(K.SQRT2_BF16, dtype=self.dtype, device=dev)
            x[mask] = (x[mask] + self.adaptor_forward(feats)) * sqrt2
        if int(text_ids.sum()) != 0:
            x = x + self.embed[text_ids]
        return x

    def embed_decode(self, token: int) -> torch.Tensor:
        x = self.embed[K.TEXT_BLANK].clone()
        if token != 0:   # sum(TS) == 0 → E[blank] alone (§5.5)
            x = x + self.embed[token]
        return x[None]

    # --- decoder (§5.1) -----------------------------------------------------------
    def forward(self, x: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """x [T, H] at positions cache.length … cache.length+T-1 → hidden after model.norm."""
        T = x.shape[0]
        start = cache.length
        cos = self.cos[start:start + T][:, None, :]
        sin = self.sin[start:start + T][:, None, :]
        groups = self.n_heads // self.n_kv
        h = x
        for i, layer in enumerate(self.layers):
            r = h
            y = _rms_norm(h, layer.ln1, self.eps)
            q = F.linear(y, layer.q_w, layer.q_b).view(T, self.n_heads, self.head_dim)
            k = F.linear(y, layer.k_w, layer.k_b).view(T, self.n_kv, self.head_dim)
            v = F.linear(y, layer.v_w, layer.v_b).view(T, self.n_kv, self.head_dim)
            q = q * cos + _rotate_half(q) * sin
            k = k * cos + _rotate_half(k) * sin
            k_all, v_all = cache.append(i, k.transpose(0, 1), v.transpose(0, 1))   # [kv, S, d]
            k_all = k_all.repeat_interleave(groups, dim=0)
            v_all = v_all.repeat_interleave(groups, dim=0)
            S = k_all.shape[1]
            scores = torch.matmul(q.transpose(0, 1).float(), k_all.transpose(1, 2).float()) / math.sqrt(self.head_dim)
            # causal: query t (absolute start+t) sees keys ≤ start+t
            qpos = torch.arange(start, start + T, device=x.device)[:, None]
            kpos = torch.arange(S, device=x.device)[None, :]
            scores = scores.masked_fill(kpos > qpos, float("-inf"))
            probs = torch.softmax(scores, dim=-1).to(self.dtype)
            attn = torch.matmul(probs, v_all).transpose(0, 1).reshape(T, self.n_heads * self.head_dim)
            h = r + F.linear(attn, layer.o_w)
            r = h
            y = _rms_norm(h, layer.ln2, self.eps)
            h = r + F.linear(F.silu(F.linear(y, layer.gate)) * F.linear(y, layer.up), layer.down)
        cache.length += T
        return _rms_norm(h, self.norm, self.eps)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return F.linear(hidden, self.lm_head)


# --- sampler (§6) ------------------------------------------------------------------
def apply_repetition_penalty(logits: torch.Tensor, generated: Sequence[int], step: int,
                             penalty: float, window: int = K.REPETITION_WINDOW) -> torch.Tensor:
    """Reference text penalty on 1-D raw logits: only when penalty > 1 and step > window;
    each distinct id of the last ``window`` generated ids is penalised once."""
    if penalty <= 1.0 or step <= window:
        return logits
    logits = logits.clone()
    for tok in set(generated[-window:]):
        v = logits[tok]
        logits[tok] = v / penalty if v >= 0 else v * penalty
    return logits


def sample_text(logits: torch.Tensor, generated: Sequence[int], step: int, *, temperature: float,
                top_k: int, repetition_penalty: float, generator: torch.Generator | None) -> int:
    logits = apply_repetition_penalty(logits, generated, step, repetition_penalty)
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    if temperature > 1e-6:
        scores = logprobs / temperature
        if top_k > 0:
            probs = torch.exp(scores)
            top_p, top_i = torch.topk(probs, top_k)
            choice = torch.multinomial(top_p, 1, generator=generator)
            return int(top_i[choice])
        return int(torch.multinomial(torch.exp(scores), 1, generator=generator))
    return int(torch.argmax(logprobs))


@dataclass
class GenerationResult:
    token_ids: list[int]                  # sampled text ids (151667 excluded)
    stopped_on_eos: bool
    prompt_length: int
    top2: list[tuple[int, float, int, float]] = field(default_factory=list)  # (id1, logit1, id2, logit2) per step
    seconds: float = 0.0


def default_max_new_tokens(prompt_length: int) -> int:
    """Reference default (7500 − L), capped so the context never exceeds 8192."""
    return max(0, min(K.REFERENCE_MAX_TOTAL_TOKENS, K.MAX_POSITIONS) - prompt_length)


@torch.inference_mode()
def generate(lm: ReferenceLM, prompt: PromptLike, max_new_tokens: int | None = None, *,
             temperature: float = 0.0, top_k: int = 5, repetition_penalty: float = 1.0,
             ignore_eos: bool = False, seed: int | None = None, record_top2: bool = False) -> GenerationResult:
    t0 = time.perf_counter()
    L = len(prompt.audio_ids)
    if max_new_tokens is None or max_new_tokens < 0:
        max_new_tokens = default_max_new_tokens(L)
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    cache = KVCache(len(lm.layers))
    x = lm.embed_prompt(prompt)
    out: list[int] = []
    top2: list[tuple[int, float, int, float]] = []
    stopped = False
    for step in range(max_new_tokens):
        hidden = lm.forward(x, cache)
        logits = lm.logits(hidden[-1]).float()
        if record_top2:
            v, i = torch.topk(logits, 2)
            top2.append((int(i[0]), float(v[0]), int(i[1]), float(v[1])))
        tok = sample_text(logits, out, step, temperature=temperature, top_k=top_k,
                          repetition_penalty=repetition_penalty, generator=generator)
        if tok == K.TEXT_EOS and not ignore_eos:
            stopped = True
            break
        out.append(tok)
        x = lm.embed_decode(tok)
    return GenerationResult(out, stopped, L, top2, time.perf_counter() - t0)


def detokenize_ids(token_ids: Sequence[int]) -> list[int]:
    """Ids that go to the text decoder (§6): drop audio ids ≥ 152064."""
    return [t for t in token_ids if t < K.KIMIA_TOKEN_OFFSET]
