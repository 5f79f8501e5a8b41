"""The vLLM engine (through Transcriber / CLI) is token-identical to the reference.

One session engine (engine_fixtures.engine): prefix caching on, chunked prefill with
max_num_batched_tokens=64 (every prompt here is prefilled in several chunks, mixed
with other requests' decodes), up to 16 sequences at once, fp32.
"""
from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from engine_fixtures import (  # noqa: F401 - pytest fixtures
    ENGINE_MAX_NUM_BATCHED_TOKENS, compiled_engine, engine, frontend, reference_lm)
from kimi_model import constants as K
from kimi_model.reference import generate as reference_generate

pytestmark = pytest.mark.engine

MAX_TOKENS = 20


@pytest.fixture(scope="module")
def golden_audio(golden_case):
    from kimi_model.audio_io import load_audio

    return load_audio(golden_case["audio_path"])


def synthetic_audio(seed: int, seconds: float) -> np.ndarray:
    """Deterministic speech-like noise: a few gliding tones plus noise bursts."""
    rng = np.random.default_rng(seed)
    n = int(seconds * K.SAMPLE_RATE)
    t = np.arange(n) / K.SAMPLE_RATE
    y = np.zeros(n)
    for _ in range(3):
        f0, f1 = rng.uniform(120, 900, 2)
        y += rng.uniform(0.05, 0.2) * np.sin(2 * np.pi * (f0 + (f1 - f0) * t / max(seconds, 1e-3) / 2) * t)
    y += 0.05 * rng.standard_normal(n) * (np.sin(2 * np.pi * rng.uniform(1, 4) * t) > 0)
    return y.astype(np.float32)


@pytest.fixture(scope="module")
def audios(golden_audio):
    """16 clips of different lengths: crops of the golden sample and synthetic seeds."""
    a = golden_audio
    clips = [a, a[:8000], a[:40000], a[20000:120000], a[50000:], a[::-1][:150000].copy(), a[:90000] * 0.5, a[30000:75000]]
    clips += [synthetic_audio(seed, sec) for seed, sec in enumerate((0.7, 1.9, 3.3, 4.1, 5.6, 7.2, 9.0, 12.5))]
    assert len({len(c) for c in clips}) == len(clips) == 16
    return clips


@pytest.fixture(scope="module")
def prompts(frontend, audios):  # noqa: F811
    return frontend.build_prompts(audios, [K.DEFAULT_INSTRUCTION] * len(audios))


@pytest.fixture(scope="module")
def reference_ids(reference_lm, prompts):  # noqa: F811
    return [reference_generate(reference_lm, p, MAX_TOKENS).token_ids for p in prompts]


def opts(**kw):
    from kimi_model.transcriber import TranscriptionOptions

    return TranscriptionOptions(**{"max_tokens": MAX_TOKENS, **kw})


# --- golden ----------------------------------------------------------------------------

def test_golden_through_transcriber(engine, golden_case):  # noqa: F811
    r = engine.transcribe(golden_case["audio_path"], opts(max_tokens=24))
    assert r.token_ids == golden_case["generated_text_ids"]
    assert r.text == golden_case["detokenized_text"]
    assert r.duration_s == pytest.approx(166080 / 16000)
    assert len(r.segments) == 1 and r.segments[0].token_ids == r.token_ids
    assert r.segments[0].start_s == 0 and r.segments[0].end_s == pytest.approx(r.duration_s)


def test_golden_from_bytes_and_ndarray(engine, golden_case, golden_audio):  # noqa: F811
    with open(golden_case["audio_path"], "rb") as f:
        data = f.read()
    assert engine.transcribe(data, opts(max_tokens=24)).token_ids == golden_case["generated_text_ids"]
    assert engine.transcribe(golden_audio, opts(max_tokens=24)).token_ids == golden_case["generated_text_ids"]


def _cli(engine, argv, capsys):  # noqa: F811
    from kimi_model.cli import build_parser
    from kimi_model.commands import transcribe as cmd

    args = build_parser("transcribe").parse_args(["transcribe", *argv])
    status = cmd.run(args, transcriber=engine)
    return status, capsys.readouterr()


def test_golden_through_cli(engine, golden_case, capsys, tmp_path):  # noqa: F811
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF....not really a wav file at all")
    status, out = _cli(engine, ["--model", "unused", "--max-tokens", "24", golden_case["audio_path"], str(bad),
                                golden_case["audio_path"]], capsys)
    lines = [json.loads(line) for line in out.out.splitlines()]
    assert status == 2 and len(lines) == 3
    for obj in (lines[0], lines[2]):
        assert set(obj) == {"file", "text", "token_ids", "duration_s"}
        assert obj["file"] == golden_case["audio_path"]
        assert obj["token_ids"] == golden_case["generated_text_ids"]
        assert obj["text"] == golden_case["detokenized_text"]
    assert lines[1]["file"] == str(bad) and lines[1]["error"]["code"] == "audio_undecodable"


