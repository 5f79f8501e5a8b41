"""Benchmark plumbing without an engine: the record schema issue 5 asks for, the JSONL
append, audio sets, and the real-shape config. Also checks every committed line of
docs/benchmarks.jsonl, so a hand-edited or truncated record fails CI."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from bench import common as C

REPO = Path(__file__).resolve().parents[2]


def _record(**kw):
    base = dict(clip_s=30.0, n_files=4, wall_s=2.0, latencies_s=[1.0, 2.0, 3.0, 4.0], model_shape="tiny",
                audio_set="tones", argv=["bench/engine.py", "--n-files", "4"])
    base.update(kw)
    return C.make_record("engine", "ours", **base)


def test_record_has_required_fields_and_derived_metrics():
    r = _record(scenario="bulk", frontend_share=0.25)
    for k in C.REQUIRED_FIELDS:
        assert k in r
    assert r["rtfx"] == pytest.approx(60.0)               # 4 x 30 s of audio in 2 s
    assert r["requests_per_s"] == pytest.approx(2.0)
    assert r["p50_s"] == pytest.approx(2.5) and r["p95_s"] == pytest.approx(3.85)
    assert r["device"] == C.device_name()
    assert r["command"].endswith("python bench/engine.py --n-files 4")
    assert {"torch", "vllm", "python"} <= set(r["versions"])
    assert r["hardware"]["cpu_cores"] >= 1
    assert r["scenario"] == "bulk" and r["frontend_share"] == 0.25


def test_record_rejects_unknown_bench_or_system():
    with pytest.raises(ValueError):
        C.make_record("gpu", "ours", clip_s=1, n_files=1, wall_s=1, latencies_s=[1], model_shape="t", audio_set="a")
    with pytest.raises(ValueError):
        C.make_record("engine", "theirs", clip_s=1, n_files=1, wall_s=1, latencies_s=[1], model_shape="t",
                      audio_set="a")


def test_empty_latencies_give_null_percentiles():
    r = _record(latencies_s=[])
    assert r["p50_s"] is None and r["p95_s"] is None


def test_command_line_keeps_launch_env():
    cmd = C.command_line(["bench/service.py", "--note", "a b"], env={"KIMI_MAX_NUM_SEQS": "64"})
    assert cmd == "KIMI_MAX_NUM_SEQS=64 python bench/service.py --note 'a b'"


def test_emit_prints_and_appends_one_line_each(tmp_path, capsys):
    out = tmp_path / "sub" / "b.jsonl"
    C.emit(_record(), out)
    C.emit(_record(n_files=8), out)
    lines = out.read_text().splitlines()
    assert [json.loads(x)["n_files"] for x in lines] == [4, 8]
    assert capsys.readouterr().out.splitlines() == lines


def test_emit_refuses_incomplete_records(tmp_path):
    r = _record()
    del r["rtfx"]
    with pytest.raises(ValueError):
        C.emit(r, tmp_path / "x.jsonl")
    assert not (tmp_path / "x.jsonl").exists()


def test_jsonl_path_resolution(monkeypatch, tmp_path):
    monkeypatch.delenv("KIMI_BENCH_JSONL", raising=False)
    assert C.jsonl_path(None) == C.DEFAULT_JSONL
    assert C.jsonl_path("-") is None
    monkeypatch.setenv("KIMI_BENCH_JSONL", str(tmp_path / "e.jsonl"))
    assert C.jsonl_path(None) == tmp_path / "e.jsonl"
    assert C.jsonl_path(str(tmp_path / "a.jsonl")) == tmp_path / "a.jsonl"


def test_tone_audio_set_is_exact_distinct_and_cached(tmp_path):
    s = C.ensure_audio_set("tones", 2.5, 3, cache=tmp_path)
    assert len(s.files) == 3 and "tones" in s.description and "3 distinct files of 2.5 s" in s.description
    waves = [sf.read(p)[0] for p in s.files]
    assert all(len(w) == 40_000 for w in waves)
    assert not np.allclose(waves[0], waves[1])
    mtimes = [p.stat().st_mtime_ns for p in s.files]
    again = C.ensure_audio_set("tones", 2.5, 3, cache=tmp_path)
    assert [p.stat().st_mtime_ns for p in again.files] == mtimes
    assert s.subset(1, 3).files == s.files[1:3]


def test_synth_speech_is_exact_length_and_seeded():
    phrases = [np.full(3000, i + 1, dtype=np.float32) for i in range(4)]
    a, b, a2 = (C.synth_speech(1.0, seed, phrases) for seed in (0, 1, 0))
    assert len(a) == 16_000 and a.dtype == np.float32
    assert np.array_equal(a, a2) and not np.array_equal(a, b)


def test_real_shape_config_matches_spec():
    cfg = C.real_shape_config()
    assert (cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"],
            cfg["num_key_value_heads"], cfg["vocab_size"]) == (3584, 28, 28, 4, 168448)
    assert cfg["architectures"] == ["MoonshotKimiaForCausalLM"]
    assert C.real_shape_config(layers=2)["num_hidden_layers"] == 2


def test_committed_benchmarks_jsonl_is_valid():
    path = REPO / "docs" / "benchmarks.jsonl"
    if not path.exists():
        pytest.skip("no docs/benchmarks.jsonl yet")
    for i, line in enumerate(path.read_text().splitlines(), 1):
        r = json.loads(line)
        missing = [k for k in C.REQUIRED_FIELDS if k not in r]
        assert not missing, f"line {i} lacks {missing}"
        assert r["bench"] in C.BENCHES and r["system"] in C.SYSTEMS, f"line {i}"


def test_profile_summary_classifies_samples(tmp_path):
    raw = tmp_path / "p.raw"
    raw.write_text("\n".join([
        "process 10:\"python bench/transcriber.py\";run (t.py:1);build_prompts (f.py:2);semantic_codes (f.py:3) 6",
        "process 10:\"python bench/transcriber.py\";run (t.py:1);build_prompts (f.py:2);whisper_features (f.py:4) 2",
        "process 10:\"python\";process 11:\"EngineCore\";run_busy_loop (c.py:1);execute_model (r.py:9) 1",
        "process 10:\"python\";process 11:\"EngineCore\";run_busy_loop (c.py:1);poll (c.py:2) 1",
        "process 10:\"python\";process 12:\"Worker\";MessageQueue.acquire_read (m.py:1);SpinCondition.wait (m.py:2) 10",
        "garbage",
    ]))
    shares = C.summarize_collapsed(raw, main_pid=10)
    assert shares == {"vLLM worker: spin-waiting on its message queue": 0.5, "front end: GLM-4-Voice tokenizer": 0.3,
                      "front end: Whisper features": 0.1, "LLM: model forward": 0.05,
                      "vLLM child processes: scheduler, IPC, other": 0.05}
