"""kimi_model.reference: the plain-PyTorch parity oracle, checked against golden.json,
and the vLLM logits processor checked against the reference penalty."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from engine_fixtures import frontend, reference_lm  # noqa: F401
from kimi_model import constants as K
from kimi_model.reference import apply_repetition_penalty, generate, sample_text


@pytest.fixture(scope="module")
def golden_prompt(frontend, golden_case):  # noqa: F811
    from kimi_model.audio_io import load_audio

    return frontend.build_prompts([load_audio(golden_case["audio_path"])], [golden_case["instruction"]])[0]


def test_golden_prompt_streams(golden_prompt, golden_case):
    assert golden_prompt.audio_ids == golden_case["audio_stream_ids"]
    assert golden_prompt.text_ids == golden_case["text_stream_ids"]


def test_reference_reproduces_golden_ids_and_logits(reference_lm, golden_prompt, golden_case, frontend):  # noqa: F811
    out = generate(reference_lm, golden_prompt, golden_case["sampling"]["max_new_tokens"], record_top2=True)
    assert out.token_ids == golden_case["generated_text_ids"]
    assert out.stopped_on_eos is False
    assert len(out.top2) == golden_case["num_forward_steps"]
    for (i1, v1, i2, v2), step in zip(out.top2, golden_case["per_step"]):
        assert i1 == step["token"] and i2 == step["second_id"]
        assert abs(v1 - step["top1_logit"]) < 2e-3 and abs(v2 - step["top2_logit"]) < 2e-3
    text = frontend.text_tokenizer.decode_generated(out.token_ids)
    assert text == golden_case["detokenized_text"]
    assert text.encode().hex() == golden_case["detokenized_utf8_hex"]


def test_decode_embedding_quirk_for_id_zero(reference_lm):  # noqa: F811
    e = reference_lm.embed
    assert torch.equal(reference_lm.embed_decode(0)[0], e[K.TEXT_BLANK])
    assert torch.equal(reference_lm.embed_decode(5)[0], e[K.TEXT_BLANK] + e[5])


def test_prefill_embedding_formula(reference_lm):  # noqa: F811
    torch.manual_seed(0)
    audio = [K.KIMIA_USER_MSG_START, K.TEXT_BLANK, K.MEDIA_BEGIN, K.KIMIA_TOKEN_OFFSET + 7, K.MEDIA_END]
    text = [K.TEXT_BLANK, 5501, K.TEXT_BLANK, K.TEXT_BLANK, K.TEXT_BLANK]
    mask = [0, 0, 0, 1, 0]
    feats = torch.randn(1, 512)
    x = reference_lm.embed_prompt(SimpleNamespace(audio_ids=audio, text_ids=text, continuous_mask=mask,
                                                  whisper_features=feats))
    E = reference_lm.embed
    assert torch.allclose(x[1], E[K.TEXT_BLANK] + E[5501])
    expected = (E[audio[3]] + reference_lm.adaptor_forward(feats)[0]) * 1.4140625 + E[K.TEXT_BLANK]
    assert torch.allclose(x[3], expected)


def test_repetition_penalty_rules():
    logits = torch.tensor([2.0, -2.0, 1.0, 0.0, 3.0])
    gen = [0, 1, 0, 1] * 5          # 20 generated, window 16 holds {0, 1}
    assert torch.equal(apply_repetition_penalty(logits, gen, step=16, penalty=1.1), logits)   # i > 16 strictly
    assert torch.equal(apply_repetition_penalty(logits, gen, step=20, penalty=1.0), logits)
    out = apply_repetition_penalty(logits, gen, step=20, penalty=2.0)
    assert out.tolist() == [1.0, -4.0, 1.0, 0.0, 3.0]     # each distinct id penalised once
    gen2 = [4] * 4 + [2] * 16                               # 4 falls outside the last-16 window
    assert apply_repetition_penalty(logits, gen2, step=20, penalty=2.0).tolist() == [2.0, -2.0, 0.5, 0.0, 3.0]


def test_sampler_greedy_and_topk():
    logits = torch.tensor([0.0, 5.0, 4.0, 3.0, 2.0, 1.0, 10.0])
    assert sample_text(logits, [], 0, temperature=0.0, top_k=5, repetition_penalty=1.0, generator=None) == 6
    g = torch.Generator().manual_seed(0)
    seen = {sample_text(logits, [], 0, temperature=50.0, top_k=5, repetition_penalty=1.0, generator=g)
            for _ in range(200)}
    assert seen <= {6, 1, 2, 3, 4} and len(seen) > 1


def test_ignore_eos_runs_exactly_max_tokens(reference_lm, golden_prompt):  # noqa: F811
    out = generate(reference_lm, golden_prompt, 5, ignore_eos=True)
    assert len(out.token_ids) == 5 and not out.stopped_on_eos


# --- the vLLM logits processor vs the reference penalty ----------------------------------

def _batch_update(batch_size, added=(), removed=(), moved=()):
    from vllm.v1.sample.logits_processor import BatchUpdate

    return BatchUpdate(batch_size=batch_size, removed=list(removed), added=list(added), moved=list(moved))


def test_logits_processor_matches_reference_penalty():
    from vllm import SamplingParams
    from vllm.v1.sample.logits_processor import MoveDirectionality

    from kimi_model.vllm_model import REPETITION_PENALTY_KEY, KimiRepetitionPenaltyLogitsProcessor

    proc = KimiRepetitionPenaltyLogitsProcessor(None, torch.device("cpu"), False)
    assert proc.is_argmax_invariant() is False
    g = torch.Generator().manual_seed(1)
    outs = [[], [], []]
    params = [SamplingParams(extra_args={REPETITION_PENALTY_KEY: 1.1}), SamplingParams(),
              SamplingParams(extra_args={REPETITION_PENALTY_KEY: 1.3})]
    proc.update_state(_batch_update(3, added=[(i, params[i], [1, 2, 3], outs[i]) for i in range(3)]))
    V = 64
    for step in range(40):
        logits = torch.randn(3, V, generator=g) * 3
        got = proc.apply(logits.clone())
        for row, p in ((0, 1.1), (1, 1.0), (2, 1.3)):
            want = apply_repetition_penalty(logits[row], outs[row], step, p)
            assert torch.equal(got[row], want), (step, row)
        for row in range(3):   # vLLM appends to the referenced output lists in place
            outs[row].append(int(torch.randint(0, 20, (1,), generator=g)))
        proc.update_state(None)
    # swap rows 0 and 2, then drop row 1
    proc.update_state(_batch_update(3, moved=[(0, 2, MoveDirectionality.SWAP)]))
    logits = torch.randn(3, V, generator=g)
    got = proc.apply(logits.clone())
    assert torch.equal(got[2], apply_repetition_penalty(logits[2], outs[0], 40, 1.1))
    assert torch.equal(got[0], apply_repetition_penalty(logits[0], outs[2], 40, 1.3))
    proc.update_state(_batch_update(2, removed=[1]))
    proc.update_state(_batch_update(2, moved=[(2, 1, MoveDirectionality.UNIDIRECTIONAL)]))
    logits = torch.randn(3, V, generator=g)
    got = proc.apply(logits.clone())
    assert torch.equal(got[1], apply_repetition_penalty(logits[1], outs[0], 40, 1.1))


def test_logits_processor_rejects_bad_values():
    from vllm import SamplingParams

    from kimi_model.vllm_model import REPETITION_PENALTY_KEY, KimiRepetitionPenaltyLogitsProcessor

    with pytest.raises(ValueError):
        KimiRepetitionPenaltyLogitsProcessor.validate_params(SamplingParams(extra_args={REPETITION_PENALTY_KEY: -1}))
    KimiRepetitionPenaltyLogitsProcessor.validate_params(SamplingParams())
