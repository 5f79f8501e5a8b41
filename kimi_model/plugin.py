"""vLLM general plugin: registers the faithful Kimi-Audio ASR model (see docs/plugin.md).

Entry point (pyproject.toml): ``vllm.general_plugins: kimi_asr = kimi_model.plugin:register``.
vLLM calls ``register()`` in every process it starts (API server, engine core,
workers) before it reads the model config, so both hooks below are live everywhere:

1. ``ModelRegistry.register_model("MoonshotKimiaForCausalLM", ...)`` points the
   architecture at ``kimi_model.vllm_model:KimiAudioASRForCausalLM``, replacing vLLM's
   in-tree ``KimiAudioForConditionalGeneration`` (not output-equivalent, spec §7).
2. Kimi-Audio's config.json has no ``model_type`` and only remote code in
   ``auto_map``; vLLM's "hf" config parser would hand it to transformers, which then
   demands ``trust_remote_code``. We re-register the "hf" format (public hook
   ``register_config_parser``) with a subclass of whatever parser is registered for
   it; the subclass builds ``KimiAudioASRConfig`` for exactly that case and defers
   to the original parser for every other checkpoint.

This module stays import-light (no torch / vLLM model code at import time).
"""
from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

ARCHITECTURE = "MoonshotKimiaForCausalLM"
MODEL_TYPE = "kimi_audio_asr"
MODEL_CLASS_FQN = "kimi_model.vllm_model:KimiAudioASRForCausalLM"

_registered = False


def is_kimi_audio_config_dict(config_dict: Mapping[str, Any]) -> bool:
    """A Kimi-Audio checkpoint config: our architecture and no (or our) model_type."""
    archs = config_dict.get("architectures") or []
    return ARCHITECTURE in archs and config_dict.get("model_type") in (None, MODEL_TYPE)


def register() -> None:
    """Idempotent; safe to call in every process."""
    global _registered
    if _registered:
        return
    from vllm import ModelRegistry

    ModelRegistry.register_model(ARCHITECTURE, MODEL_CLASS_FQN)
    install_config_parser()
    _install_serve_tokenizer()
    _registered = True


def _install_serve_tokenizer() -> None:
    """`vllm serve` picks tokenizer_mode "kimi_audio" for this architecture; point it at
    our subclass with the reference's detokenization (only matters for served text)."""
    try:
        from vllm.tokenizers.registry import TokenizerRegistry
    except ImportError:  # older vLLM without the tokenizer registry: keep its default
        return
    if TokenizerRegistry.tokenizers.get("kimi_audio") != SERVE_TOKENIZER:
        TokenizerRegistry.register("kimi_audio", *SERVE_TOKENIZER)


SERVE_TOKENIZER = ("kimi_model.vllm_model", "KimiASRServeTokenizer")


# --- config handling: the one version shim (vLLM 0.26 … 0.32) ------------------------
# 0.26 has no architecture→model_type table; both versions have the public
# register_config_parser / get_config_parser and the same parse() signature, which
# is all this relies on.

def _read_config_dict(model: str | os.PathLike, revision: str | None, kwargs: Mapping[str, Any]) -> dict | None:
    path = Path(model)
    if path.is_dir():
        cfg = path / "config.json"
        return json.loads(cfg.read_text()) if cfg.is_file() else None
    try:  # a hub id: let transformers fetch (or read the cached) config.json
        try:
            from transformers import PreTrainedConfig as _Config
        except ImportError:  # transformers 4.x
            from transformers import PretrainedConfig as _Config
        allowed = {k: kwargs[k] for k in ("token", "cache_dir", "local_files_only") if k in kwargs}
        config_dict, _ = _Config.get_config_dict(str(model), revision=revision, **allowed)
        return config_dict
    except Exception:  # noqa: BLE001 - let the original parser produce the real error
        return None


def build_kimi_config(config_dict: Mapping[str, Any], name_or_path: str | os.PathLike) -> Any:
    from transformers import AutoConfig

    from kimi_model.vllm_model import KimiAudioASRConfig

    AutoConfig.register(MODEL_TYPE, KimiAudioASRConfig, exist_ok=True)
    return KimiAudioASRConfig.from_kimi_dict(config_dict, name_or_path=str(name_or_path))


def install_config_parser() -> type:
    """Wrap the registered "hf" config parser; returns the parser class now in use."""
    from vllm.transformers_utils.config import get_config_parser, register_config_parser

    base = type(get_config_parser("hf"))
    if getattr(base, "_kimi_audio_wrapper", False):
        return base

    class KimiAudioAwareConfigParser(base):  # type: ignore[valid-type, misc]
        _kimi_audio_wrapper = True

        def parse(self, model, trust_remote_code, revision=None, code_revision=None, **kwargs):
            overrides = kwargs.get("hf_overrides")
            if not (isinstance(overrides, Mapping) and "model_type" in overrides):
                config_dict = _read_config_dict(model, revision, kwargs)
                if config_dict is not None and is_kimi_audio_config_dict(config_dict):
                    return config_dict, build_kimi_config(config_dict, model)
            return super().parse(model, trust_remote_code, revision, code_revision, **kwargs)

    KimiAudioAwareConfigParser.__qualname__ = f"KimiAudioAwareConfigParser[{base.__name__}]"
    # vLLM logs a warning that "hf" is being overwritten; that is the intent.
    register_config_parser("hf")(KimiAudioAwareConfigParser)
    return KimiAudioAwareConfigParser
