"""The plugin: architecture override, config loading without trust_remote_code, weight filtering."""
from __future__ import annotations

import json

import pytest

from kimi_model import plugin


@pytest.fixture(autouse=True)
def _registered():
    plugin.register()


def test_entry_point_is_installed():
    from importlib.metadata import entry_points

    eps = {ep.name: ep.value for ep in entry_points(group="vllm.general_plugins")}
    assert eps.get("kimi_asr") == "kimi_model.plugin:register", "run `pip install -e . --no-deps`"


def test_register_is_idempotent():
    from vllm.transformers_utils.config import get_config_parser

    before = type(get_config_parser("hf"))
    plugin.register()
    plugin.install_config_parser()
    assert type(get_config_parser("hf")) is before
    assert before._kimi_audio_wrapper


def test_architecture_resolves_to_our_model():
    from vllm import ModelRegistry

    from kimi_model.vllm_model import KimiAudioASRForCausalLM

    assert plugin.ARCHITECTURE in ModelRegistry.get_supported_archs()
    assert ModelRegistry._try_load_model_cls(plugin.ARCHITECTURE) is KimiAudioASRForCausalLM


def test_config_without_model_type_loads_without_remote_code(tiny_ckpt):
    from vllm.transformers_utils.config import get_config

    from kimi_model.vllm_model import KimiAudioASRConfig

    raw = json.loads((tiny_ckpt.model_dir / "config.json").read_text())
    assert "model_type" not in raw and "AutoConfig" in raw["auto_map"]
    cfg = get_config(str(tiny_ckpt.model_dir), trust_remote_code=False)
    assert isinstance(cfg, KimiAudioASRConfig)
    assert cfg.model_type == plugin.MODEL_TYPE
    assert cfg.architectures == [plugin.ARCHITECTURE]
    assert cfg.eos_token_id == 151667
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.num_key_value_heads) == (128, 2, 2, 1)
    assert cfg.vocab_size == 168448 and cfg.kimia_adaptor_input_dim == 512
    assert cfg.rms_norm_eps == 1e-6 and cfg.rope_parameters["rope_theta"] == 1e6
    assert not hasattr(cfg, "auto_map") or not cfg.auto_map


def test_other_checkpoints_use_the_original_parser(tmp_path):
    from transformers import Qwen2Config
    from vllm.transformers_utils.config import get_config

    from kimi_model.vllm_model import KimiAudioASRConfig

    Qwen2Config(hidden_size=64, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                intermediate_size=128, vocab_size=1000, architectures=["Qwen2ForCausalLM"]).save_pretrained(tmp_path)
    cfg = get_config(str(tmp_path), trust_remote_code=False)
    assert type(cfg) is Qwen2Config and not isinstance(cfg, KimiAudioASRConfig)


def test_shim_wraps_whatever_parser_is_registered(monkeypatch, tiny_ckpt):
    """The one version shim: wrap the currently registered "hf" parser, whichever
    class a vLLM version uses, and leave it in charge of everything else."""
    import vllm.transformers_utils.config as vcfg
    from vllm.transformers_utils.config_parser_base import ConfigParserBase

    calls = []

    class FakeVersionParser(ConfigParserBase):
        def parse(self, model, trust_remote_code, revision=None, code_revision=None, **kwargs):
            calls.append(model)
            return {}, None

    registry = dict(vcfg._CONFIG_FORMAT_TO_CONFIG_PARSER)
    monkeypatch.setattr(vcfg, "_CONFIG_FORMAT_TO_CONFIG_PARSER", registry)
    registry["hf"] = FakeVersionParser
    wrapper = plugin.install_config_parser()
    assert issubclass(wrapper, FakeVersionParser) and registry["hf"] is wrapper
    _, cfg = wrapper().parse(str(tiny_ckpt.model_dir), False)
    assert cfg.model_type == plugin.MODEL_TYPE and calls == []
    wrapper().parse("/nonexistent/other-model", False)
    assert calls == ["/nonexistent/other-model"]
    # an explicit model_type override is the user's choice: not intercepted
    wrapper().parse(str(tiny_ckpt.model_dir), False, hf_overrides={"model_type": "qwen2"})
    assert calls[-1] == str(tiny_ckpt.model_dir)


def test_is_kimi_audio_config_dict():
    assert plugin.is_kimi_audio_config_dict({"architectures": ["MoonshotKimiaForCausalLM"]})
    assert plugin.is_kimi_audio_config_dict({"architectures": ["MoonshotKimiaForCausalLM"], "model_type": "kimi_audio_asr"})
    assert not plugin.is_kimi_audio_config_dict({"architectures": ["MoonshotKimiaForCausalLM"], "model_type": "qwen2"})
    assert not plugin.is_kimi_audio_config_dict({"architectures": ["Qwen2ForCausalLM"]})


def test_weight_filter_skips_mimo_and_rotary_and_moves_adaptor(tiny_ckpt):
    from safetensors import safe_open

    from kimi_model.vllm_model import KimiAudioASRForCausalLM

    with safe_open(str(tiny_ckpt.model_dir / "model.safetensors"), "pt") as f:
        names = list(f.keys())
    assert any(n.startswith("model.mimo_layers.") for n in names)
    assert any(n.endswith("rotary_emb.inv_freq") for n in names)
    kept = [n for n, _ in KimiAudioASRForCausalLM.filter_weights((n, None) for n in names)]
    assert not [n for n in kept if "mimo" in n or n.endswith("inv_freq")]
    assert sorted(n for n in kept if "vq_adaptor" in n) == [
        f"vq_adaptor.layers.{i}.{p}" for i in (0, 3, 4) for p in ("bias", "weight")]
    assert "lm_head.weight" in kept and "model.embed_tokens.weight" in kept and "model.norm.weight" in kept


def test_engine_config_resolves_without_trust_remote_code(tiny_ckpt):
    from vllm.engine.arg_utils import EngineArgs

    args = EngineArgs(model=str(tiny_ckpt.model_dir), skip_tokenizer_init=True, max_model_len=8192,
                      enforce_eager=True, trust_remote_code=False)
    vc = args.create_engine_config()
    assert vc.model_config.architecture == plugin.ARCHITECTURE
    assert vc.model_config._model_info.supports_multimodal
    assert vc.model_config.hf_config.model_type == plugin.MODEL_TYPE


def test_serve_tokenizer_registered_and_faithful(tiny_ckpt, golden_case):
    from vllm.tokenizers.registry import TokenizerRegistry

    from kimi_model.vllm_model import KimiASRServeTokenizer

    assert TokenizerRegistry.tokenizers["kimi_audio"] == plugin.SERVE_TOKENIZER
    tok = TokenizerRegistry.load_tokenizer("kimi_audio", str(tiny_ckpt.model_dir))
    assert isinstance(tok, KimiASRServeTokenizer)
    ids = golden_case["generated_text_ids"]
    assert tok.decode(ids, skip_special_tokens=True) == golden_case["detokenized_text"]
    # incremental, token by token, as vLLM's detokenizer does it
    tokens = tok.convert_ids_to_tokens(ids)
    assert tok.convert_tokens_to_string(tokens) == golden_case["detokenized_text"]
    assert tok.decode([151666, 151667]) == "<|im_kimia_text_blank|><|im_kimia_text_eos|>"
