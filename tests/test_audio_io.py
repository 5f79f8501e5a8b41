"""audio_io decodes any supported input exactly like librosa.load(path, sr=16000)."""
from __future__ import annotations

import io
import math
import subprocess
import sys
import wave

import numpy as np
import pytest
import soundfile as sf

from kimi_model.audio_io import AudioInfo, load_audio, probe
from kimi_model.errors import AudioDecodeError, EmptyAudioError, UnsupportedAudioFormatError

librosa = pytest.importorskip("librosa")


def _signal(sr: int, channels: int, seconds: float = 1.7, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(sr * seconds) + 3
    t = np.arange(n) / sr
    x = 0.3 * np.sin(2 * np.pi * 440 * t)[:, None] + 0.1 * rng.standard_normal((n, channels))
    return np.clip(x, -1, 1).astype(np.float32)


@pytest.mark.parametrize("sr", [8000, 16000, 22050, 44100, 48000])
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("fmt, subtype, ext", [("WAV", "PCM_16", "wav"), ("FLAC", "PCM_24", "flac"),
                                               ("OGG", "VORBIS", "ogg"), ("MP3", "MPEG_LAYER_III", "mp3")])
def test_waveform_is_bit_identical_to_librosa_load(tmp_path, sr, channels, fmt, subtype, ext):
    path = tmp_path / f"x.{ext}"
    sf.write(path, _signal(sr, channels), sr, format=fmt, subtype=subtype)
    expected, _ = librosa.load(path, sr=16000)
    for source in (path, str(path), path.read_bytes(), io.BytesIO(path.read_bytes())):
        y = load_audio(source)
        assert y.dtype == np.float32 and y.ndim == 1
        np.testing.assert_array_equal(y, expected)


def test_output_length_is_ceil_of_resampled_length(tmp_path):
    path = tmp_path / "x.wav"
    x = _signal(44100, 2)
    sf.write(path, x, 44100)
    assert load_audio(path).shape[0] == math.ceil(len(x) * 16000 / 44100)


def test_golden_waveform_stats(golden_case):
    y = load_audio(golden_case["audio_path"])
    stats = golden_case["waveform_16k"]
    assert y.shape[0] == stats["num_samples"]
    assert float(y.sum()) == pytest.approx(stats["sum"], abs=1e-4)
    assert float(np.abs(y).sum()) == pytest.approx(stats["abs_sum"], abs=1e-3)


def test_probe_is_cheap_header_info(tmp_path):
    path = tmp_path / "x.flac"
    sf.write(path, _signal(44100, 2, seconds=2.0), 44100, format="FLAC")
    info = probe(path)
    assert isinstance(info, AudioInfo)
    assert (info.sample_rate, info.channels, info.format) == (44100, 2, "FLAC")
    assert info.duration_s == pytest.approx(2.0, abs=0.01)
    f = io.BytesIO(path.read_bytes())
    probe(f)
    assert load_audio(f).shape[0] > 0  # probe leaves a file object rewound


@pytest.mark.parametrize("fn", [load_audio, probe])
def test_empty_input_is_empty_audio_error(tmp_path, fn):
    with pytest.raises(EmptyAudioError):
        fn(b"")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(EmptyAudioError):
        fn(empty)


def test_wav_without_samples_is_empty_audio_error(tmp_path):
    path = tmp_path / "zero.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
    with pytest.raises(EmptyAudioError):
        load_audio(path)
    with pytest.raises(EmptyAudioError):
        probe(path)


@pytest.mark.parametrize("fn", [load_audio, probe])
def test_garbage_bytes_are_decode_errors(fn):
    with pytest.raises(AudioDecodeError) as exc:
        fn(b"this is not audio at all" * 20)
    assert exc.value.code == "audio_undecodable"


@pytest.mark.parametrize("fn", [load_audio, probe])
def test_known_but_unsupported_containers_are_named(fn):
    m4a = b"\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00" + b"\x00" * 64
    with pytest.raises(UnsupportedAudioFormatError) as exc:
        fn(m4a)
    assert "MP4" in str(exc.value)


def test_missing_file_is_decode_error(tmp_path):
    with pytest.raises(AudioDecodeError):
        load_audio(tmp_path / "nope.wav")


def test_audio_io_does_not_import_torch():
    code = "import sys, kimi_model.audio_io; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
