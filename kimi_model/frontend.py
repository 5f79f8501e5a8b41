"""FrontEnd: many 16 kHz waveforms → KimiPrompts in one batched pass.

Every audio is cut into 30-s windows; windows of all audios in a call are
batched (chunks of at most ``max_batch`` windows) through both encoders:

* GLM codes: each audio's windows are mel-ed at that audio's own padded length
  (reference: one HF feature-extractor call per audio, padding="longest" to a
  multiple of 1280), then windows of different audios share a batch, padded
  further with a key-padding mask. Extra right padding cannot change a real
  frame: the convs are causal, padded keys are masked, and pooled groups never
  straddle the extra padding (the per-audio length is a multiple of 1280
  samples = 4 encoder frames).
* Whisper features: every window zero-padded to 30 s, full attention, keep
  the first 4·ceil(L_w/1280) frames, concatenate, reshape to [N, 4·d].
"""
from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch

from kimi_model.checkpoint import KimiCheckpoint, load_glm_state, load_whisper_encoder_state, resolve_checkpoint
from kimi_model.constants import WHISPER_FRAMES_PER_TOKEN, WINDOW_SAMPLES
from kimi_model.encoders import GLMSpeechTokenizer, WhisperEncoder
from kimi_model.errors import CheckpointError, EmptyAudioError
from kimi_model.mel import glm_padded_length, log_mel, pad_stack, slaney_mel_filters, split_windows, tokens_for_samples
from kimi_model.prompt import KimiPrompt, build_asr_prompt
from kimi_model.text_tokenizer import KimiTextTokenizer

DEFAULT_MAX_BATCH = 32  # windows per encoder call


