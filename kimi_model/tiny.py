"""Tiny, randomly initialised Kimi-Audio checkpoint in the real Hugging Face layout.

    python -m kimi_model.tiny OUT_DIR [--seed 9]

writes

    OUT_DIR/                                   like moonshotai/Kimi-Audio-7B-Instruct
        config.json  model.safetensors  model.safetensors.index.json
        tiktoken.model  tokenizer_config.json
        whisper-large-v3/{config.json, preprocessor_config.json, model.safetensors}
        glm-4-voice-tokenizer/                 like THUDM/glm-4-voice-tokenizer
            config.json  preprocessor_config.json  model.safetensors
        TINY_RANDOM_CHECKPOINT.txt             marks it as not a real model

Why it exists: no real weights can be downloaded here, yet every code path (key
names, shards, sub-folders, the 151,643 real BPE ranks, vocab 168,448) must be the
one real users hit. Tests, demos and CI use it; the 7B checkpoint loads through the
same code.

The weights are a pure function of the seed: each tensor comes from its own PCG64
stream seeded with (seed, first 8 bytes of sha256(tensor name)), drawn as
U(-a, a), a = std·√3, in float64 and rounded once to float32. With the default
seed the files are byte-identical to the checkpoint behind ../shared/golden (see
``GOLDEN_SHA256``), which is what lets our outputs be compared with Moonshot's
reference run. LLM head_dim is 64 because vLLM's CPU attention rejects 16.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kimi_model import constants as K

DEFAULT_SEED = 9
SPEECH_TOKENIZER_SUBDIR = "glm-4-voice-tokenizer"
MARKER_FILE = "TINY_RANDOM_CHECKPOINT.txt"
QWEN_TIKTOKEN_SHA256 = "b2b1b8dfb5cc5f024bafc373121c6aba3f66f9a5a0269e243470a1de16a33186"

# Tiny widths. Only sizes differ from the real model; every name and vocab is real.
HIDDEN, INTERMEDIATE, LAYERS, HEADS, KV_HEADS, MIMO_LAYERS = 128, 256, 2, 2, 1, 1
WHISPER_D, WHISPER_FFN, WHISPER_LAYERS, WHISPER_HEADS, WHISPER_DEC_LAYERS = 128, 256, 2, 2, 1
WHISPER_VOCAB = 51866
GLM_D, GLM_FFN, GLM_HEADS, GLM_LAYERS, GLM_QUANTIZE_POSITION = 128, 256, 2, 4, 2
MAX_SOURCE_POSITIONS = 1500
ROPE_THETA = 1_000_000.0

# On random weights the final hidden state has a large common direction, so the
# text EOS 151667 and id 0 (which triggers the reference's `sum(TS) != 0` quirk)
# would never be sampled. Row `row` of lm_head gets beta·unit(E[dir_token] ⊙ norm.w)
# added, so short clips can stop and id 0 can appear. row → (dir_token, beta).
LM_HEAD_STEER: dict[int, tuple[int, float]] = {K.TEXT_EOS: (K.MSG_END, 15.988), 0: (K.MEDIA_END, 6.887)}

# sha256 of every file for the default seed: identical to ../shared/golden/golden.json.
GOLDEN_SHA256 = {
    "config.json": "42ea6f2705f65e80ee6446c7620f302dc68603b478fceb0af71f8a518dc4b7ed",
    "model.safetensors": "a3007e987924c5ffaeb7a02540f7f8b28646de7d434a45e7bb164294cd40e21a",
    "model.safetensors.index.json": "0f9e1366ea95d272a7ce033eeb4f04021f04adc6d966af057ad96ec540d13bf4",
    "tiktoken.model": QWEN_TIKTOKEN_SHA256,
    "tokenizer_config.json": "be626ffb2466194a791941488deef809df280724cf9adc0562aa35a24df2c36e",
    "whisper-large-v3/config.json": "bf2c9f7d5f33060e346dab3a75eb730b189d6f6363333ad841d169c772970499",
    "whisper-large-v3/model.safetensors": "5a4f8c3cabba9f7cec463b701a7c060b72e10d277cdface7efef5c93791d43b2",
    "whisper-large-v3/preprocessor_config.json": "7ccc62c6f2765af1f3b46c00c9b5894426835a05021c8b9c01eecb6dfb542711",
    f"{SPEECH_TOKENIZER_SUBDIR}/config.json": "75b2c9b6a1f9981aba9b34a49d090369fc2b217a1b800d2cc7bd4ad77df5884c",
    f"{SPEECH_TOKENIZER_SUBDIR}/model.safetensors": "43d5bdeab837d0fe09e37f484cac730d8160660d6f0bf665f6185e1fa3934b31",
    f"{SPEECH_TOKENIZER_SUBDIR}/preprocessor_config.json": "7ccc62c6f2765af1f3b46c00c9b5894426835a05021c8b9c01eecb6dfb542711",
}


@dataclass(frozen=True)
class TinyCheckpoint:
    model_dir: Path
    speech_tokenizer_dir: Path


# --- deterministic tensors -------------------------------------------------------
class _Draw:
    """Per-tensor random streams keyed by name, so adding a tensor never shifts another."""

    def __init__(self, seed: int):
        self.seed = seed

    def rng(self, name: str) -> np.random.Generator:
        key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")
        return np.random.default_rng(np.random.SeedSequence([self.seed, key]))

    def uniform(self, name: str, shape: tuple[int, ...], std: float, mean: float = 0.0) -> np.ndarray:
        half_width = float(std) * math.sqrt(3.0)
        u = self.rng(name).random(size=shape)
        return (float(mean) + (2.0 * u - 1.0) * half_width).astype(np.float32)

    def layer_norm(self, prefix: str, dim: int) -> dict[str, np.ndarray]:
        return {prefix + "weight": self.uniform(prefix + "weight", (dim,), 0.1, mean=1.0),
                prefix + "bias": self.uniform(prefix + "bias", (dim,), 0.1)}

    def fixed_norm_rows(self, name: str, shape: tuple[int, int], norm: float) -> np.ndarray:
        """Rows of one common L2 norm, so a VQ argmin is decided by direction and codes spread."""
        u = 2.0 * self.rng(name).random(size=shape) - 1.0
        out = np.empty(shape, dtype=np.float32)
        for r in range(shape[0]):
            row_norm = math.sqrt(math.fsum((u[r] * u[r]).tolist()))  # correctly rounded: portable
            out[r] = (u[r] * (float(norm) / row_norm)).astype(np.float32)
        return out


# --- LLM -------------------------------------------------------------------------
def _llm_layer(d: _Draw, p: str) -> dict[str, np.ndarray]:
    head_dim = HIDDEN // HEADS
    q, kv = HEADS * head_dim, KV_HEADS * head_dim
    s = 1.0 / math.sqrt(HIDDEN)
    t = {
        p + "self_attn.q_proj.weight": d.uniform(p + "self_attn.q_proj.weight", (q, HIDDEN), 1.5 * s),
        p + "self_attn.q_proj.bias": d.uniform(p + "self_attn.q_proj.bias", (q,), 0.5),
        p + "self_attn.k_proj.weight": d.uniform(p + "self_attn.k_proj.weight", (kv, HIDDEN), 1.5 * s),
        p + "self_attn.k_proj.bias": d.uniform(p + "self_attn.k_proj.bias", (kv,), 0.5),
        p + "self_attn.v_proj.weight": d.uniform(p + "self_attn.v_proj.weight", (kv, HIDDEN), s),
        p + "self_attn.v_proj.bias": d.uniform(p + "self_attn.v_proj.bias", (kv,), 0.2),
        p + "self_attn.o_proj.weight": d.uniform(p + "self_attn.o_proj.weight", (HIDDEN, q), 1.5 * s),
        p + "input_layernorm.weight": d.uniform(p + "input_layernorm.weight", (HIDDEN,), 0.1, mean=1.0),
        p + "post_attention_layernorm.weight": d.uniform(p + "post_attention_layernorm.weight", (HIDDEN,), 0.1, mean=1.0),
        p + "mlp.gate_proj.weight": d.uniform(p + "mlp.gate_proj.weight", (INTERMEDIATE, HIDDEN), s),
        p + "mlp.up_proj.weight": d.uniform(p + "mlp.up_proj.weight", (INTERMEDIATE, HIDDEN), s),
        p + "mlp.down_proj.weight": d.uniform(p + "mlp.down_proj.weight", (HIDDEN, INTERMEDIATE), 1.0 / math.sqrt(INTERMEDIATE)),
    }
    # The real checkpoint stores this buffer; loaders must ignore it.
    inv_freq = 1.0 / (ROPE_THETA ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim))
    t[p + "self_attn.rotary_emb.inv_freq"] = inv_freq.astype(np.float32)
    return t


def _llm_tensors(d: _Draw) -> dict[str, np.ndarray]:
    t: dict[str, np.ndarray] = {}
    for i in range(LAYERS):
        t.update(_llm_layer(d, f"model.layers.{i}."))
    for i in range(MIMO_LAYERS):
        t.update(_llm_layer(d, f"model.mimo_layers.{i}."))
    t["model.embed_tokens.weight"] = d.uniform("model.embed_tokens.weight", (K.VOCAB_SIZE, HIDDEN), 1.0)
    t["model.norm.weight"] = d.uniform("model.norm.weight", (HIDDEN,), 0.1, mean=1.0)
    t["model.mimo_norm.weight"] = d.uniform("model.mimo_norm.weight", (HIDDEN,), 0.1, mean=1.0)
    t["lm_head.weight"] = _steered_lm_head(d, t["model.embed_tokens.weight"], t["model.norm.weight"])
    t["mimo_output.weight"] = d.uniform("mimo_output.weight", (K.VOCAB_SIZE, HIDDEN), 0.5)
    adaptor_in = 4 * WHISPER_D
    a = "model.vq_adaptor.layers."
    t[a + "0.weight"] = d.uniform(a + "0.weight", (HIDDEN, adaptor_in), 1.0 / math.sqrt(adaptor_in))
    t[a + "0.bias"] = d.uniform(a + "0.bias", (HIDDEN,), 0.5)
    t[a + "3.weight"] = d.uniform(a + "3.weight", (HIDDEN, HIDDEN), 1.0 / math.sqrt(HIDDEN))
    t[a + "3.bias"] = d.uniform(a + "3.bias", (HIDDEN,), 0.2)
    t[a + "4.weight"] = d.uniform(a + "4.weight", (HIDDEN,), 0.1, mean=1.0)
    t[a + "4.bias"] = d.uniform(a + "4.bias", (HIDDEN,), 0.2)
    return t


def _steered_lm_head(d: _Draw, embed: np.ndarray, norm_w: np.ndarray) -> np.ndarray:
    half_width = 0.5 * math.sqrt(3.0)
    u = d.rng("lm_head.weight").random(size=(K.VOCAB_SIZE, HIDDEN))
    head = ((2.0 * u - 1.0) * half_width).astype(np.float32)
    for row, (dir_token, beta) in sorted(LM_HEAD_STEER.items()):
        v = embed[dir_token].astype(np.float64) * norm_w.astype(np.float64)
        v = v / math.sqrt(math.fsum((v * v).tolist()))
        head[row] = ((2.0 * u[row] - 1.0) * half_width + float(beta) * v).astype(np.float32)
    return head


def _llm_config() -> dict:
    return {
        "architectures": ["MoonshotKimiaForCausalLM"],
        "auto_map": {
            "AutoConfig": "configuration_moonshot_kimia.KimiAudioConfig",
            "AutoModel": "modeling_moonshot_kimia.MoonshotKimiaModel",
            "AutoModelForCausalLM": "modeling_moonshot_kimia.MoonshotKimiaForCausalLM",
        },
        "bos_token_id": K.BOS,
        "eos_token_ids": [K.EOS, K.MSG_END],
        "hidden_act": "silu",
        "hidden_size": HIDDEN,
        "initializer_range": 0.02,
        "intermediate_size": INTERMEDIATE,
        "kimia_adaptor_input_dim": 4 * WHISPER_D,
        "kimia_audio_output_vocab": 16896,
        "kimia_media_begin": K.MEDIA_BEGIN,
        "kimia_media_end": K.MEDIA_END,
        "kimia_mimo_audiodelaytokens": 6,
        "kimia_mimo_layers": MIMO_LAYERS,
        "kimia_mimo_transformer_from_layer_index": 0,
        "kimia_text_output_vocab": K.TEXT_VOCAB_SIZE,
        "kimia_token_offset": K.KIMIA_TOKEN_OFFSET,
        "num_attention_heads": HEADS,
        "num_audio_special_tokens": 512,
        "num_base_tokens": K.NUM_BASE_TOKENS,
        "num_hidden_layers": LAYERS,
        "num_key_value_heads": KV_HEADS,
        "pad_token_id": K.PAD,
        "max_position_embeddings": K.MAX_POSITIONS,
        "rms_norm_eps": 1e-06,
        "rope_scaling": None,
        "rope_theta": ROPE_THETA,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "transformers_version": "4.44.1",
        "use_cache": True,
        "use_whisper_feature": True,
        "vocab_size": K.VOCAB_SIZE,
    }


def _tokenizer_config() -> dict:
    # The real file was not available; this is what the TikTokenTokenizer class needs.
    return {
        "auto_map": {"AutoTokenizer": ["tokenization_kimia.TikTokenTokenizer", None]},
        "bos_token": "[BOS]",
        "clean_up_tokenization_spaces": False,
        "eos_token": "[EOS]",
        "model_max_length": 1000000000000000019884624838656,
        "tokenizer_class": "TikTokenTokenizer",
    }


# --- Whisper-style encoders --------------------------------------------------------
def _attention(d: _Draw, p: str, dim: int) -> dict[str, np.ndarray]:
    s = 1.0 / math.sqrt(dim)
    return {
        p + "k_proj.weight": d.uniform(p + "k_proj.weight", (dim, dim), 1.5 * s),
        p + "v_proj.weight": d.uniform(p + "v_proj.weight", (dim, dim), s),
        p + "v_proj.bias": d.uniform(p + "v_proj.bias", (dim,), 0.1),
        p + "q_proj.weight": d.uniform(p + "q_proj.weight", (dim, dim), 1.5 * s),
        p + "q_proj.bias": d.uniform(p + "q_proj.bias", (dim,), 0.3),
        p + "out_proj.weight": d.uniform(p + "out_proj.weight", (dim, dim), s),
        p + "out_proj.bias": d.uniform(p + "out_proj.bias", (dim,), 0.1),
    }


def _feed_forward(d: _Draw, p: str, dim: int, ffn: int) -> dict[str, np.ndarray]:
    return {
        p + "fc1.weight": d.uniform(p + "fc1.weight", (ffn, dim), 1.0 / math.sqrt(dim)),
        p + "fc1.bias": d.uniform(p + "fc1.bias", (ffn,), 0.1),
        p + "fc2.weight": d.uniform(p + "fc2.weight", (dim, ffn), 1.0 / math.sqrt(ffn)),
        p + "fc2.bias": d.uniform(p + "fc2.bias", (dim,), 0.1),
    }


def _encoder_layer(d: _Draw, p: str, dim: int, ffn: int) -> dict[str, np.ndarray]:
    t = _attention(d, p + "self_attn.", dim)
    t.update(d.layer_norm(p + "self_attn_layer_norm.", dim))
    t.update(_feed_forward(d, p, dim, ffn))
    t.update(d.layer_norm(p + "final_layer_norm.", dim))
    return t


def _convs(d: _Draw, p: str, dim: int) -> dict[str, np.ndarray]:
    return {
        p + "conv1.weight": d.uniform(p + "conv1.weight", (dim, K.N_MELS, 3), 1.0 / math.sqrt(3 * K.N_MELS)),
        p + "conv1.bias": d.uniform(p + "conv1.bias", (dim,), 0.1),
        p + "conv2.weight": d.uniform(p + "conv2.weight", (dim, dim, 3), 1.5 / math.sqrt(3 * dim)),
        p + "conv2.bias": d.uniform(p + "conv2.bias", (dim,), 0.1),
    }


def _whisper_tensors(d: _Draw) -> dict[str, np.ndarray]:
    """Full encoder + decoder, as in the real whisper-large-v3/ folder; we only use the encoder."""
    enc, dec = "model.encoder.", "model.decoder."
    t = _convs(d, enc, WHISPER_D)
    t[enc + "embed_positions.weight"] = d.uniform(enc + "embed_positions.weight", (MAX_SOURCE_POSITIONS, WHISPER_D), 0.5)
    for i in range(WHISPER_LAYERS):
        t.update(_encoder_layer(d, f"{enc}layers.{i}.", WHISPER_D, WHISPER_FFN))
    t.update(d.layer_norm(enc + "layer_norm.", WHISPER_D))
    t[dec + "embed_tokens.weight"] = d.uniform(dec + "embed_tokens.weight", (WHISPER_VOCAB, WHISPER_D), 0.5)
    t[dec + "embed_positions.weight"] = d.uniform(dec + "embed_positions.weight", (448, WHISPER_D), 0.5)
    for i in range(WHISPER_DEC_LAYERS):
        p = f"{dec}layers.{i}."
        t.update(_attention(d, p + "self_attn.", WHISPER_D))
        t.update(d.layer_norm(p + "self_attn_layer_norm.", WHISPER_D))
        t.update(_attention(d, p + "encoder_attn.", WHISPER_D))
        t.update(d.layer_norm(p + "encoder_attn_layer_norm.", WHISPER_D))
        t.update(_feed_forward(d, p, WHISPER_D, WHISPER_FFN))
        t.update(d.layer_norm(p + "final_layer_norm.", WHISPER_D))
    t.update(d.layer_norm(dec + "layer_norm.", WHISPER_D))
    return t


def _glm_tensors(d: _Draw) -> dict[str, np.ndarray]:
    """Bare key names as in THUDM/glm-4-voice-tokenizer; only the layers before the quantizer exist."""
    t = _convs(d, "", GLM_D)
    t["embed_positions.weight"] = d.uniform("embed_positions.weight", (MAX_SOURCE_POSITIONS, GLM_D), 0.5)
    for i in range(GLM_QUANTIZE_POSITION):
        t.update(_encoder_layer(d, f"layers.{i}.", GLM_D, GLM_FFN))
    codebook = d.fixed_norm_rows("codebook.weight", (K.CODEBOOK_SIZE, GLM_D), math.sqrt(GLM_D))
    t["codebook.weight"] = codebook
    t["embed_positions2.weight"] = d.uniform("embed_positions2.weight", (math.ceil(MAX_SOURCE_POSITIONS / 4), GLM_D), 0.5)
    # EMA buffers exist in the real checkpoint; unused at inference.
    t["ema_count"] = np.ones((K.CODEBOOK_SIZE,), dtype=np.float32)
    t["ema_weight"] = codebook.copy()
    return t


_WHISPER_COMMON = {
    "activation_dropout": 0.0, "activation_function": "gelu", "apply_spec_augment": False,
    "attention_dropout": 0.0, "begin_suppress_tokens": [220, 50257], "bos_token_id": 50257,
    "classifier_proj_size": 256,
}
_WHISPER_TAIL = {
    "eos_token_id": 50257, "init_std": 0.02, "is_encoder_decoder": True,
    "mask_feature_length": 10, "mask_feature_min_masks": 0, "mask_feature_prob": 0.0,
    "mask_time_length": 10, "mask_time_min_masks": 2, "mask_time_prob": 0.05,
    "max_length": 448, "max_source_positions": MAX_SOURCE_POSITIONS, "max_target_positions": 448,
    "median_filter_width": 7, "model_type": "whisper",
}


def _sorted(config: dict) -> dict:
    """The real Whisper-family config.json files list their keys alphabetically."""
    return dict(sorted(config.items()))


def _whisper_config() -> dict:
    return _sorted({
        "_name_or_path": "openai/whisper-large-v3", **_WHISPER_COMMON,
        "architectures": ["WhisperForConditionalGeneration"],
        "d_model": WHISPER_D, "decoder_attention_heads": WHISPER_HEADS, "decoder_ffn_dim": WHISPER_FFN,
        "decoder_layerdrop": 0.0, "decoder_layers": WHISPER_DEC_LAYERS, "decoder_start_token_id": 50258,
        "dropout": 0.0, "encoder_attention_heads": WHISPER_HEADS, "encoder_ffn_dim": WHISPER_FFN,
        "encoder_layerdrop": 0.0, "encoder_layers": WHISPER_LAYERS, **_WHISPER_TAIL,
        "num_hidden_layers": WHISPER_LAYERS, "num_mel_bins": K.N_MELS, "pad_token_id": 50256,
        "scale_embedding": False, "torch_dtype": "float32", "transformers_version": "4.44.1",
        "use_cache": True, "use_weighted_layer_sum": False, "vocab_size": WHISPER_VOCAB,
    })


def _glm_config() -> dict:
    return _sorted({
        "_name_or_path": "THUDM/glm-4-voice-tokenizer", **_WHISPER_COMMON,
        "architectures": ["WhisperVQEncoder"],
        "d_model": GLM_D, "decoder_attention_heads": GLM_HEADS, "decoder_ffn_dim": GLM_FFN,
        "decoder_layerdrop": 0.0, "decoder_layers": GLM_LAYERS, "decoder_start_token_id": 50258,
        "dropout": 0.0, "encoder_attention_heads": GLM_HEADS, "encoder_causal_attention": False,
        "encoder_causal_convolution": True, "encoder_ffn_dim": GLM_FFN, "encoder_layerdrop": 0.0,
        "encoder_layers": GLM_LAYERS, **_WHISPER_TAIL,
        "num_hidden_layers": GLM_LAYERS, "num_mel_bins": K.N_MELS, "pad_token_id": 50256,
        "pooling_kernel_size": 4, "pooling_position": GLM_QUANTIZE_POSITION, "pooling_type": "avg",
        "quantize_causal_block_size": K.BLOCK_CAUSAL_SIZE, "quantize_causal_encoder": False,
        "quantize_commit_coefficient": 0.25, "quantize_ema_decay": 0.99, "quantize_encoder_only": True,
        "quantize_loss_scale": 10.0, "quantize_position": GLM_QUANTIZE_POSITION,
        "quantize_restart_interval": 100, "quantize_vocab_size": K.CODEBOOK_SIZE,
        "scale_embedding": False, "skip_language_detection": True, "torch_dtype": "float32",
        "transformers_version": "4.44.1", "use_cache": True, "use_weighted_layer_sum": False,
        "vocab_size": WHISPER_VOCAB,
    })


def _preprocessor_config() -> dict:
    return {
        "chunk_length": 30, "feature_extractor_type": "WhisperFeatureExtractor",
        "feature_size": K.N_MELS, "hop_length": K.HOP_LENGTH, "n_fft": K.N_FFT,
        "n_samples": K.WINDOW_SAMPLES, "nb_max_frames": 3000, "padding_side": "right",
        "padding_value": 0.0, "processor_class": "WhisperProcessor",
        "return_attention_mask": False, "sampling_rate": K.SAMPLE_RATE,
    }


# --- writing ------------------------------------------------------------------------
def _write_json(path: Path, obj: dict) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _write_safetensors(path: Path, tensors: dict[str, np.ndarray]) -> None:
    from safetensors.numpy import save_file  # the header is sorted by safetensors itself
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(path), metadata={"format": "pt"})


def find_qwen_ranks() -> Path:
    """The real 151,643 Qwen BPE ranks ship as `qwen.tiktoken` inside the PyPI package dashscope."""
    try:
        import dashscope
    except ImportError as exc:  # pragma: no cover - dashscope is a declared dependency
        raise SystemExit("the tiny checkpoint needs the real BPE ranks: pip install dashscope==2.0.2") from exc
    path = Path(dashscope.__file__).parent / "resources" / "qwen.tiktoken"
    if not path.is_file():
        raise SystemExit(f"{path} not found: install dashscope==2.0.2, which ships qwen.tiktoken")
    return path


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def build(out_dir: str | os.PathLike, seed: int = DEFAULT_SEED, ranks: Path | None = None) -> TinyCheckpoint:
    out = Path(out_dir)
    ranks = ranks or find_qwen_ranks()
    if sha256_file(ranks) != QWEN_TIKTOKEN_SHA256:
        raise SystemExit(f"{ranks} is not the 151,643-rank qwen.tiktoken (sha256 differs)")
    whisper_dir, glm_dir = out / "whisper-large-v3", out / SPEECH_TOKENIZER_SUBDIR
    for d in (out, whisper_dir, glm_dir):
        d.mkdir(parents=True, exist_ok=True)
    draw = _Draw(seed)

    llm = _llm_tensors(draw)
    _write_safetensors(out / "model.safetensors", llm)
    _write_json(out / "model.safetensors.index.json", {
        "metadata": {"total_size": int(sum(v.nbytes for v in llm.values()))},
        "weight_map": {k: "model.safetensors" for k in sorted(llm)},
    })
    del llm
    _write_json(out / "config.json", _llm_config())
    shutil.copyfile(ranks, out / "tiktoken.model")
    _write_json(out / "tokenizer_config.json", _tokenizer_config())

    _write_safetensors(whisper_dir / "model.safetensors", _whisper_tensors(_Draw(seed + 1_000_003)))
    _write_json(whisper_dir / "config.json", _whisper_config())
    _write_json(whisper_dir / "preprocessor_config.json", _preprocessor_config())

    _write_safetensors(glm_dir / "model.safetensors", _glm_tensors(_Draw(seed + 2_000_003)))
    _write_json(glm_dir / "config.json", _glm_config())
    _write_json(glm_dir / "preprocessor_config.json", _preprocessor_config())

    (out / MARKER_FILE).write_text(
        f"NOT A REAL MODEL: random weights (seed {seed}) in the Kimi-Audio layout, made by "
        "`python -m kimi_model.tiny`. Its transcripts are meaningless.\n", encoding="utf-8")
    return TinyCheckpoint(out, glm_dir)


def file_digests(out_dir: str | os.PathLike) -> dict[str, str]:
    out = Path(out_dir)
    return {name: sha256_file(out / name) for name in GOLDEN_SHA256 if (out / name).is_file()}


def ensure_tiny_checkpoint(out_dir: str | os.PathLike, seed: int = DEFAULT_SEED) -> TinyCheckpoint:
    """Build once and reuse: a directory whose files are all present is trusted as built."""
    out = Path(out_dir)
    if (out / MARKER_FILE).is_file() and len(file_digests(out)) == len(GOLDEN_SHA256):
        return TinyCheckpoint(out, out / SPEECH_TOKENIZER_SUBDIR)
    return build(out, seed)


def is_tiny_checkpoint(model_dir: str | os.PathLike) -> bool:
    return (Path(model_dir) / MARKER_FILE).is_file()


def iter_digest_lines(out_dir: str | os.PathLike) -> Iterator[str]:
    for name, digest in file_digests(out_dir).items():
        mark = "" if GOLDEN_SHA256[name] == digest else "  (differs from golden)"
        yield f"{digest}  {name}{mark}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out_dir", help="directory to write the checkpoint into")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="weights seed (default 9 = golden)")


def run(args: argparse.Namespace) -> int:
    ckpt = build(args.out_dir, args.seed)
    for line in iter_digest_lines(ckpt.model_dir):
        print(line)
    print(f"model: {ckpt.model_dir}\nspeech tokenizer: {ckpt.speech_tokenizer_dir}\n"
          "NOT A REAL MODEL: random weights for tests and demos.")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kimi_model.tiny", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
