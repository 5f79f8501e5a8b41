"""Whisper-style 128-bin log-mel, batched in torch (spec §4a step 1, §4b step 3).

Both front ends use the same math and differ only in how each 30-s window is
padded before the STFT, which changes the centred frames at the end of the
window and the per-window max used for the floor:
  * GLM-4-Voice: all windows of one audio are zero-padded together to
    round_up(longest window of that audio, 1280) samples (HF feature extractor,
    padding="longest", pad_to_multiple_of=1280) — see ``glm_padded_length``;
  * Whisper-large-v3: every window zero-padded to 480,000 samples.
"""
from __future__ import annotations

import functools
import math

import numpy as np
import torch

from kimi_model.constants import HOP_LENGTH, N_FFT, N_MELS, SAMPLE_RATE, SAMPLES_PER_TOKEN, WINDOW_SAMPLES

LOG_FLOOR = 1e-10
DYNAMIC_RANGE = 8.0  # log10 units kept below each sample's max


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney mel scale: linear below 1 kHz, logarithmic above."""
    f = np.asarray(f, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-300) / min_log_hz) / logstep, f / f_sp)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


@functools.lru_cache(maxsize=4)
def slaney_mel_filters(n_mels: int = N_MELS, n_fft: int = N_FFT, sr: int = SAMPLE_RATE,
                       fmax: float = 8000.0, round_before_norm: bool = False) -> np.ndarray:
    """[n_mels, 1 + n_fft//2] triangular Slaney filters with Slaney area normalisation.

    ``round_before_norm`` reproduces librosa's float32 storage of the triangles
    before the normalisation (what Whisper's mel_filters.npz holds); otherwise
    everything is float64 and rounded once (HF's mel_filter_bank). They differ by
    ~1 ulp; each front end uses the variant its reference used.
    """
    fft_freqs = np.linspace(0.0, sr / 2, 1 + n_fft // 2)
    mel_pts = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_pts)
    ramps = mel_pts[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    tri = np.maximum(0.0, np.minimum(lower, upper))
    enorm = 2.0 / (mel_pts[2:] - mel_pts[:-2])
    if round_before_norm:
        return (tri.astype(np.float32) * enorm[:, None]).astype(np.float32)
    return (tri * enorm[:, None]).astype(np.float32)


def log_mel(waves: torch.Tensor, filters: torch.Tensor) -> torch.Tensor:
    """[B, S] float32 waveforms (already padded) → [B, n_mels, S // 160] log-mel.

    Centred reflect-padded STFT with a periodic Hann window, the last frame
    dropped, power spectrum, mel, log10(max(·, 1e-10)), floored at each row's
    max − 8, then (x + 4) / 4.
    """
    window = torch.hann_window(N_FFT, device=waves.device, dtype=torch.float32)
    stft = torch.stft(waves.float(), N_FFT, HOP_LENGTH, window=window, center=True, pad_mode="reflect",
                      return_complex=True)
    power = stft[..., :-1].abs() ** 2
    mel = filters.to(waves.device) @ power
    logs = torch.clamp(mel, min=LOG_FLOOR).log10()
    peak = logs.amax(dim=(1, 2), keepdim=True)
    logs = torch.maximum(logs, peak - DYNAMIC_RANGE)
    return (logs + 4.0) / 4.0


def split_windows(audio: np.ndarray) -> list[np.ndarray]:
    """Cut 30-s windows of 480,000 samples from t=0; the last one may be shorter."""
    return [audio[i : i + WINDOW_SAMPLES] for i in range(0, len(audio), WINDOW_SAMPLES)]


def tokens_for_samples(n: int) -> int:
    """Semantic codes (and feature rows) for a window of n samples: ceil(n / 1280)."""
    return (n - 1) // SAMPLES_PER_TOKEN + 1


def glm_padded_length(windows: list[np.ndarray]) -> int:
    """Length every window of one audio is padded to for the GLM mel."""
    longest = max(len(w) for w in windows)
    return -(-longest // SAMPLES_PER_TOKEN) * SAMPLES_PER_TOKEN


def pad_stack(windows: list[np.ndarray], length: int) -> torch.Tensor:
    """Zero-pad (or trim) each window to ``length`` and stack as float32 [B, length]."""
    out = np.zeros((len(windows), length), dtype=np.float32)
    for i, w in enumerate(windows):
        n = min(len(w), length)
        out[i, :n] = w[:n]
    return torch.from_numpy(out)