def pick_device(device: str | torch.device = "auto") -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class FrontEnd:
    """Holds the text tokenizer and both audio encoders; loaded once per process."""

    def __init__(self, text_tokenizer: KimiTextTokenizer, glm: GLMSpeechTokenizer, whisper: WhisperEncoder,
                 device: torch.device, max_batch: int = DEFAULT_MAX_BATCH,
                 checkpoint: KimiCheckpoint | None = None, attention_impl: str | None = None):
        self.text_tokenizer = text_tokenizer
        self.device = device
        self.max_batch = max(1, int(max_batch))
        self.checkpoint = checkpoint
        # Reference dtypes: GLM in fp32 always; Whisper in bf16 (on GPU) — fp32 on CPU.
        self.whisper_dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        self.glm = glm.to(device=device, dtype=torch.float32).eval()
        self.whisper = whisper.to(device=device, dtype=self.whisper_dtype).eval()
        # Eager attention is the reference's fp32 math (bit-exact on CPU); fused on GPU.
        impl = attention_impl or ("sdpa" if device.type == "cuda" else "eager")
        self.glm.set_attention_impl(impl)
        self.whisper.set_attention_impl(impl)
        self._glm_filters = torch.from_numpy(slaney_mel_filters()).to(device)  # HF float64 filters
        self._whisper_filters = torch.from_numpy(slaney_mel_filters(round_before_norm=True)).to(device)  # npz

    @classmethod
    def load(cls, model_dir: str | os.PathLike, speech_tokenizer_dir: str | os.PathLike | None = None,
             device: str | torch.device = "auto", max_batch: int = DEFAULT_MAX_BATCH,
             attention_impl: str | None = None, require_llm_weights: bool = True) -> "FrontEnd":
        ckpt = resolve_checkpoint(model_dir, speech_tokenizer_dir, require_llm_weights=require_llm_weights)
        glm = GLMSpeechTokenizer.from_config(ckpt.glm_config)
        whisper = WhisperEncoder.from_config(ckpt.whisper_config)
        for module, state, name in ((glm, load_glm_state(ckpt), ckpt.glm_weights.files[0]),
                                    (whisper, load_whisper_encoder_state(ckpt), ckpt.whisper_weights.files[0])):
            try:
                module.load_state_dict(state, strict=True)
            except RuntimeError as exc:
                raise CheckpointError(f"weights in {name} do not fit the config: {exc}") from exc
        return cls(KimiTextTokenizer.from_file(ckpt.tiktoken_path), glm, whisper, pick_device(device),
                   max_batch, ckpt, attention_impl)

    # --- public API -------------------------------------------------------------
    def build_prompts(self, audios: Sequence[np.ndarray], instructions: Sequence[str | None]) -> list[KimiPrompt]:
        """One prompt per (16 kHz mono float32 audio, instruction); None/"" = no instruction."""
        if len(audios) != len(instructions):
            raise ValueError(f"{len(audios)} audios but {len(instructions)} instructions")
        audios = [self._check_audio(a, i) for i, a in enumerate(audios)]
        codes = self.semantic_codes(audios)
        feats = self.whisper_features(audios)
        return [build_asr_prompt(self.text_tokenizer.encode(instr) if instr else [], c, f)
                for instr, c, f in zip(instructions, codes, feats)]

    @torch.inference_mode()
    def semantic_codes(self, audios: Sequence[np.ndarray]) -> list[list[int]]:
        """GLM-4-Voice codes (0…16383) per audio, windows concatenated in time."""
        items: list[tuple[int, int, torch.Tensor, int]] = []  # (audio, window, mel, samples)
        for a, audio in enumerate(audios):
            windows = split_windows(audio)
            mels = log_mel(pad_stack(windows, glm_padded_length(windows)).to(self.device), self._glm_filters)
            items += [(a, w, mels[w], len(win)) for w, win in enumerate(windows)]
        results: dict[tuple[int, int], list[int]] = {}
        order = sorted(range(len(items)), key=lambda i: items[i][2].shape[-1])  # similar lengths batch together
        for start in range(0, len(order), self.max_batch):
            chunk = [items[i] for i in order[start : start + self.max_batch]]
            t_max = max(m.shape[-1] for _, _, m, _ in chunk)
            mel = torch.zeros(len(chunk), chunk[0][2].shape[0], t_max, device=self.device)
            for row, (_, _, m, _) in enumerate(chunk):
                mel[row, :, : m.shape[-1]] = m
            n = torch.tensor([s for *_, s in chunk], device=self.device)
            codes, keep = self.glm(mel, n)
            for row, (a, w, _, s) in enumerate(chunk):
                kept = codes[row][keep[row]].tolist()
                assert len(kept) == tokens_for_samples(s)
                results[(a, w)] = kept
        return [sum((results[(a, w)] for w in range(len(split_windows(audio)))), [])
                for a, audio in enumerate(audios)]

    @torch.inference_mode()
    def whisper_features(self, audios: Sequence[np.ndarray]) -> list[torch.Tensor]:
        """[N, 4·d_model] float32 CPU features per audio (12.5 Hz, aligned with the codes)."""
        windows = [(a, win) for a, audio in enumerate(audios) for win in split_windows(audio)]
        per_audio: list[list[torch.Tensor]] = [[] for _ in audios]
        for start in range(0, len(windows), self.max_batch):
            chunk = windows[start : start + self.max_batch]
            wav = pad_stack([w for _, w in chunk], WINDOW_SAMPLES).to(self.device)
            mel = log_mel(wav, self._whisper_filters).to(self.whisper_dtype)
            hidden = self.whisper(mel)
            for row, (a, win) in enumerate(chunk):
                frames = WHISPER_FRAMES_PER_TOKEN * tokens_for_samples(len(win))
                per_audio[a].append(hidden[row, :frames].float().cpu())
        out = []
        for parts in per_audio:
            frames = torch.cat(parts, dim=0)
            out.append(frames.reshape(frames.shape[0] // WHISPER_FRAMES_PER_TOKEN, -1).contiguous())
        return out

    # --- helpers ------------------------------------------------------------------
    @staticmethod
    def _check_audio(audio: np.ndarray, index: int) -> np.ndarray:
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim != 1:
            raise ValueError(f"audio {index}: expected 1-D 16 kHz mono, got shape {audio.shape}")
        if audio.shape[0] == 0:
            raise EmptyAudioError(f"audio {index} has no samples")
        return audio
