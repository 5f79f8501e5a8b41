"""Fixed ids and shapes of Kimi-Audio-7B ASR (spec ../shared/spec/kimi-audio-asr.md §1–§6).

One place for every magic number, so the prompt builder, the vLLM model and the
reference loop can never disagree.
"""
from __future__ import annotations

import math

# --- text tokenizer (§2) -------------------------------------------------------
NUM_BASE_TOKENS = 151_643          # Qwen BPE ranks
NUM_SPECIAL_TOKENS = 421           # ids 151643 … 152063
TEXT_VOCAB_SIZE = NUM_BASE_TOKENS + NUM_SPECIAL_TOKENS  # 152064 == kimia_token_offset

BOS = 151643
EOS = 151644
MSG_END = 151645
MEDIA_BEGIN = 151661
MEDIA_END = 151663
TEXT_BLANK = 151666
TEXT_EOS = 151667                  # Kimi-A ASR stops on this id
KIMIA_USER_MSG_START = 151670
KIMIA_ASSISTANT_MSG_START = 151671
SPEECH_CT = 151675
SPEECH_CTD = 151676
PAD = 152063

# --- audio codes (§1.2, §4a) ---------------------------------------------------
KIMIA_TOKEN_OFFSET = 152_064       # semantic code k is id k + 152064
CODEBOOK_SIZE = 16_384
VOCAB_SIZE = 168_448

# --- audio front ends (§4) -----------------------------------------------------
SAMPLE_RATE = 16_000
WINDOW_SAMPLES = 480_000           # 30-s windows, cut from t=0
SAMPLES_PER_TOKEN = 1_280          # 12.5 Hz: 2 (conv stride) × 4 (pool) × 160 (hop)
N_FFT = 400
HOP_LENGTH = 160
N_MELS = 128
WHISPER_FRAMES_PER_TOKEN = 4       # 4 encoder frames → one 5120-d feature row
BLOCK_CAUSAL_SIZE = 200            # GLM-4-Voice attention block, frames at 50 Hz

# --- LLM forward (§5) ----------------------------------------------------------
# The reference builds √2 as a bf16 tensor; its value is 1.4140625, not math.sqrt(2).
SQRT2_BF16 = 1.4140625
assert abs(SQRT2_BF16 - math.sqrt(2)) < 1e-3

# --- generation (§6) -----------------------------------------------------------
REFERENCE_MAX_TOTAL_TOKENS = 7_500     # reference default: max_new_tokens = 7500 − L
MAX_POSITIONS = 8_192                  # max_position_embeddings
REPETITION_WINDOW = 16
DEFAULT_INSTRUCTION = "Please transcribe the following audio:"
