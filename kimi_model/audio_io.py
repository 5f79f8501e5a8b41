"""Decode user audio to 16 kHz mono float32 exactly as ``librosa.load(path, sr=16000)``.

Why the exact recipe matters: the GLM-4-Voice VQ argmin is sensitive to tiny
waveform changes, so a different resampler changes the semantic codes. The
reference recipe (librosa 0.11) is: soundfile read as float32 → float32 mean over
channels → soxr 'HQ' resample → trim/zero-pad to ceil(n·16000/sr).

This module must not import torch: the HTTP API uses it to validate uploads.
"""
from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass
from typing import BinaryIO, Union

import numpy as np
import soundfile as sf
import soxr

from kimi_model.constants import SAMPLE_RATE
from kimi_model.errors import AudioDecodeError, EmptyAudioError, UnsupportedAudioFormatError

AudioSource = Union[bytes, bytearray, memoryview, str, os.PathLike, BinaryIO]

# Container formats we accept (soundfile/libsndfile names).
SUPPORTED_FORMATS = frozenset({"WAV", "WAVEX", "RF64", "W64", "FLAC", "OGG", "MP3", "AIFF", "AU", "CAF"})


@dataclass(frozen=True)
class AudioInfo:
    duration_s: float
    sample_rate: int
    channels: int
    format: str


def _source(src: AudioSource) -> tuple[object, str]:
    """Return something soundfile can open, plus a name for messages."""
    if isinstance(src, (bytes, bytearray, memoryview)):
        data = bytes(src)
        if not data:
            raise EmptyAudioError("audio is empty (0 bytes)")
        return io.BytesIO(data), "<bytes>"
    if isinstance(src, (str, os.PathLike)):
        path = os.fspath(src)
        if not os.path.isfile(path):
            raise AudioDecodeError(f"audio file not found: {path}")
        if os.path.getsize(path) == 0:
            raise EmptyAudioError(f"audio file is empty (0 bytes): {path}")
        return path, path
    if hasattr(src, "read"):
        return src, getattr(src, "name", "<file>")
    raise AudioDecodeError(f"cannot read audio from a {type(src).__name__}")


# Magic bytes of real audio containers libsndfile cannot read: naming them lets
# us say "unsupported format" instead of "corrupt file".
_UNSUPPORTED_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (4, b"ftyp", "MP4/M4A/AAC"),
    (0, b"\x1a\x45\xdf\xa3", "WebM/Matroska"),
    (0, b"\x30\x26\xb2\x75", "WMA/ASF"),
    (0, b"#!AMR", "AMR"),
    (0, b"\xff\xf1", "AAC (ADTS)"),
    (0, b"\xff\xf9", "AAC (ADTS)"),
)


def _head(src: AudioSource) -> bytes:
    """First bytes of the input (for naming unsupported containers); never moves a file."""
    try:
        if isinstance(src, (bytes, bytearray, memoryview)):
            return bytes(src[:16])
        if isinstance(src, (str, os.PathLike)):
            with open(src, "rb") as fh:
                return fh.read(16)
        return b""  # a caller's file object: not worth disturbing for a message
    except OSError:
        return b""


def _classify(exc: Exception, src: AudioSource, name: str) -> Exception:
    """Map libsndfile's failure onto our typed errors."""
    msg = str(exc)
    if "format not recognised" in msg.lower() or "unknown format" in msg.lower():
        head = _head(src)
        for offset, magic, label in _UNSUPPORTED_MAGIC:
            if head[offset : offset + len(magic)] == magic:
                return UnsupportedAudioFormatError(
                    f"unsupported audio format {label} in {name}; use WAV, FLAC, OGG or MP3"
                )
        return AudioDecodeError(f"not a readable audio file (format not recognised): {name}")
    return AudioDecodeError(f"could not decode audio {name}: {msg}")


def _check_format(fmt: str, name: str) -> None:
    if fmt not in SUPPORTED_FORMATS:
        raise UnsupportedAudioFormatError(
            f"unsupported audio format {fmt} in {name}; use WAV, FLAC, OGG or MP3"
        )


def probe(src: AudioSource) -> AudioInfo:
    """Cheap header check (no full decode), with the same typed errors as ``load_audio``."""
    f, name = _source(src)
    start = f.tell() if hasattr(f, "tell") else None
    try:
        info = sf.info(f)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise _classify(exc, src, name) from exc
    finally:
        if start is not None:
            f.seek(start)  # leave a caller's file where it was, ready for load_audio
    _check_format(info.format, name)
    if info.frames <= 0 and info.duration <= 0:
        raise EmptyAudioError(f"audio has no samples: {name}")
    return AudioInfo(float(info.duration), int(info.samplerate), int(info.channels), str(info.format))


def resample_like_librosa(y: np.ndarray, orig_sr: int, target_sr: int = SAMPLE_RATE) -> np.ndarray:
    """soxr 'HQ', then fix the length to ceil(n·target/orig) (librosa.resample defaults)."""
    if orig_sr == target_sr:
        return y
    n_out = int(math.ceil(y.shape[-1] * (float(target_sr) / orig_sr)))
    out = soxr.resample(y, orig_sr, target_sr, quality="soxr_hq")
    if out.shape[-1] > n_out:
        out = out[:n_out]
    elif out.shape[-1] < n_out:
        out = np.pad(out, (0, n_out - out.shape[-1]))
    return np.asarray(out, dtype=y.dtype)


def load_audio(src: AudioSource) -> np.ndarray:
    """Decode bytes, a path or a file-like object to 16 kHz mono float32."""
    f, name = _source(src)
    try:
        with sf.SoundFile(f) as sfile:
            _check_format(sfile.format, name)
            sr = sfile.samplerate
            y = sfile.read(frames=-1, dtype="float32", always_2d=False).T
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise _classify(exc, src, name) from exc
    if y.shape[-1] == 0:
        raise EmptyAudioError(f"audio has no samples: {name}")
    if not np.isfinite(y).all():
        raise AudioDecodeError(f"audio contains non-finite samples: {name}")
    if y.ndim > 1:
        y = np.mean(y, axis=tuple(range(y.ndim - 1)))  # float32 mean, as librosa.to_mono
    y = resample_like_librosa(y, sr)
    return np.ascontiguousarray(y, dtype=np.float32)