def test_cli_formats_and_empty_instruction(engine, golden_case, reference_lm, frontend, golden_audio, capsys):  # noqa: F811
    status, out = _cli(engine, ["--model", "x", "--max-tokens", "24", "--format", "text", golden_case["audio_path"]],
                       capsys)
    assert status == 0 and out.out == golden_case["detokenized_text"] + "\n"
    status, out = _cli(engine, ["--model", "x", "--max-tokens", "5", "--format", "srt", golden_case["audio_path"]],
                       capsys)
    assert status == 0 and out.out.startswith("1\n00:00:00,000 --> 00:00:10,380\n")
    status, out = _cli(engine, ["--model", "x", "--max-tokens", "5", "--format", "vtt", golden_case["audio_path"]],
                       capsys)
    assert status == 0 and out.out.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:10.380\n")
    # --instruction "" → no instruction message (L = N + 6)
    (p,) = frontend.build_prompts([golden_audio], [None])
    assert len(p.audio_ids) == 130 + 6
    want = reference_generate(reference_lm, p, 12).token_ids
    status, out = _cli(engine, ["--model", "x", "--instruction", "", "--max-tokens", "12", golden_case["audio_path"]],
                       capsys)
    assert status == 0 and json.loads(out.out)["token_ids"] == want


# --- engine vs reference -----------------------------------------------------------------

def test_engine_matches_reference_per_audio(engine, audios, reference_ids):  # noqa: F811
    assert ENGINE_MAX_NUM_BATCHED_TOKENS < 100   # every prompt below is prefilled in chunks
    for audio, want in zip(audios, reference_ids):
        assert engine.transcribe(audio, opts()).token_ids == want


def test_prefix_cache_hit_and_skip_give_reference(engine, prompts, reference_ids):  # noqa: F811
    for p, want in list(zip(prompts, reference_ids))[:4]:
        assert engine.generate_prompt(p, opts()) == want                      # warm (maybe cached) run
        assert engine.generate_prompt(p, opts()) == want                      # certainly a cache hit
        assert engine.generate_prompt(p, opts(), sampling_overrides={"skip_reading_prefix_cache": True}) == want


def test_same_audio_ids_different_features_not_confused(engine, reference_lm, prompts):  # noqa: F811
    """Prefix caching must not reuse KV across two prompts whose audio-stream ids are
    equal but whose continuous features differ (the mm hash covers the tensors)."""
    from kimi_model.prompt import KimiPrompt

    base = prompts[0]
    g = torch.Generator().manual_seed(123)
    other = KimiPrompt(list(base.audio_ids), list(base.text_ids), list(base.continuous_mask),
                       torch.randn(base.whisper_features.shape, generator=g) * 3, base.n_semantic)
    want_base = reference_generate(reference_lm, base, MAX_TOKENS).token_ids
    want_other = reference_generate(reference_lm, other, MAX_TOKENS).token_ids
    assert want_base != want_other
    assert engine.generate_prompt(base, opts()) == want_base
    assert engine.generate_prompt(other, opts()) == want_other
    assert engine.generate_prompt(base, opts()) == want_base
    # same ids and features, different text stream (instruction) → different result too
    text2 = list(base.text_ids)
    text2[1] = 1356
    third = KimiPrompt(list(base.audio_ids), text2, list(base.continuous_mask), base.whisper_features, base.n_semantic)
    assert engine.generate_prompt(third, opts()) == reference_generate(reference_lm, third, MAX_TOKENS).token_ids


def test_16_concurrent_requests_equal_each_alone(engine, audios, reference_ids):  # noqa: F811
    alone = [engine.transcribe(a, opts()).token_ids for a in audios]
    assert alone == reference_ids
    barrier = threading.Barrier(len(audios))

    def one(a):
        barrier.wait()
        return engine.transcribe(a, opts()).token_ids

    with ThreadPoolExecutor(len(audios)) as pool:
        together = list(pool.map(one, audios))
    assert together == alone


def test_stop_on_text_eos_matches_reference(engine, reference_lm, prompts, audios):  # noqa: F811
    stopped = 0
    for p, a in zip(prompts, audios):
        ref = reference_generate(reference_lm, p, 60)
        got = engine.transcribe(a, opts(max_tokens=60)).token_ids
        assert got == ref.token_ids and K.TEXT_EOS not in got
        stopped += ref.stopped_on_eos
    assert stopped > 0, "no clip stopped on 151667; the stop path went untested"


