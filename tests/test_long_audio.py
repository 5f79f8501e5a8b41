"""Long audio: fixed 5-min chunks on 30-s window boundaries, transcribed concurrently."""
from __future__ import annotations

import numpy as np
import pytest

from engine_fixtures import engine, frontend, reference_lm  # noqa: F401
from kimi_model import constants as K
from kimi_model.transcriber import (
    TranscriberConfig,
    TranscriptionOptions,
    num_semantic_tokens,
    split_chunks,
    stitch_texts,
)

SR = K.SAMPLE_RATE


def test_split_chunks_rules():
    assert split_chunks(300 * SR, 300) == [(0, 300 * SR)]                       # up to one chunk: whole
    assert split_chunks(300 * SR + 1, 300) == [(0, 300 * SR), (300 * SR, 300 * SR + 1)]
    assert split_chunks(600 * SR, 300) == [(0, 300 * SR), (300 * SR, 600 * SR)]
    assert split_chunks(95 * SR, 30) == [(0, 30 * SR), (30 * SR, 60 * SR), (60 * SR, 90 * SR), (90 * SR, 95 * SR)]
    for s, _ in split_chunks(3600 * SR + 7, 300):
        assert s % K.WINDOW_SAMPLES == 0                                          # 30-s window boundaries
    with pytest.raises(ValueError):
        TranscriberConfig(model_dir="x", chunk_seconds=45)


def test_num_semantic_tokens():
    assert num_semantic_tokens(166080) == 130
    assert num_semantic_tokens(K.WINDOW_SAMPLES) == 375
    assert num_semantic_tokens(K.WINDOW_SAMPLES + 1) == 376
    assert num_semantic_tokens(300 * SR) == 3750


def test_stitch_texts():
    assert stitch_texts(["hello", "world"]) == "hello world"
    assert stitch_texts(["hello ", "world"]) == "hello world"
    assert stitch_texts(["你好", "世界"]) == "你好世界"
    assert stitch_texts(["a", "", "b"]) == "a b"


@pytest.fixture(scope="module")
def ten_minutes(golden_case):
    from kimi_model.audio_io import load_audio

    a = load_audio(golden_case["audio_path"])
    reps = int(np.ceil(600 * SR / len(a)))
    wave = np.tile(a, reps)[: 600 * SR].copy()
    wave[300 * SR:] *= 0.7          # make the two chunks differ
    return wave


@pytest.mark.engine
def test_ten_minute_audio(engine, ten_minutes, frontend, reference_lm):  # noqa: F811
    from kimi_model.reference import generate

    calls = []
    opts = TranscriptionOptions(max_tokens=4, ignore_eos=True)
    r = engine.transcribe(ten_minutes, opts, progress=calls.append)
    assert r.duration_s == pytest.approx(600.0)
    assert [(s.start_s, s.end_s) for s in r.segments] == [(0.0, 300.0), (300.0, 600.0)]
    assert all(len(s.token_ids) == 4 for s in r.segments)
    assert r.token_ids == r.segments[0].token_ids + r.segments[1].token_ids
    assert r.text == stitch_texts([s.text for s in r.segments])
    assert calls == [0.5, 1.0]
    # each chunk is exactly the reference on that 5-min stretch (one prompt of 3763 positions)
    second = ten_minutes[300 * SR:]
    (p,) = frontend.build_prompts([second], [K.DEFAULT_INSTRUCTION])
    assert len(p.audio_ids) == 7 + 3750 + 6
    assert r.segments[1].token_ids == generate(reference_lm, p, 4, ignore_eos=True).token_ids
    assert engine.transcribe(ten_minutes[: 300 * SR], opts).token_ids == r.segments[0].token_ids


@pytest.mark.engine
def test_chunk_that_cannot_fit_is_rejected_and_engine_survives(engine, ten_minutes, golden_case):  # noqa: F811
    from kimi_model.errors import RequestTooLongError

    with pytest.raises(RequestTooLongError) as e:   # 3763-position chunk + 4500 tokens > 8192
        engine.transcribe(ten_minutes, TranscriptionOptions(max_tokens=4500))
    assert e.value.permanent and e.value.code == "request_too_long"
    r = engine.transcribe(golden_case["audio_path"], TranscriptionOptions(max_tokens=24))
    assert r.token_ids == golden_case["generated_text_ids"]
