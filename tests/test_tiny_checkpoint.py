"""The project's generator writes the golden checkpoint, in the real layout."""
from __future__ import annotations

import json

from kimi_model.tiny import GOLDEN_SHA256, SPEECH_TOKENIZER_SUBDIR, file_digests, is_tiny_checkpoint


def test_every_file_is_byte_identical_to_the_golden_checkpoint(tiny_ckpt, golden):
    digests = file_digests(tiny_ckpt.model_dir)
    assert digests == GOLDEN_SHA256
    recorded = golden["checkpoint"]["sha256"]
    for name, digest in recorded["kimi"].items():
        assert digests[name] == digest, name
    for name, digest in recorded["glm"].items():
        assert digests[f"{SPEECH_TOKENIZER_SUBDIR}/{name}"] == digest, name


def test_layout_matches_the_real_repositories(tiny_ckpt):
    model = tiny_ckpt.model_dir
    config = json.loads((model / "config.json").read_text())
    assert config["architectures"] == ["MoonshotKimiaForCausalLM"]
    assert config["vocab_size"] == 168448
    assert config["hidden_size"] // config["num_attention_heads"] == 64  # vLLM CPU rejects 16
    assert (model / "whisper-large-v3" / "model.safetensors").is_file()
    assert tiny_ckpt.speech_tokenizer_dir == model / SPEECH_TOKENIZER_SUBDIR
    assert is_tiny_checkpoint(model)
