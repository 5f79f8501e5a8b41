"""Kimi-Audio text tokenizer (spec §2), rebuilt natively on tiktoken.

Why native: the checkpoint's tokenizer is HF remote code we must not run. The
facts that matter are small: Qwen's BPE ranks from ``tiktoken.model``, Qwen2's
split regex, and 421 special tokens appended at ids 151643…152063. User text is
always encoded with *no* allowed specials, so "<|im_media_begin|>" typed by a user
is eleven ordinary tokens, never the control id.
"""
from __future__ import annotations

import base64
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import tiktoken

from kimi_model import constants as K

# Qwen2's pre-tokenizer pattern; note the single-digit \p{N}.
PAT_STR = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

# Names of the first 34 specials (ids 151643…151676); gaps are reserved_token_N.
_NAMED_SPECIALS: dict[int, str] = {
    151643: "[BOS]",
    151644: "[EOS]",
    151645: "<|im_msg_end|>",
    151646: "<|im_user_msg_start|>",
    151647: "<|im_assistant_msg_start|>",
    151652: "[EOT]",
    151661: "<|im_media_begin|>",
    151663: "<|im_media_end|>",
    151666: "<|im_kimia_text_blank|>",
    151667: "<|im_kimia_text_eos|>",
    151670: "<|im_kimia_user_msg_start|>",
    151671: "<|im_kimia_assistant_msg_start|>",
    151675: "<|im_kimia_speech_ct_id|>",
    151676: "<|im_kimia_speech_ctd_id|>",
}

# The remote tokenizer cuts input into pieces before BPE (guards tiktoken's
# quadratic worst case); reproduced so very long texts tokenize identically.
MAX_CHUNK_CHARS = 400_000
MAX_RUN_CHARS = 25_000


def special_tokens() -> dict[str, int]:
    """All 421 special token strings → ids, reserved ones numbered in id order."""
    out: dict[str, int] = {}
    reserved = 0
    for token_id in range(K.NUM_BASE_TOKENS, K.TEXT_VOCAB_SIZE):
        name = _NAMED_SPECIALS.get(token_id)
        if name is None:
            name = f"<|reserved_token_{reserved}|>"
            reserved += 1
        out[name] = token_id
    assert len(out) == K.NUM_SPECIAL_TOKENS and reserved == 407
    return out


def load_ranks(path: str | os.PathLike) -> dict[bytes, int]:
    """Parse ``base64(token) rank`` lines (the tiktoken.model format)."""
    ranks: dict[bytes, int] = {}
    with open(path, "rb") as f:
        for line in f:
            if line.strip():
                token, rank = line.split()
                ranks[base64.b64decode(token)] = int(rank)
    return ranks


def _split_runs(text: str, limit: int) -> Iterator[str]:
    """Cut ``text`` so that no piece holds more than ``limit`` consecutive
    characters of one class (whitespace / non-whitespace)."""
    if len(text) <= limit:
        yield text
        return
    start, run, run_is_space = 0, 0, text[0].isspace()
    for i, ch in enumerate(text):
        is_space = ch.isspace()
        if is_space != run_is_space:
            run, run_is_space = 1, is_space
            continue
        run += 1
        if run > limit:
            yield text[start:i]
            start, run = i, 1
    yield text[start:]


class KimiTextTokenizer:
    """tiktoken Encoding with 151,643 ranks + 421 specials = 152,064 text ids."""

    def __init__(self, ranks: dict[bytes, int]):
        if len(ranks) != K.NUM_BASE_TOKENS:
            raise ValueError(f"expected {K.NUM_BASE_TOKENS} BPE ranks, got {len(ranks)}")
        self.special_tokens = special_tokens()
        self.encoding = tiktoken.Encoding(
            name="kimi-audio", pat_str=PAT_STR, mergeable_ranks=ranks, special_tokens=self.special_tokens
        )
        assert self.encoding.n_vocab == K.TEXT_VOCAB_SIZE

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "KimiTextTokenizer":
        return cls(load_ranks(path))

    @classmethod
    def from_model_dir(cls, model_dir: str | os.PathLike) -> "KimiTextTokenizer":
        return cls.from_file(Path(model_dir) / "tiktoken.model")

    @property
    def n_vocab(self) -> int:
        return self.encoding.n_vocab

    def encode(self, text: str) -> list[int]:
        """Ids of ``text``; special-token strings are encoded as plain text."""
        ids: list[int] = []
        for i in range(0, len(text), MAX_CHUNK_CHARS):
            for piece in _split_runs(text[i : i + MAX_CHUNK_CHARS], MAX_RUN_CHARS):
                ids.extend(self.encoding.encode(piece, allowed_special=set(), disallowed_special=()))
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        """Plain decode, no skipping: a special id comes out as its literal name.

        Audio ids (≥ 152064) have no text form; use ``decode_generated`` for model output.
        """
        ids = list(ids)
        bad = [i for i in ids if not 0 <= i < K.TEXT_VOCAB_SIZE]
        if bad:
            raise ValueError(f"ids outside the text vocabulary [0, {K.TEXT_VOCAB_SIZE}): {bad[:5]}")
        return self.encoding.decode(ids)

    def decode_generated(self, ids: Iterable[int]) -> str:
        """Detokenize generated text ids as the reference does (spec §6): drop
        audio ids ≥ 152064, cut at the first text-EOS 151667, then plain decode
        (no strip, no special-token skipping)."""
        kept = [i for i in ids if i < K.KIMIA_TOKEN_OFFSET]
        if K.TEXT_EOS in kept:
            kept = kept[: kept.index(K.TEXT_EOS)]
        return self.encoding.decode(kept)
