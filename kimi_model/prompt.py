"""Kimi-Audio's two-stream prompt layout (spec §3).

A prompt is two parallel id streams of equal length (audio stream AS, text
stream TS) plus a 0/1 mask marking the positions whose embedding also gets the
continuous Whisper feature row. Messages are laid out one by one:

  role change  → AS role-start, TS blank
  text         → TS the text ids, AS blanks
  audio        → AS media_begin, codes + 152064 (mask 1), media_end; TS blanks
  last message of a same-role run → ct if it is an audio message, then msg_end
  finally      → AS assistant-start, TS blank

For ASR (instruction, then audio) that is, with T instruction ids and N codes:
  [user_start] [T × instr] [media_begin] [N × audio] [media_end] [ct] [msg_end] [assistant_start]
so L = T + N + 6.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from kimi_model import constants as K

ROLE_START = {"user": K.KIMIA_USER_MSG_START, "assistant": K.KIMIA_ASSISTANT_MSG_START}


@dataclass
class KimiPrompt:
    audio_ids: list[int]
    text_ids: list[int]
    continuous_mask: list[int]
    whisper_features: torch.Tensor  # [N, 4·d_model] float32 on CPU
    n_semantic: int

    def __post_init__(self) -> None:
        n = len(self.audio_ids)
        if len(self.text_ids) != n or len(self.continuous_mask) != n:
            raise ValueError("audio_ids, text_ids and continuous_mask must have equal length")
        if sum(self.continuous_mask) != self.n_semantic or self.whisper_features.shape[0] != self.n_semantic:
            raise ValueError(
                f"feature rows {self.whisper_features.shape[0]} / mask positions {sum(self.continuous_mask)} "
                f"!= semantic tokens {self.n_semantic}"
            )

    def __len__(self) -> int:
        return len(self.audio_ids)


@dataclass(frozen=True)
class Message:
    role: str              # "user" | "assistant"
    kind: str              # "text" | "audio"
    ids: Sequence[int]     # text ids, or raw semantic codes 0…16383 for audio


def layout(messages: Sequence[Message], output_type: str = "text") -> tuple[list[int], list[int], list[int]]:
    """Both streams and the continuous mask for ``messages`` (spec §3 rules 1–5)."""
    audio: list[int] = []
    text: list[int] = []
    mask: list[int] = []

    def put(a: int, t: int = K.TEXT_BLANK, m: int = 0) -> None:
        audio.append(a), text.append(t), mask.append(m)

    prev_role = None
    for i, msg in enumerate(messages):
        if msg.role not in ROLE_START:
            raise ValueError(f"unknown role {msg.role!r}")
        if msg.role != prev_role:
            put(ROLE_START[msg.role])
        if msg.kind == "text":
            for tid in msg.ids:
                put(K.TEXT_BLANK, int(tid))
        elif msg.kind == "audio":
            put(K.MEDIA_BEGIN)
            for code in msg.ids:
                if not 0 <= int(code) < K.CODEBOOK_SIZE:
                    raise ValueError(f"semantic code {code} outside [0, {K.CODEBOOK_SIZE})")
                put(K.KIMIA_TOKEN_OFFSET + int(code), m=1)
            put(K.MEDIA_END)
        else:
            raise ValueError(f"unknown message kind {msg.kind!r}")
        last_of_run = i + 1 == len(messages) or messages[i + 1].role != msg.role
        if last_of_run:
            if msg.kind == "audio":
                put(K.SPEECH_CTD if output_type == "both" else K.SPEECH_CT)
            put(K.MSG_END)
        prev_role = msg.role
    put(K.KIMIA_ASSISTANT_MSG_START)
    return audio, text, mask


def build_asr_prompt(instruction_ids: Sequence[int], codes: Sequence[int],
                     whisper_features: torch.Tensor) -> KimiPrompt:
    """The ASR prompt: optional user instruction, then the user audio.

    Empty ``instruction_ids`` means no instruction message at all (not an empty one).
    The feature rows must match the codes one to one (spec §4c).
    """
    n = len(codes)
    if whisper_features.ndim != 2 or whisper_features.shape[0] != n:
        raise AssertionError(
            f"Whisper feature rows {tuple(whisper_features.shape)} != {n} semantic tokens"
        )
    messages = [Message("user", "text", list(instruction_ids))] if instruction_ids else []
    messages.append(Message("user", "audio", list(codes)))
    audio, text, mask = layout(messages)
    return KimiPrompt(audio, text, mask, whisper_features, n)
