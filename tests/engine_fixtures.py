"""Shared, session-scoped engine fixtures (import them in the test modules that need them).

    from engine_fixtures import engine, frontend, reference_lm  # noqa: F401

ONE vLLM engine per pytest session (start-up ≈ 25 s on CPU). It is configured to
exercise the hard paths on every request: prefix caching ON (per-request cache
reads can be skipped to get "caching off" behaviour), chunked prefill with a small
token budget (every golden-sized prompt is prefilled in several chunks and batched
with other requests' decodes), 16 sequences at once, fp32, small KV cache.
"""
from __future__ import annotations

import os

import pytest

ENGINE_MAX_NUM_BATCHED_TOKENS = 64
ENGINE_MAX_NUM_SEQS = 16


def engine_config(tiny_ckpt, **overrides):
    from kimi_model.transcriber import TranscriberConfig

    values = dict(
        model_dir=str(tiny_ckpt.model_dir),
        speech_tokenizer_dir=str(tiny_ckpt.speech_tokenizer_dir),
        dtype="float32",
        kv_cache_gib=1,
        gpu_memory_utilization=0.3,
        max_num_seqs=ENGINE_MAX_NUM_SEQS,
        max_num_batched_tokens=ENGINE_MAX_NUM_BATCHED_TOKENS,
        enable_prefix_caching=True,
        enforce_eager=True,
        frontend_device="cpu",
    )
    values.update(overrides)
    return TranscriberConfig(**values)


@pytest.fixture(scope="session")
def engine(tiny_ckpt):
    """A started BlockingTranscriber on the tiny checkpoint."""
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    from kimi_model.transcriber import BlockingTranscriber

    bt = BlockingTranscriber(engine_config(tiny_ckpt))
    yield bt
    bt.close()


@pytest.fixture(scope="module")
def compiled_engine(tiny_ckpt):
    """The same engine with vLLM's torch.compile path on (enforce_eager=False), as on GPU
    where CUDA graphs are captured too; module-scoped: it is a second engine."""
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    from kimi_model.transcriber import BlockingTranscriber

    bt = BlockingTranscriber(engine_config(tiny_ckpt, enforce_eager=False))
    yield bt
    bt.close()


@pytest.fixture(scope="session")
def frontend(tiny_ckpt):
    from kimi_model.frontend import FrontEnd

    return FrontEnd.load(tiny_ckpt.model_dir, tiny_ckpt.speech_tokenizer_dir, device="cpu")


@pytest.fixture(scope="session")
def reference_lm(tiny_ckpt):
    from kimi_model.reference import ReferenceLM

    return ReferenceLM.load(tiny_ckpt.model_dir)
