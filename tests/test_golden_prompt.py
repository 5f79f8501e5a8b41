"""The front end reproduces Moonshot's reference prompt for golden case a_en
(../shared/golden/golden.json), in-process and through `kimi-asr prompt`."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kimi_model.audio_io import load_audio
from kimi_model.commands.prompt import prompt_json
from kimi_model.frontend import FrontEnd

REPO_ROOT = Path(__file__).resolve().parents[1]
FEATURE_TOL = 1e-4


def mask_ranges(mask: list[int]) -> list[list[int]]:
    """[[start, end), ...] of the runs of 1s."""
    ranges, start = [], None
    for i, m in enumerate([*mask, 0]):
        if m and start is None:
            start = i
        elif not m and start is not None:
            ranges.append([start, i])
            start = None
    return ranges


@pytest.fixture(scope="module")
def front(tiny_ckpt) -> FrontEnd:
    return FrontEnd.load(tiny_ckpt.model_dir, tiny_ckpt.speech_tokenizer_dir, device="cpu")


@pytest.fixture(scope="module")
def result(front, golden_case) -> dict:
    audio = load_audio(golden_case["audio_path"])
    (prompt,) = front.build_prompts([audio], [golden_case["instruction"]])
    return prompt_json(prompt)


def check_prompt(out: dict, case: dict) -> None:
    assert out["audio_ids"] == case["audio_stream_ids"]
    assert out["text_ids"] == case["text_stream_ids"]
    assert mask_ranges(out["continuous_mask"]) == case["continuous_mask_ranges"]
    assert out["n_semantic"] == case["num_semantic_tokens_N"]
    assert len(out["audio_ids"]) == case["prompt_length_L"]
    feats, ref = out["whisper_features"], case["whisper_features"]
    assert feats["shape"] == ref["shape"]
    assert feats["sum"] == pytest.approx(ref["sum"], abs=FEATURE_TOL)
    np.testing.assert_allclose(feats["row0_first4"], ref["row0_first4"], atol=FEATURE_TOL)
    np.testing.assert_allclose(feats["last_row_first4"], ref["last_row_first4"], atol=FEATURE_TOL)


def test_waveform_is_the_reference_waveform(golden_case):
    y = load_audio(golden_case["audio_path"])
    ref = golden_case["waveform_16k"]
    assert y.dtype == np.float32 and y.shape == (ref["num_samples"],)
    assert y[:8].tolist() == ref["first8"]
    assert hashlib.sha256(y.astype("<f4").tobytes()).hexdigest() == ref["sha256_f32le"]


def test_semantic_codes_equal_the_reference(front, golden_case):
    (codes,) = front.semantic_codes([load_audio(golden_case["audio_path"])])
    assert codes == golden_case["semantic_codes"]
    assert [len(codes)] == golden_case["codes_per_window"]


def test_prompt_equals_the_reference(result, golden_case):
    check_prompt(result, golden_case)


def test_cli_prints_the_reference_prompt(tiny_ckpt, golden_case):
    cmd = [sys.executable, "-m", "kimi_model.cli", "prompt", "--model", str(tiny_ckpt.model_dir),
           "--speech-tokenizer", str(tiny_ckpt.speech_tokenizer_dir), "--device", "cpu",
           "--instruction", golden_case["instruction"], golden_case["audio_path"]]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    check_prompt(json.loads(proc.stdout), golden_case)


def test_cli_default_instruction_and_empty_instruction(tiny_ckpt, golden_case):
    base = [sys.executable, "-m", "kimi_model.cli", "prompt", "--model", str(tiny_ckpt.model_dir),
            "--device", "cpu"]
    default = subprocess.run([*base, golden_case["audio_path"]], cwd=REPO_ROOT, capture_output=True,
                             text=True, timeout=300)
    assert default.returncode == 0, default.stderr
    assert json.loads(default.stdout)["text_ids"] == golden_case["text_stream_ids"]  # README instruction

    empty = subprocess.run([*base, "--instruction", "", golden_case["audio_path"]], cwd=REPO_ROOT,
                           capture_output=True, text=True, timeout=300)
    assert empty.returncode == 0, empty.stderr
    out = json.loads(empty.stdout)
    t = len(golden_case["text_stream_ids"]) - len(out["text_ids"])
    assert t == 7  # the instruction message (7 ids) is gone, nothing else changes
    assert out["audio_ids"] == golden_case["audio_stream_ids"][:1] + golden_case["audio_stream_ids"][1 + t:]
    assert set(out["text_ids"]) == {151666}


def test_cli_reports_bad_audio_as_typed_error(tiny_ckpt, tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio" * 50)
    proc = subprocess.run([sys.executable, "-m", "kimi_model.cli", "prompt", "--model", str(tiny_ckpt.model_dir),
                           str(bad)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert json.loads(proc.stderr)["error"]["code"] == "audio_undecodable"
