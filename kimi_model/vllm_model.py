"""Kimi-Audio-7B ASR as an out-of-tree vLLM model, faithful to Moonshot's reference.

Laid out like a vLLM model file: config → processor → model → weight loading, plus
the reference repetition penalty as a V1 logits processor. Registered for the
architecture ``MoonshotKimiaForCausalLM`` by ``kimi_model.plugin.register`` (see
docs/plugin.md).

How a Kimi prompt (two id streams + continuous features, spec §3) maps onto vLLM:

* vLLM prompt token ids = the AUDIO stream AS (length L).
* One multimodal item (modality "audio") is passed as a dict of precomputed tensors
  (``prompt_to_mm_data``): the text stream TS, the audio stream AS, the continuous
  mask and the Whisper features [N, kimia_adaptor_input_dim]. Its placeholder is the
  WHOLE prompt (offset 0, length L), so its hash (which covers every tensor) enters
  every prefix-cache block hash: two audios with equal AS ids never share blocks.
* ``embed_multimodal`` computes the prefill embedding of spec §5.2 with the model's
  own weights inside the vLLM forward:
  x_p = a_p + E[TS_p], a_p = E[AS_p], or (E[AS_p] + A(f_p))·1.4140625 at mask
  positions; A = Linear → SiLU → Linear → LayerNorm(eps=rms_norm_eps).
* Decode positions are not placeholders: ``embed_input_ids`` gives E[151666] + E[t],
  or E[151666] alone when t == 0 (spec §5.5).
* Decoder = vLLM's own ``Qwen2Model`` (imported, not copied); text logits = lm_head
  on model.norm over all 168,448 ids, unmasked. The MIMO branch is not built.

The embedding work runs outside the compiled / CUDA-graphed decoder (vLLM always feeds
multimodal models through ``inputs_embeds``), and the decoder forward itself has no
data-dependent control flow.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar, Literal

import torch
from torch import nn
from transformers import BatchFeature, Qwen2Config

from vllm.config import VllmConfig
from vllm.model_executor.layers.logits_processor import LogitsProcessor
from vllm.model_executor.layers.vocab_parallel_embedding import ParallelLMHead
from vllm.model_executor.models.interfaces import SupportsMultiModal, SupportsTranscription
from vllm.model_executor.models.qwen2 import Qwen2Model
from vllm.model_executor.models.utils import AutoWeightsLoader, maybe_prefix
from vllm.multimodal import MULTIMODAL_REGISTRY
from vllm.multimodal.inputs import MultiModalFieldConfig
from vllm.multimodal.parse import ModalityDataItems, MultiModalDataItems, MultiModalDataParser
from vllm.multimodal.processing import (
    BaseDummyInputsBuilder,
    BaseMultiModalProcessor,
    BaseProcessingInfo,
    PromptReplacement,
)
from vllm.multimodal.processing.inputs import ProcessorInputs
from vllm.sequence import IntermediateTensors
from vllm.v1.sample.logits_processor import BatchUpdate, MoveDirectionality
from vllm.v1.sample.logits_processor import LogitsProcessor as V1LogitsProcessor

from kimi_model import constants as K
from kimi_model.vllm_compat import PassthroughOnlyProcessorMixin, TokenIdsOnlyInfoMixin

from kimi_model.plugin import ARCHITECTURE, MODEL_TYPE  # noqa: E402,F401  (single source)

# =====================================================================================
# config
# =====================================================================================


class KimiAudioASRConfig(Qwen2Config):
    """Qwen2 decoder fields plus the kimia_* fields of Kimi-Audio's config.json.

    Built by our config parser (plugin.py) from a config.json that has no model_type
    and only remote code in auto_map, so no trust_remote_code is needed. The text EOS
    151667 is the generation stop (spec §6), so it becomes ``eos_token_id``.
    """

    model_type = MODEL_TYPE

    @classmethod
    def from_kimi_dict(cls, config_dict: Mapping[str, Any], name_or_path: str | None = None) -> "KimiAudioASRConfig":
        d = dict(config_dict)
        d.pop("auto_map", None)            # remote code we never run
        d.pop("model_type", None)
        d["eos_token_id"] = K.TEXT_EOS
        d.setdefault("kimia_adaptor_input_dim", 5120)
        d.setdefault("kimia_token_offset", K.KIMIA_TOKEN_OFFSET)
        config = cls.from_dict(d)
        if name_or_path is not None:
            config._name_or_path = str(name_or_path)
        return config


# =====================================================================================
# processor: prompt tensors in, whole-prompt placeholder out
# =====================================================================================

FIELD_TEXT_IDS = "kimi_text_ids"
FIELD_AUDIO_IDS = "kimi_audio_ids"
FIELD_MASK = "kimi_continuous_mask"
FIELD_FEATURES = "kimi_whisper_features"
PROMPT_FIELDS = (FIELD_TEXT_IDS, FIELD_AUDIO_IDS, FIELD_MASK, FIELD_FEATURES)


def _fields_config() -> dict[str, MultiModalFieldConfig]:
    return {name: MultiModalFieldConfig.batched("audio") for name in PROMPT_FIELDS}


def prompt_to_mm_data(audio_ids: Sequence[int], text_ids: Sequence[int], continuous_mask: Sequence[int],
                      whisper_features: torch.Tensor) -> dict[str, torch.Tensor]:
    """The ``multi_modal_data["audio"]`` dict for one Kimi prompt (vLLM prompt = audio_ids)."""
    feats = whisper_features
    if feats.dim() == 3:
        feats = feats[0]
    return {
        FIELD_TEXT_IDS: torch.as_tensor(list(text_ids), dtype=torch.long),
        FIELD_AUDIO_IDS: torch.as_tensor(list(audio_ids), dtype=torch.long),
        FIELD_MASK: torch.as_tensor(list(continuous_mask), dtype=torch.bool),
        FIELD_FEATURES: feats.detach().to("cpu", torch.float32).contiguous(),
    }


def validate_prompt_tensors(item: Mapping[str, torch.Tensor], feature_dim: int | None = None) -> None:
    missing = [k for k in PROMPT_FIELDS if k not in item]
    if missing:
        raise ValueError(f"Kimi audio item is missing fields {missing}; build it with prompt_to_mm_data()")
    L = item[FIELD_AUDIO_IDS].shape[0]
    if item[FIELD_TEXT_IDS].shape[0] != L or item[FIELD_MASK].shape[0] != L:
        raise ValueError("kimi_text_ids, kimi_audio_ids and kimi_continuous_mask must have the same length")
    n_mask = int(item[FIELD_MASK].sum())
    feats = item[FIELD_FEATURES]
    if feats.dim() != 2 or feats.shape[0] != n_mask:
        raise ValueError(f"kimi_whisper_features must be [N, D] with N = {n_mask} masked positions, "
                         f"got {tuple(feats.shape)}")
    if feature_dim is not None and feats.shape[1] != feature_dim:
        raise ValueError(f"kimi_whisper_features has width {feats.shape[1]}, model expects {feature_dim}")
    for k in (FIELD_TEXT_IDS, FIELD_AUDIO_IDS):
        ids = item[k]
        if L and (int(ids.min()) < 0 or int(ids.max()) >= K.VOCAB_SIZE):
            raise ValueError(f"{k} has ids outside [0, {K.VOCAB_SIZE})")


class KimiPromptItems(ModalityDataItems[Sequence[Mapping[str, torch.Tensor]], Mapping[str, torch.Tensor]]):
    """Audio items given as precomputed Kimi prompt tensors (DictEmbeddingItems-style,
    but not embeddings: the model still runs the adaptor on the features)."""

    def __init__(self, items: Sequence[Mapping[str, torch.Tensor]], feature_dim: int | None) -> None:
        for item in items:
            validate_prompt_tensors(item, feature_dim)
        super().__init__(list(items), "audio")

    def get_count(self) -> int:
        return len(self.data)

    def get(self, index: int) -> Mapping[str, torch.Tensor]:
        return self.data[index]

    def get_processor_data(self) -> Mapping[str, object]:
        return {}

    def get_passthrough_data(self) -> Mapping[str, object]:
        # batched fields: one tensor per item
        return {name: [item[name] for item in self.data] for name in PROMPT_FIELDS}


class KimiDataParser(MultiModalDataParser):
    def __init__(self, feature_dim: int | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._feature_dim = feature_dim

    def _parse_audio_data(self, data: Any) -> ModalityDataItems[Any, Any] | None:
        if data is None:
            return None
        if isinstance(data, Mapping):
            return KimiPromptItems([data], self._feature_dim)
        if isinstance(data, (list, tuple)) and data and all(isinstance(d, Mapping) for d in data):
            return KimiPromptItems(list(data), self._feature_dim)
        raise ValueError(
            "The Kimi-Audio ASR model takes audio as precomputed prompt tensors "
            "(kimi_model.vllm_model.prompt_to_mm_data); raw audio goes through "
            "kimi_model.transcriber.Transcriber or POST /v1/audio/transcriptions.")


class KimiProcessingInfo(TokenIdsOnlyInfoMixin, BaseProcessingInfo):   # mixin: vLLM 0.26 shim
    def get_supported_mm_limits(self) -> Mapping[str, int | None]:
        return {"audio": 1}

    def get_mm_max_tokens_per_item(self, seq_len: int, mm_counts: Mapping[str, int]) -> Mapping[str, int]:
        # The placeholder is the whole prompt.
        return {"audio": seq_len}

    def feature_dim(self) -> int:
        return int(getattr(self.get_hf_config(), "kimia_adaptor_input_dim", 5120))

    def get_data_parser(self) -> MultiModalDataParser:   # vLLM ≥ 0.26 asks the info
        return KimiDataParser(self.feature_dim())


def dummy_prompt(seq_len: int, feature_dim: int) -> tuple[list[int], dict[str, torch.Tensor]]:
    """A maximal-length, layout-correct prompt for memory profiling."""
    n = max(seq_len - 6, 0)
    audio = [K.KIMIA_USER_MSG_START, K.MEDIA_BEGIN] + [K.KIMIA_TOKEN_OFFSET] * n + [
        K.MEDIA_END, K.SPEECH_CT, K.MSG_END, K.KIMIA_ASSISTANT_MSG_START]
    audio = audio[:max(seq_len, 1)]
    text = [K.TEXT_BLANK] * len(audio)
    mask = [1 if a == K.KIMIA_TOKEN_OFFSET else 0 for a in audio]
    return audio, prompt_to_mm_data(audio, text, mask, torch.zeros(sum(mask), feature_dim))


class KimiDummyInputsBuilder(BaseDummyInputsBuilder[KimiProcessingInfo]):
    def get_dummy_text(self, mm_counts: Mapping[str, int]) -> str:
        return ""

    def get_dummy_mm_data(self, seq_len: int, mm_counts: Mapping[str, int],
                          mm_options: Mapping[str, Any] | None = None) -> dict[str, Any]:
        if mm_counts.get("audio", 0) == 0:
            return {}
        return {"audio": dummy_prompt(seq_len, self.info.feature_dim())[1]}

    def _dummy_processor_inputs(self, seq_len: int, mm_counts: Mapping[str, int]) -> ProcessorInputs:
        if mm_counts.get("audio", 0) == 0:
            return ProcessorInputs(prompt=[K.TEXT_BLANK], mm_data_items=self.info.parse_mm_data({}, validate=False))
        ids, item = dummy_prompt(seq_len, self.info.feature_dim())
        return ProcessorInputs(prompt=ids, mm_data_items=self.info.parse_mm_data({"audio": item}, validate=False))

    # vLLM 0.26 builds dummy inputs here (it would tokenize get_dummy_text otherwise).
    def get_dummy_processor_inputs(self, seq_len: int, mm_counts: Mapping[str, int],
                                   mm_options: Mapping[str, Any] | None = None) -> ProcessorInputs:
        return self._dummy_processor_inputs(seq_len, mm_counts)


class KimiMultiModalProcessor(PassthroughOnlyProcessorMixin,   # vLLM 0.26 shim (vllm_compat.py)
                              BaseMultiModalProcessor[KimiProcessingInfo]):
    # Prompts arrive as token ids plus tensors; nothing is tokenized here, so the
    # engine runs with skip_tokenizer_init (0.32 checks this flag; 0.26 ignores it).
    requires_tokenizer: ClassVar[bool] = False

    # vLLM 0.32 builds dummy inputs here.
    def get_dummy_inputs(self, seq_len: int, mm_counts: Mapping[str, int],
                         mm_options: Any = None) -> ProcessorInputs:
        return self.dummy_inputs._dummy_processor_inputs(seq_len, mm_counts)

    def _get_mm_fields_config(self, hf_inputs: BatchFeature,
                              hf_processor_mm_kwargs: Mapping[str, object]) -> Mapping[str, MultiModalFieldConfig]:
        return _fields_config()

    def _get_prompt_updates(self, mm_items: MultiModalDataItems, hf_processor_mm_kwargs: Mapping[str, object],
                            out_mm_kwargs: Any) -> Sequence[PromptReplacement]:
        items = mm_items.get_items("audio", KimiPromptItems) if "audio" in mm_items else None

        def whole_prompt(item_idx: int) -> list[int]:
            assert items is not None
            return items.get(item_idx)[FIELD_AUDIO_IDS].tolist()

        # Target == replacement == the item's whole audio stream: the prompt is left
        # unchanged and the placeholder range becomes (0, L). A prompt that is not
        # the item's audio stream fails to match and the request is rejected.
        return [PromptReplacement(modality="audio", target=whole_prompt, replacement=whole_prompt)]


# =====================================================================================
# model
# =====================================================================================


class KimiVQAdaptor(nn.Module):
    """A(f) = LayerNorm(W3·SiLU(W0 f + b0) + b3); checkpoint keys layers.{0,3,4}."""

    def __init__(self, in_dim: int, hidden: int, eps: float) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(in_dim, hidden), nn.SiLU(), nn.Dropout(0.0),
                                    nn.Linear(hidden, hidden), nn.LayerNorm(hidden, eps=eps))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)


def _as_list(value: Any) -> list[torch.Tensor]:
    if value is None:
        return []
    if isinstance(value, torch.Tensor):
        return list(value.unbind(0))
    out: list[torch.Tensor] = []
    for v in value:
        out.extend(_as_list(v) if isinstance(v, (list, tuple)) else [v])
    return out


@MULTIMODAL_REGISTRY.register_processor(KimiMultiModalProcessor, info=KimiProcessingInfo,
                                        dummy_inputs=KimiDummyInputsBuilder)
class KimiAudioASRForCausalLM(nn.Module, SupportsMultiModal, SupportsTranscription):
    """Kimi-Audio main LLM branch; see the module docstring for the input mapping."""

    supports_transcription: ClassVar[Literal[True]] = True
    supports_transcription_only: ClassVar[bool] = False   # token prompts via generate() stay allowed
    # Kimi-Audio is prompted by an instruction, not a language token; these are only
    # what the OpenAI endpoint accepts in `language` (it is not used in the prompt).
    supported_languages: ClassVar[Mapping[str, str]] = {"en": "English", "zh": "Chinese"}

    packed_modules_mapping = {"qkv_proj": ["q_proj", "k_proj", "v_proj"], "gate_up_proj": ["gate_proj", "up_proj"]}

    @classmethod
    def get_placeholder_str(cls, modality: str, i: int) -> str | None:
        return None

    def __init__(self, *, vllm_config: VllmConfig, prefix: str = "") -> None:
        super().__init__()
        config = vllm_config.model_config.hf_config
        self.config = config
        quant_config = vllm_config.quant_config
        self.vq_adaptor = KimiVQAdaptor(int(config.kimia_adaptor_input_dim), config.hidden_size,
                                        float(config.rms_norm_eps))
        self.model = Qwen2Model(vllm_config=vllm_config, prefix=maybe_prefix(prefix, "model"))
        self.lm_head = ParallelLMHead(config.vocab_size, config.hidden_size, quant_config=quant_config,
                                      prefix=maybe_prefix(prefix, "lm_head"))
        self.logits_processor = LogitsProcessor(config.vocab_size)
        self.make_empty_intermediate_tensors = self.model.make_empty_intermediate_tensors

    def get_language_model(self) -> nn.Module:
        return self.model

    # --- embeddings --------------------------------------------------------------
    def _embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model.embed_tokens(ids)

    def _prefill_embedding(self, text_ids: torch.Tensor, audio_ids: torch.Tensor, mask: torch.Tensor,
                           features: torch.Tensor) -> torch.Tensor:
        """Spec §5.2 for one whole prompt → [L, hidden]."""
        a = self._embed(audio_ids)
        mask = mask.to(torch.bool)
        if features.shape[0] > 0:
            adapted = self.vq_adaptor(features.to(device=a.device, dtype=a.dtype))
            sqrt2 = torch.tensor(K.SQRT2_BF16, dtype=a.dtype, device=a.device)
            idx = mask.nonzero(as_tuple=True)[0]
            a = a.index_put((idx,), (a[idx] + adapted) * sqrt2)
        if bool(text_ids.sum() != 0):
            a = a + self._embed(text_ids)
        return a

    def embed_multimodal(self, **kwargs: object) -> list[torch.Tensor]:
        text = _as_list(kwargs.get(FIELD_TEXT_IDS))
        if not text:
            return []
        audio = _as_list(kwargs.get(FIELD_AUDIO_IDS))
        mask = _as_list(kwargs.get(FIELD_MASK))
        feats = _as_list(kwargs.get(FIELD_FEATURES))
        return [self._prefill_embedding(t, a, m, f) for t, a, m, f in zip(text, audio, mask, feats, strict=True)]

    def embed_input_ids(self, input_ids: torch.Tensor, multimodal_embeddings: Any = None, *,
                        is_multimodal: torch.Tensor | None = None, **_: Any) -> torch.Tensor:
        """Decode positions: E[151666] + E[t], or E[151666] alone when t == 0 (§5.5);
        prompt positions are overwritten by the multimodal (prefill) embeddings."""
        e = self._embed(input_ids)
        blank = self._embed(torch.full((1,), K.TEXT_BLANK, dtype=input_ids.dtype, device=input_ids.device))
        e = torch.where((input_ids == 0).unsqueeze(-1), blank, e + blank)
        if multimodal_embeddings is None or len(multimodal_embeddings) == 0 or is_multimodal is None:
            return e
        mm = torch.cat([m.reshape(-1, e.shape[-1]) for m in multimodal_embeddings]).to(e.dtype)
        is_mm = is_multimodal.to(e.device)
        return e.masked_scatter(is_mm.unsqueeze(-1), mm)

    # --- forward -------------------------------------------------------------------
    def forward(self, input_ids: torch.Tensor | None, positions: torch.Tensor,
                intermediate_tensors: IntermediateTensors | None = None,
                inputs_embeds: torch.Tensor | None = None, **kwargs: object) -> torch.Tensor | IntermediateTensors:
        if inputs_embeds is None and intermediate_tensors is None:
            inputs_embeds = self.embed_input_ids(input_ids)
        return self.model(None, positions, intermediate_tensors, inputs_embeds=inputs_embeds)

    def compute_logits(self, hidden_states: torch.Tensor, *args: Any) -> torch.Tensor | None:
        return self.logits_processor(self.lm_head, hidden_states)

    # --- weight loading --------------------------------------------------------------
    SKIP_PREFIXES = ("model.mimo_layers.", "mimo_output.", "model.mimo_norm.", "model.encoder.")
    SKIP_SUFFIXES = ("rotary_emb.inv_freq",)

    @classmethod
    def filter_weights(cls, weights: Iterable[tuple[str, torch.Tensor]]) -> Iterable[tuple[str, torch.Tensor]]:
        """Drop the MIMO branch and rotary buffers; move the adaptor out of `model.`."""
        for name, tensor in weights:
            if name.startswith(cls.SKIP_PREFIXES) or name.endswith(cls.SKIP_SUFFIXES):
                continue
            if name.startswith("model.vq_adaptor."):
                name = name[len("model."):]
            yield name, tensor

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> set[str]:
        loaded = AutoWeightsLoader(self).load_weights(self.filter_weights(weights))
        missing = {n for n, _ in self.named_parameters()} - set(loaded)
        if missing:
            raise ValueError(f"Kimi-Audio checkpoint is missing weights: {sorted(missing)[:8]}")
        return loaded

    # --- OpenAI /v1/audio/transcriptions (SupportsTranscription) ---------------------
    @classmethod
    def get_speech_to_text_config(cls, model_config: Any, task_type: str) -> Any:
        return _speech_to_text_config(model_config, task_type)

    @classmethod
    def get_generation_prompt(cls, *args: Any, **kwargs: Any) -> Any:
        return _transcription_prompt(*args, **kwargs)

    @classmethod
    def post_process_output(cls, text: str) -> str:
        return text

    @classmethod
    def validate_language(cls, language: str | None) -> str | None:
        return language


# =====================================================================================
# reference repetition penalty as a vLLM V1 logits processor (spec §6)
# =====================================================================================

REPETITION_PENALTY_KEY = "kimi_repetition_penalty"


class KimiRepetitionPenaltyLogitsProcessor(V1LogitsProcessor):
    """Moonshot's text repetition penalty, per request via
    ``SamplingParams(extra_args={"kimi_repetition_penalty": p})``.

    At step i (i = number of text ids generated so far) and only when p > 1 and
    i > 16: each DISTINCT id among the last 16 generated ids (prompt excluded) gets
    logit/p if logit ≥ 0 else logit·p, once. vLLM's built-in repetition_penalty
    differs (it counts the prompt, has no window, and starts at step 0).
    """

    def __init__(self, vllm_config: Any, device: torch.device, is_pin_memory: bool) -> None:
        self.window = K.REPETITION_WINDOW
        self._reqs: dict[int, tuple[float, list[int]]] = {}

    @classmethod
    def validate_params(cls, sampling_params: Any) -> None:
        p = (getattr(sampling_params, "extra_args", None) or {}).get(REPETITION_PENALTY_KEY)
        if p is not None and (not isinstance(p, (int, float)) or p <= 0):
            raise ValueError(f"{REPETITION_PENALTY_KEY} must be a positive number, got {p!r}")

    def is_argmax_invariant(self) -> bool:
        return False

    def update_state(self, batch_update: BatchUpdate | None) -> None:
        if batch_update is None:
            return
        for index in batch_update.removed:
            self._reqs.pop(index, None)
        for index, params, _prompt_ids, output_ids in batch_update.added:
            p = (getattr(params, "extra_args", None) or {}).get(REPETITION_PENALTY_KEY)
            if p is not None and float(p) > 1.0:
                self._reqs[index] = (float(p), output_ids)
            else:
                self._reqs.pop(index, None)
        for a, b, direction in batch_update.moved:
            ra, rb = self._reqs.pop(a, None), self._reqs.pop(b, None)
            if ra is not None:
                self._reqs[b] = ra
            if rb is not None and direction == MoveDirectionality.SWAP:
                self._reqs[a] = rb

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        for index, (penalty, output_ids) in self._reqs.items():
            if len(output_ids) <= self.window:
                continue
            ids = sorted({t for t in output_ids[-self.window:] if t >= 0})
            if not ids:
                continue
            cols = torch.tensor(ids, dtype=torch.long, device=logits.device)
            row = logits[index, cols]
            logits[index, cols] = torch.where(row >= 0, row / penalty, row * penalty)
        return logits


LOGITS_PROCESSOR_FQCN = f"{__name__}:KimiRepetitionPenaltyLogitsProcessor"


# =====================================================================================
# OpenAI /v1/audio/transcriptions support (vllm serve)
# =====================================================================================
# The API-server process builds the faithful prompt itself: it runs our FrontEnd
# (loaded once per process) on the decoded 16 kHz audio and hands vLLM the audio
# stream as prompt ids plus the prompt tensors. The OpenAI `prompt` field is the
# instruction (empty → DEFAULT_INSTRUCTION). Audio longer than one chunk
# (KIMI_CHUNK_SECONDS, default 300 s) is rejected here; use the Transcriber / the job
# service for long audio. Stops come from the config's eos_token_id (151667).

_SERVE_FRONTENDS: dict[str, Any] = {}


def _serve_frontend(model_dir: str) -> Any:
    import os

    from kimi_model.frontend import FrontEnd

    fe = _SERVE_FRONTENDS.get(model_dir)
    if fe is None:
        fe = FrontEnd.load(model_dir, os.environ.get("KIMI_SPEECH_TOKENIZER_DIR") or None,
                           device=os.environ.get("KIMI_FRONTEND_DEVICE", "auto"))
        _SERVE_FRONTENDS[model_dir] = fe
    return fe


def _serve_chunk_seconds() -> int:
    import os

    return int(os.environ.get("KIMI_CHUNK_SECONDS", "300"))


def _speech_to_text_config(model_config: Any, task_type: str) -> Any:
    from vllm.config import SpeechToTextConfig

    # No vLLM-side chunking (it would cut on energy with overlap, unlike the reference).
    return SpeechToTextConfig(sample_rate=K.SAMPLE_RATE, max_audio_clip_s=_serve_chunk_seconds(),
                              min_energy_split_window_size=None)


def _transcription_prompt(stt_params: Any = None, *args: Any, **kwargs: Any) -> Any:
    import numpy as np

    if stt_params is None or not hasattr(stt_params, "audio"):
        raise ValueError("Kimi-Audio transcription needs vLLM's SpeechToTextParams (vLLM ≥ 0.26)")
    if getattr(stt_params, "task_type", "transcribe") != "transcribe":
        raise ValueError("Kimi-Audio ASR supports task 'transcribe' only")
    model_config = stt_params.model_config
    audio = np.asarray(stt_params.audio, dtype=np.float32).reshape(-1)
    if audio.size == 0:
        raise ValueError("audio has no samples")
    if audio.size > _serve_chunk_seconds() * K.SAMPLE_RATE:
        raise ValueError(f"audio longer than {_serve_chunk_seconds()} s: use the Kimi transcription service")
    instruction = (getattr(stt_params, "request_prompt", "") or "").strip() or K.DEFAULT_INSTRUCTION
    (prompt,) = _serve_frontend(str(model_config.model)).build_prompts([audio], [instruction])
    if len(prompt.audio_ids) >= model_config.max_model_len:
        raise ValueError(f"prompt of {len(prompt.audio_ids)} positions does not fit max_model_len")
    return {
        "prompt_token_ids": list(prompt.audio_ids),
        "multi_modal_data": {"audio": prompt_to_mm_data(prompt.audio_ids, prompt.text_ids,
                                                        prompt.continuous_mask, prompt.whisper_features)},
    }


def _serve_tokenizer_base() -> type:
    from vllm.tokenizers.kimi_audio import KimiAudioTokenizer

    return KimiAudioTokenizer


class KimiASRServeTokenizer(_serve_tokenizer_base()):  # type: ignore[misc]
    """vLLM's kimi_audio tokenizer with the reference's detokenization (spec §6):
    ids ≥ 152064 are dropped, special tokens are never skipped (a special id is its
    literal name), and incremental decoding is byte-exact (tokens are carried as
    latin-1 strings of their raw bytes, so split UTF-8 sequences are rejoined)."""

    def _kimi_encoding(self) -> Any:
        enc = getattr(self, "_kimi_enc", None)
        if enc is None:
            from kimi_model.text_tokenizer import KimiTextTokenizer

            ranks = dict(self._tokenizer._mergeable_ranks)
            enc = KimiTextTokenizer(ranks).encoding
            self._kimi_enc = enc
        return enc

    def get_added_vocab(self) -> dict[str, int]:
        return {}   # all ids go through convert_tokens_to_string (byte-exact)

    def convert_ids_to_tokens(self, ids: Sequence[int], skip_special_tokens: bool = False) -> list[str]:
        enc = self._kimi_encoding()
        return [enc.decode_single_token_bytes(i).decode("latin-1") if 0 <= i < K.TEXT_VOCAB_SIZE else ""
                for i in ids]

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        return b"".join(t.encode("latin-1") for t in tokens).decode("utf-8", errors="replace")

    def decode(self, ids: Sequence[int] | int, skip_special_tokens: bool = False) -> str:
        if isinstance(ids, int):
            ids = [ids]
        return self._kimi_encoding().decode([i for i in ids if 0 <= i < K.TEXT_VOCAB_SIZE])
