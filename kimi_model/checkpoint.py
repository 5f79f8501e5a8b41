"""Locate and validate the Kimi-Audio model dir and the GLM-4-Voice tokenizer dir.

Why up front: a half-downloaded 7B checkpoint should fail at start-up with the
name of the missing file, not minutes later inside a weight loader. Only headers
are read here (safetensors index / JSON); tensors are loaded on demand, filtered
by key, so the 3 GB Whisper file's decoder is never read.
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open

from kimi_model.errors import CheckpointError

SPEECH_TOKENIZER_SUBDIR = "glm-4-voice-tokenizer"
WHISPER_SUBDIR = "whisper-large-v3"
WHISPER_ENCODER_PREFIXES = ("model.encoder.", "encoder.")  # HF WhisperModel(ForCond.) / bare


@dataclass(frozen=True)
class WeightFiles:
    """A safetensors checkpoint: one file, or an index json plus its shards."""
    files: tuple[Path, ...]
    index: Path | None = None

    def iter_tensors(self, keep: Callable[[str], bool] = lambda k: True) -> Iterator[tuple[str, torch.Tensor]]:
        """Yield (name, tensor) for the keys ``keep`` accepts, reading only those."""
        for path in self.files:
            with safe_open(str(path), framework="pt") as f:
                for key in f.keys():
                    if keep(key):
                        yield key, f.get_tensor(key)


@dataclass(frozen=True)
class KimiCheckpoint:
    model_dir: Path
    config: dict
    tiktoken_path: Path
    tokenizer_config_path: Path
    llm_weights: WeightFiles
    whisper_dir: Path
    whisper_config: dict
    whisper_weights: WeightFiles
    speech_tokenizer_dir: Path
    glm_config: dict
    glm_preprocessor_config: dict
    glm_weights: WeightFiles


def _require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise CheckpointError(f"{what}: missing file {path}")
    return path


def _read_json(path: Path, what: str) -> dict:
    _require_file(path, what)
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{what}: cannot parse {path}: {exc}") from exc
    if not isinstance(obj, dict):
        raise CheckpointError(f"{what}: {path} is not a JSON object")
    return obj


def _weight_files(directory: Path, what: str) -> WeightFiles:
    """model.safetensors, or model.safetensors.index.json + the shards it names."""
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        weight_map = _read_json(index, what).get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise CheckpointError(f"{what}: {index} has no weight_map")
        shards = tuple(directory / name for name in dict.fromkeys(weight_map.values()))
        for shard in shards:
            _require_file(shard, f"{what} (shard named in {index.name})")
        return WeightFiles(shards, index)
    single = directory / "model.safetensors"
    if single.is_file():
        return WeightFiles((single,))
    raise CheckpointError(f"{what}: missing weights in {directory} (model.safetensors or model.safetensors.index.json)")


def _check_keys(weights: WeightFiles, required: list[str], what: str) -> None:
    present: set[str] = set()
    for path in weights.files:
        try:
            with safe_open(str(path), framework="pt") as f:
                present.update(f.keys())
        except Exception as exc:  # safetensors raises several types for corrupt headers
            raise CheckpointError(f"{what}: cannot read {path}: {exc}") from exc
    missing = [k for k in required if k not in present]
    if missing:
        raise CheckpointError(f"{what}: {weights.files[0]} lacks tensors {missing[:4]}")


def whisper_prefix(weights: WeightFiles) -> str:
    """Key prefix of the Whisper encoder tensors in this file."""
    with safe_open(str(weights.files[0]), framework="pt") as f:
        keys = set(f.keys())
    for prefix in WHISPER_ENCODER_PREFIXES:
        if f"{prefix}conv1.weight" in keys:
            return prefix
    raise CheckpointError(f"Whisper encoder: {weights.files[0]} has no model.encoder.conv1.weight")


def resolve_checkpoint(model_dir: str | os.PathLike, speech_tokenizer_dir: str | os.PathLike | None = None,
                       *, check_tensors: bool = True, require_llm_weights: bool = True) -> KimiCheckpoint:
    """Validate both directories and return their parsed configs and weight files.

    ``speech_tokenizer_dir`` defaults to ``<model_dir>/glm-4-voice-tokenizer``.
    ``require_llm_weights=False`` is for vLLM's ``load_format="dummy"`` (random LLM weights
    at the checkpoint's shape, for benchmarks): the LLM may then have no weight files.
    """
    model = Path(model_dir).expanduser()
    if not model.is_dir():
        raise CheckpointError(f"model directory not found: {model}")
    config = _read_json(model / "config.json", "Kimi-Audio config")
    for key in ("vocab_size", "hidden_size", "kimia_adaptor_input_dim"):
        if key not in config:
            raise CheckpointError(f"Kimi-Audio config: {model / 'config.json'} lacks '{key}'")
    tiktoken_path = _require_file(model / "tiktoken.model", "text tokenizer")
    tok_cfg = _require_file(model / "tokenizer_config.json", "text tokenizer")
    try:
        llm_weights = _weight_files(model, "Kimi-Audio LLM weights")
    except CheckpointError:
        if require_llm_weights:
            raise
        llm_weights = WeightFiles(())

    whisper_dir = model / WHISPER_SUBDIR
    whisper_config = _read_json(whisper_dir / "config.json", "Whisper encoder config")
    whisper_weights = WeightFiles((_require_file(whisper_dir / "model.safetensors", "Whisper encoder weights"),))
    d_whisper = int(whisper_config.get("d_model", 0))
    if 4 * d_whisper != int(config["kimia_adaptor_input_dim"]):
        raise CheckpointError(
            f"inconsistent checkpoint: 4 × d_model {d_whisper} in {whisper_dir / 'config.json'} != "
            f"kimia_adaptor_input_dim {config['kimia_adaptor_input_dim']} in {model / 'config.json'}"
        )

    if speech_tokenizer_dir is None:
        glm = model / SPEECH_TOKENIZER_SUBDIR
        if not glm.is_dir():
            raise CheckpointError(
                f"speech tokenizer not found: {glm} does not exist; pass the THUDM/glm-4-voice-tokenizer "
                "directory explicitly (--speech-tokenizer)"
            )
    else:
        glm = Path(speech_tokenizer_dir).expanduser()
        if not glm.is_dir():
            raise CheckpointError(f"speech tokenizer directory not found: {glm}")
    glm_config = _read_json(glm / "config.json", "speech tokenizer config")
    glm_pre = _read_json(glm / "preprocessor_config.json", "speech tokenizer preprocessor")
    glm_weights = _weight_files(glm, "speech tokenizer weights")
    for key in ("d_model", "quantize_position", "quantize_vocab_size", "num_mel_bins"):
        if key not in glm_config:
            raise CheckpointError(f"speech tokenizer config: {glm / 'config.json'} lacks '{key}'")
    if int(glm_config["quantize_position"]) > int(glm_config.get("encoder_layers", 10**9)):
        raise CheckpointError(f"speech tokenizer config: quantize_position > encoder_layers in {glm / 'config.json'}")

    ckpt = KimiCheckpoint(model, config, tiktoken_path, tok_cfg, llm_weights, whisper_dir, whisper_config,
                          whisper_weights, glm, glm_config, glm_pre, glm_weights)
    if check_tensors:
        prefix = whisper_prefix(whisper_weights)
        _check_keys(whisper_weights, [f"{prefix}{k}" for k in ("conv1.weight", "conv2.weight",
                    "embed_positions.weight", "layer_norm.weight",
                    f"layers.{int(whisper_config['encoder_layers']) - 1}.fc2.weight")], "Whisper encoder weights")
        _check_keys(glm_weights, ["conv1.weight", "conv2.weight", "embed_positions.weight", "codebook.weight",
                                  f"layers.{int(glm_config['quantize_position']) - 1}.fc2.weight"],
                    "speech tokenizer weights")
        if llm_weights.files:
            _check_keys(llm_weights, ["model.embed_tokens.weight", "lm_head.weight"], "Kimi-Audio LLM weights")
    return ckpt


def load_whisper_encoder_state(ckpt: KimiCheckpoint) -> dict[str, torch.Tensor]:
    """Encoder tensors with the ``model.encoder.`` prefix stripped; decoder keys are skipped."""
    prefix = whisper_prefix(ckpt.whisper_weights)
    return {k[len(prefix):]: v for k, v in ckpt.whisper_weights.iter_tensors(lambda k: k.startswith(prefix))}


def load_glm_state(ckpt: KimiCheckpoint) -> dict[str, torch.Tensor]:
    """GLM tensors needed up to the quantizer: skips embed_positions2, ema_* and layers ≥ quantize_position."""
    n_layers = int(ckpt.glm_config["quantize_position"])

    def keep(key: str) -> bool:
        if key.startswith("layers."):
            return int(key.split(".")[1]) < n_layers
        return key.split(".")[0] in ("conv1", "conv2", "embed_positions", "codebook")

    return dict(ckpt.glm_weights.iter_tensors(keep))
