"""KimiTextTokenizer reproduces the official tokenizer (spec §2)."""
from __future__ import annotations

import pytest

from kimi_model import constants as K
from kimi_model.text_tokenizer import KimiTextTokenizer, special_tokens


@pytest.fixture(scope="module")
def tok(tiny_ckpt) -> KimiTextTokenizer:
    return KimiTextTokenizer.from_model_dir(tiny_ckpt.model_dir)


@pytest.mark.parametrize(
    "text, ids",
    [
        ("Please transcribe the following audio:", [5501, 1356, 3114, 279, 2701, 7699, 25]),
        ("请将音频内容转换为文字。", [14880, 44063, 111268, 43815, 105359, 17714, 87335, 1773]),
        (
            "这并不是告别，这是一个篇章的结束，也是新篇章的开始。",
            [43288, 102095, 108526, 3837, 105464, 103798, 9370, 80565, 3837, 100000, 116887, 9370, 55286, 1773],
        ),
        ("你好，Kimi。", [108386, 3837, 42, 24836, 1773]),
    ],
)
def test_encode_matches_reference_ids(tok, text, ids):
    assert tok.encode(text) == ids
    assert tok.decode(ids) == text


def test_vocabulary_is_151643_ranks_plus_421_specials(tok):
    assert tok.n_vocab == K.TEXT_VOCAB_SIZE == 152_064


def test_special_token_names_and_ids():
    sp = special_tokens()
    assert len(sp) == 421
    assert sp["[BOS]"] == K.BOS and sp["[EOS]"] == K.EOS and sp["[EOT]"] == 151652
    assert sp["<|im_msg_end|>"] == K.MSG_END
    assert sp["<|im_media_begin|>"] == K.MEDIA_BEGIN and sp["<|im_media_end|>"] == K.MEDIA_END
    assert sp["<|im_kimia_text_blank|>"] == K.TEXT_BLANK
    assert sp["<|im_kimia_text_eos|>"] == K.TEXT_EOS
    assert sp["<|im_kimia_user_msg_start|>"] == K.KIMIA_USER_MSG_START
    assert sp["<|im_kimia_assistant_msg_start|>"] == K.KIMIA_ASSISTANT_MSG_START
    assert sp["<|im_kimia_speech_ct_id|>"] == K.SPEECH_CT
    assert sp["<|im_kimia_speech_ctd_id|>"] == K.SPEECH_CTD
    assert sp["<|reserved_token_0|>"] == 151648
    assert sp["<|reserved_token_12|>"] == 151662
    assert sp["<|reserved_token_20|>"] == 151677
    assert sp["<|reserved_token_405|>"] == 152062
    assert sp["<|reserved_token_406|>"] == K.PAD == 152063


def test_special_token_strings_in_user_text_are_plain_text(tok):
    ids = tok.encode("<|im_kimia_user_msg_start|>")
    assert len(ids) == 11 and all(i < K.NUM_BASE_TOKENS for i in ids)


def test_decode_does_not_skip_specials(tok):
    assert tok.decode([0]) == "!" and tok.decode([198]) == "\n"
    assert tok.decode([K.TEXT_BLANK, 0]) == "<|im_kimia_text_blank|>!"


def test_decode_rejects_audio_ids(tok):
    with pytest.raises(ValueError):
        tok.decode([K.KIMIA_TOKEN_OFFSET])


def test_decode_generated_drops_audio_ids_and_stops_at_text_eos(tok):
    hello = tok.encode("hello world")
    ids = [K.KIMIA_TOKEN_OFFSET + 5, *hello, 160_000, K.TEXT_EOS, *tok.encode(" tail")]
    assert tok.decode_generated(ids) == "hello world"
    assert tok.decode_generated([K.TEXT_BLANK]) == "<|im_kimia_text_blank|>"  # no skipping


def test_decode_generated_matches_golden(tok, golden_case):
    text = tok.decode_generated(golden_case["generated_text_ids"])
    assert text.encode().hex() == golden_case["detokenized_utf8_hex"]


def test_very_long_runs_are_split_like_the_reference(tok):
    # 30,000 identical letters would be one pre-token; the reference cuts runs at 25,000.
    text = "a" * 30_000
    assert tok.encode(text) == tok.encode("a" * 25_000) + tok.encode("a" * 5_000)
