"""Front-end building blocks, each checked against the spec (§3, §4) in isolation,
then the batched FrontEnd against itself run one audio at a time."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file, save_file

from kimi_model import constants as K
from kimi_model.audio_io import load_audio
from kimi_model.checkpoint import load_glm_state, load_whisper_encoder_state, resolve_checkpoint
from kimi_model.encoders import avg_pool_time, block_causal_mask, nearest_code
from kimi_model.errors import CheckpointError
from kimi_model.frontend import FrontEnd
from kimi_model.mel import glm_padded_length, log_mel, slaney_mel_filters, split_windows, tokens_for_samples
from kimi_model.prompt import KimiPrompt, Message, build_asr_prompt, layout

B = K.TEXT_BLANK


# --- block-causal attention mask (§4a) -----------------------------------------------
def test_block_causal_mask_sees_past_and_own_block_but_never_padding():
    valid = torch.tensor([[1, 1, 1, 1, 1, 0]], dtype=torch.bool)
    m = block_causal_mask(valid, block=2)[0, 0].int()
    expected = torch.tensor([
        # keys: 0  1  2  3  4  5(pad)
        [1, 1, 0, 0, 0, 0],  # query 0: own block {0,1}
        [1, 1, 0, 0, 0, 0],
        [1, 1, 1, 1, 0, 0],  # query 2: past + own block {2,3}
        [1, 1, 1, 1, 0, 0],
        [1, 1, 1, 1, 1, 0],  # query 4: block {4,5} but 5 is padding
        [1, 1, 1, 1, 1, 0],  # padding query: still only real keys
    ])
    assert torch.equal(m, expected)


def test_block_causal_mask_uses_blocks_of_200_frames_by_spec():
    valid = torch.ones(1, 450, dtype=torch.bool)
    m = block_causal_mask(valid, K.BLOCK_CAUSAL_SIZE)[0, 0]
    assert m[0, 199] and not m[0, 200]       # frame 0 sees the end of its block, not the next block
    assert m[399, 0] and m[200, 399] and not m[200, 400]
    assert m[449, 449] and m[400, 449]


# --- average pooling (§4a) -------------------------------------------------------------
def test_avg_pool_takes_means_of_four_frames():
    x = torch.arange(8, dtype=torch.float32).view(1, 8, 1)
    assert avg_pool_time(x, 4).flatten().tolist() == [1.5, 5.5]


def test_avg_pool_right_pads_with_zeros_to_a_multiple_of_four():
    x = torch.ones(1, 6, 2)
    assert avg_pool_time(x, 4)[0, :, 0].tolist() == [1.0, 0.5]


# --- vector quantisation (§4a) --------------------------------------------------------
def test_vq_is_argmin_of_squared_distance():
    g = torch.Generator().manual_seed(0)
    x, cb = torch.randn(50, 16, generator=g), torch.randn(300, 16, generator=g)
    brute = ((x[:, None, :] - cb[None]) ** 2).sum(-1).argmin(-1)
    assert torch.equal(nearest_code(x, cb), brute)


def test_vq_tie_goes_to_the_first_code():
    cb = torch.tensor([[5.0, 5.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    x = torch.tensor([[0.5, 0.5], [1.0, 0.0]])  # equidistant from codes 1 and 2; duplicate codes 1 and 3
    assert nearest_code(x, cb).tolist() == [1, 1]


# --- mel and windowing (§4) -----------------------------------------------------------
def test_mel_filters_are_librosa_slaney_filters():
    librosa = pytest.importorskip("librosa")
    ref = librosa.filters.mel(sr=16000, n_fft=400, n_mels=128)
    assert np.array_equal(slaney_mel_filters(round_before_norm=True), ref)   # Whisper's mel_filters.npz
    np.testing.assert_allclose(slaney_mel_filters(), ref, atol=1e-8)         # HF float64 filters


def test_log_mel_has_one_frame_per_hop_and_eight_decades_of_range():
    rng = np.random.default_rng(0)
    wav = torch.from_numpy(rng.standard_normal((2, 12_800)).astype(np.float32))
    wav[1] *= 1e-3
    mel = log_mel(wav, torch.from_numpy(slaney_mel_filters()))
    assert mel.shape == (2, 128, 80)
    for row in mel:  # floor at max − 8 (log10), then (x + 4) / 4
        assert row.max() - row.min() <= 2.0 + 1e-6


def test_log_mel_matches_a_float64_numpy_reference():
    rng = np.random.default_rng(1)
    x = rng.standard_normal(3_200).astype(np.float32)
    padded = np.pad(x.astype(np.float64), 200, mode="reflect")
    win = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(400) / 400)  # periodic Hann
    frames = np.stack([padded[i * 160 : i * 160 + 400] * win for i in range(len(x) // 160)])
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    logs = np.log10(np.maximum(slaney_mel_filters().astype(np.float64) @ power.T, 1e-10))
    ref = (np.maximum(logs, logs.max() - 8) + 4) / 4
    ours = log_mel(torch.from_numpy(x)[None], torch.from_numpy(slaney_mel_filters()))[0].numpy()
    np.testing.assert_allclose(ours, ref, atol=2e-5)


def test_windows_are_30_s_from_zero_and_tokens_are_ceil_of_1280():
    audio = np.zeros(45 * 16000, dtype=np.float32)
    assert [len(w) for w in split_windows(audio)] == [480_000, 240_000]
    assert [tokens_for_samples(n) for n in (1, 1280, 1281, 8000, 166_080, 480_000)] == [1, 1, 2, 7, 130, 375]
    assert glm_padded_length(split_windows(audio)) == 480_000   # every window padded to the longest
    assert glm_padded_length([np.zeros(8000)]) == 8960


# --- prompt layout (§3) -------------------------------------------------------------------
def test_asr_layout_with_instruction_matches_the_spec_table():
    instr, codes = [11, 12, 13], [0, 7, 16383]
    p = build_asr_prompt(instr, codes, torch.zeros(3, 8))
    assert p.audio_ids == [K.KIMIA_USER_MSG_START, B, B, B, K.MEDIA_BEGIN, 152064, 152071, 168447,
                           K.MEDIA_END, K.SPEECH_CT, K.MSG_END, K.KIMIA_ASSISTANT_MSG_START]
    assert p.text_ids == [B, 11, 12, 13] + [B] * 8
    assert p.continuous_mask == [0] * 5 + [1] * 3 + [0] * 4
    assert len(p) == len(instr) + len(codes) + 6 and p.n_semantic == 3


def test_asr_layout_without_instruction_has_no_text_message():
    p = build_asr_prompt([], [5, 6], torch.zeros(2, 8))
    assert p.audio_ids == [K.KIMIA_USER_MSG_START, K.MEDIA_BEGIN, 152069, 152070, K.MEDIA_END,
                           K.SPEECH_CT, K.MSG_END, K.KIMIA_ASSISTANT_MSG_START]
    assert p.text_ids == [B] * 8 and p.continuous_mask == [0, 0, 1, 1, 0, 0, 0, 0]


def test_layout_rules_for_roles_and_runs():
    # audio then text in one user run: ct only follows an audio message that ends the run
    a, t, m = layout([Message("user", "audio", [1]), Message("user", "text", [9]),
                      Message("assistant", "text", [8])])
    assert a == [K.KIMIA_USER_MSG_START, K.MEDIA_BEGIN, 152065, K.MEDIA_END, B, K.MSG_END,
                 K.KIMIA_ASSISTANT_MSG_START, B, K.MSG_END, K.KIMIA_ASSISTANT_MSG_START]
    assert t == [B, B, B, B, 9, B, B, 8, B, B]
    a, _, _ = layout([Message("user", "audio", [1])], output_type="both")
    assert K.SPEECH_CTD in a and K.SPEECH_CT not in a


def test_feature_rows_must_equal_semantic_tokens():
    with pytest.raises(AssertionError):
        build_asr_prompt([1], [1, 2, 3], torch.zeros(2, 8))
    with pytest.raises(ValueError):
        KimiPrompt([1], [1, 2], [0], torch.zeros(0, 8), 0)


def test_codes_outside_the_codebook_are_rejected():
    with pytest.raises(ValueError):
        build_asr_prompt([], [K.CODEBOOK_SIZE], torch.zeros(1, 8))


# --- checkpoint resolution -------------------------------------------------------------
def _mirror(src: Path, dst: Path) -> None:
    """Symlink copy of a checkpoint tree, so tests can break files cheaply."""
    for path in src.rglob("*"):
        target = dst / path.relative_to(src)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(path, target)


@pytest.fixture()
def ckpt_copy(tiny_ckpt, tmp_path) -> Path:
    _mirror(Path(tiny_ckpt.model_dir), tmp_path / "model")
    if not (tmp_path / "model" / "glm-4-voice-tokenizer").exists():
        _mirror(Path(tiny_ckpt.speech_tokenizer_dir), tmp_path / "model" / "glm-4-voice-tokenizer")
    return tmp_path / "model"


def test_speech_tokenizer_defaults_to_the_subfolder(ckpt_copy):
    ckpt = resolve_checkpoint(ckpt_copy)
    assert ckpt.speech_tokenizer_dir == ckpt_copy / "glm-4-voice-tokenizer"


@pytest.mark.parametrize("name", ["config.json", "tiktoken.model", "tokenizer_config.json",
                                  "whisper-large-v3/config.json", "whisper-large-v3/model.safetensors",
                                  "glm-4-voice-tokenizer/config.json",
                                  "glm-4-voice-tokenizer/preprocessor_config.json",
                                  "glm-4-voice-tokenizer/model.safetensors"])
def test_missing_file_is_a_checkpoint_error_naming_it(ckpt_copy, name):
    (ckpt_copy / name).unlink()
    with pytest.raises(CheckpointError) as exc:
        resolve_checkpoint(ckpt_copy)
    assert Path(name).name in str(exc.value)


def test_missing_llm_weights_and_missing_shard_are_named(ckpt_copy):
    (ckpt_copy / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="model.safetensors"):
        resolve_checkpoint(ckpt_copy)
    (ckpt_copy / "model.safetensors.index.json").unlink()
    with pytest.raises(CheckpointError, match="model.safetensors"):
        resolve_checkpoint(ckpt_copy)


def test_llm_weights_may_be_absent_only_when_asked(ckpt_copy):
    """KIMI_LOAD_FORMAT=dummy (random LLM weights, benchmarks) needs no LLM files; the
    front ends still load and validate theirs."""
    for f in ckpt_copy.glob("model*.safetensors*"):
        f.unlink()
    with pytest.raises(CheckpointError, match="model.safetensors"):
        resolve_checkpoint(ckpt_copy)
    ckpt = resolve_checkpoint(ckpt_copy, require_llm_weights=False)
    assert ckpt.llm_weights.files == ()
    (ckpt_copy / "whisper-large-v3" / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="model.safetensors"):
        resolve_checkpoint(ckpt_copy, require_llm_weights=False)


def test_inconsistent_whisper_width_is_reported(ckpt_copy):
    cfg_path = ckpt_copy / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["kimia_adaptor_input_dim"] = 5120
    cfg_path.unlink()
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="kimia_adaptor_input_dim"):
        resolve_checkpoint(ckpt_copy)


def test_real_layout_sharded_llm_and_extra_glm_tensors_load(ckpt_copy):
    """The 7B layout: LLM in shards behind an index; GLM file also holding
    embed_positions2, EMA buffers and layers past the quantizer (all ignored)."""
    llm = load_file(str(ckpt_copy / "model.safetensors"))
    names = sorted(llm)
    half = len(names) // 2
    for f in ("model.safetensors", "model.safetensors.index.json"):
        (ckpt_copy / f).unlink()
    shards = {"model-1-of-2.safetensors": names[:half], "model-2-of-2.safetensors": names[half:]}
    for shard, keys in shards.items():
        save_file({k: llm[k] for k in keys}, str(ckpt_copy / shard))
    (ckpt_copy / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {}, "weight_map": {k: s for s, ks in shards.items() for k in ks}}))
    glm_file = ckpt_copy / "glm-4-voice-tokenizer" / "model.safetensors"
    glm = load_file(str(glm_file))
    qp = json.loads((ckpt_copy / "glm-4-voice-tokenizer" / "config.json").read_text())["quantize_position"]
    glm[f"layers.{qp}.fc1.weight"] = torch.zeros(1)
    glm_file.unlink()
    save_file(glm, str(glm_file))

    ckpt = resolve_checkpoint(ckpt_copy)
    assert [p.name for p in ckpt.llm_weights.files] == list(shards)
    state = load_glm_state(ckpt)
    assert not any(k.startswith(("ema", "embed_positions2")) or k.startswith(f"layers.{qp}.") for k in state)
    whisper = load_whisper_encoder_state(ckpt)
    assert "conv1.weight" in whisper and not any("decoder" in k for k in whisper)
    FrontEnd.load(ckpt_copy, device="cpu")  # strict state-dict loading succeeds


# --- the batched FrontEnd ------------------------------------------------------------------
@pytest.fixture(scope="module")
def front(tiny_ckpt) -> FrontEnd:
    return FrontEnd.load(tiny_ckpt.model_dir, tiny_ckpt.speech_tokenizer_dir, device="cpu", max_batch=4)


@pytest.fixture(scope="module")
def speech(golden_case) -> np.ndarray:
    return load_audio(golden_case["audio_path"])


def _mixed_audios(speech: np.ndarray) -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    long = np.concatenate([speech, speech[::-1], speech, speech, speech])[: 45 * 16000]   # two windows
    noise = (0.05 * rng.standard_normal(31 * 16000)).astype(np.float32)               # 30 s + 1 s
    return [speech, long, speech[:8000], speech[5000:6281], noise, speech[:1]]


def test_token_count_is_the_sum_over_windows_of_ceil_l_over_1280(front, speech):
    audios = _mixed_audios(speech)
    prompts = front.build_prompts(audios, [None] * len(audios))
    for audio, p in zip(audios, prompts):
        n = sum(math.ceil(len(w) / 1280) for w in split_windows(audio))
        assert p.n_semantic == n == sum(p.continuous_mask)
        assert tuple(p.whisper_features.shape) == (n, 4 * 128)
        assert p.whisper_features.dtype == torch.float32 and p.whisper_features.device.type == "cpu"
        assert len(p) == n + 6
    assert [p.n_semantic for p in prompts] == [130, 375 + 188, 7, 2, 375 + 13, 1]


def test_batch_equals_one_at_a_time(front, speech):
    """Windows of many audios share encoder batches (chunks of 4 here); padding to the
    longest window in a chunk must not change a single code or feature value."""
    audios = _mixed_audios(speech)
    instructions = [None, "请将音频内容转换为文字。", "", "x", K.DEFAULT_INSTRUCTION, None]
    batched = front.build_prompts(audios, instructions)
    for audio, instr, b in zip(audios, instructions, batched):
        (single,) = front.build_prompts([audio], [instr])
        assert b.audio_ids == single.audio_ids and b.text_ids == single.text_ids
        assert b.continuous_mask == single.continuous_mask
        assert torch.equal(b.whisper_features, single.whisper_features)


def test_instruction_variants(front, speech):
    clip = speech[:16000]
    zh = "请将音频内容转换为文字。"
    none, empty, chinese = front.build_prompts([clip] * 3, [None, "", zh])
    assert none.audio_ids == empty.audio_ids and none.text_ids == empty.text_ids
    assert none.audio_ids[:2] == [K.KIMIA_USER_MSG_START, K.MEDIA_BEGIN]
    ids = [14880, 44063, 111268, 43815, 105359, 17714, 87335, 1773]
    assert chinese.text_ids[1 : 1 + len(ids)] == ids
    assert chinese.audio_ids[1 + len(ids)] == K.MEDIA_BEGIN
    assert chinese.audio_ids[2 + len(ids):] == none.audio_ids[2:]   # same codes after the instruction


def test_stereo_44k_file_goes_through(front, speech, tmp_path):
    librosa = pytest.importorskip("librosa")
    path = tmp_path / "stereo.wav"
    stereo = librosa.resample(speech[:48000], orig_sr=16000, target_sr=44100)
    sf.write(path, np.stack([stereo, 0.5 * stereo], axis=1), 44100, subtype="PCM_16")
    audio = load_audio(path)
    (p,) = front.build_prompts([audio], [None])
    assert p.n_semantic == math.ceil(len(audio) / 1280)


def test_fused_attention_agrees_with_the_reference_math(front, speech):
    """Eager attention is the reference's fp32 math; SDPA (used on GPU) may differ
    only by rounding: same codes, features within 1e-4."""
    clip = speech[:48000]
    (codes,), (feats,) = front.semantic_codes([clip]), front.whisper_features([clip])
    try:
        front.glm.set_attention_impl("sdpa"), front.whisper.set_attention_impl("sdpa")
        (codes2,), (feats2,) = front.semantic_codes([clip]), front.whisper_features([clip])
    finally:
        front.glm.set_attention_impl("eager"), front.whisper.set_attention_impl("eager")
    assert codes == codes2
    assert (feats - feats2).abs().max() < 1e-4