def test_ignore_eos_gives_exactly_max_tokens(engine, reference_lm, prompts, audios):  # noqa: F811
    for p, a in list(zip(prompts, audios))[:4]:
        ref = reference_generate(reference_lm, p, 30, ignore_eos=True)
        got = engine.transcribe(a, opts(max_tokens=30, ignore_eos=True)).token_ids
        assert len(got) == 30 and got == ref.token_ids


def test_repetition_penalty_parity(engine, reference_lm, prompts, audios):  # noqa: F811
    changed = 0
    for p, a in list(zip(prompts, audios))[:6]:
        ref = reference_generate(reference_lm, p, 48, repetition_penalty=1.1, ignore_eos=True)
        plain = reference_generate(reference_lm, p, 48, ignore_eos=True)
        got = engine.transcribe(a, opts(max_tokens=48, repetition_penalty=1.1, ignore_eos=True)).token_ids
        assert got == ref.token_ids
        assert got[:17] == plain.token_ids[:17]          # nothing is penalised before step 17
        changed += got != plain.token_ids
    assert changed > 0, "penalty 1.1 never changed a sequence; the test would not catch a no-op"


def test_sampling_is_seeded_and_top5(engine, golden_audio):  # noqa: F811
    a = engine.transcribe(golden_audio, opts(temperature=1.0, seed=7, ignore_eos=True)).token_ids
    b = engine.transcribe(golden_audio, opts(temperature=1.0, seed=7, ignore_eos=True)).token_ids
    c = engine.transcribe(golden_audio, opts(temperature=1.0, seed=8, ignore_eos=True)).token_ids
    assert a == b and len(a) == MAX_TOKENS
    assert a != c


# --- bad requests ------------------------------------------------------------------------

def test_bad_requests_are_typed_and_engine_survives(engine, golden_case, prompts, reference_ids):  # noqa: F811
    from kimi_model.errors import AudioDecodeError, EmptyAudioError, InvalidRequestError, RequestTooLongError
    from kimi_model.prompt import KimiPrompt

    good = []

    def keep_busy():
        good.append(engine.transcribe(golden_case["audio_path"], opts(max_tokens=24)).token_ids)

    t = threading.Thread(target=keep_busy)
    t.start()
    with pytest.raises(AudioDecodeError) as e:
        engine.transcribe(b"\x00\x01not audio at all" * 10)
    assert e.value.code == "audio_undecodable" and e.value.permanent
    with pytest.raises(EmptyAudioError):
        engine.transcribe(b"")
    with pytest.raises(RequestTooLongError):
        engine.transcribe(golden_case["audio_path"], opts(max_tokens=8192))
    with pytest.raises(InvalidRequestError):
        engine.transcribe(np.zeros((2, 100), np.float32))
    # a prompt vLLM's processor rejects (features do not match the mask)
    p = prompts[0]
    broken = KimiPrompt(list(p.audio_ids), list(p.text_ids), list(p.continuous_mask), p.whisper_features, p.n_semantic)
    broken.whisper_features = p.whisper_features[:-1]
    with pytest.raises(InvalidRequestError):
        engine.generate_prompt(broken, opts())
    t.join()
    assert good == [golden_case["generated_text_ids"]]
    assert engine.generate_prompt(prompts[1], opts()) == reference_ids[1]


def test_timed_out_request_is_aborted_and_engine_keeps_serving(engine, golden_case):  # noqa: F811
    with pytest.raises(TimeoutError):
        engine.transcribe(golden_case["audio_path"], opts(max_tokens=4000, ignore_eos=True), timeout=1.0)
    llm = engine._inner._llm
    deadline = time.monotonic() + 20
    while llm.output_processor.has_unfinished_requests() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not llm.output_processor.has_unfinished_requests(), "the timed-out request still runs in vLLM"
    assert engine.transcribe(golden_case["audio_path"], opts(max_tokens=24)).token_ids == golden_case["generated_text_ids"]


def test_compiled_engine_gives_the_same_tokens(compiled_engine, golden_case, audios, reference_ids):  # noqa: F811
    """torch.compile'd decoder (the path CUDA graphs wrap on GPU): golden and mixed batches."""
    r = compiled_engine.transcribe(golden_case["audio_path"], opts(max_tokens=24))
    assert r.token_ids == golden_case["generated_text_ids"]
    with ThreadPoolExecutor(len(audios)) as pool:
        together = list(pool.map(lambda a: compiled_engine.transcribe(a, opts()).token_ids, audios))
    assert together == reference_ids
