"""`kimi-asr` subcommands that need only the model package."""
from __future__ import annotations

import argparse

from kimi_model.constants import DEFAULT_INSTRUCTION


def add_prompt_args(p: argparse.ArgumentParser) -> None:
    """The checkpoint and instruction flags every model subcommand takes, spelled once."""
    p.add_argument("--model", required=True, help="Kimi-Audio checkpoint directory")
    p.add_argument("--speech-tokenizer", default=None,
                   help="GLM-4-Voice tokenizer directory (default: MODEL/glm-4-voice-tokenizer)")
    p.add_argument("--instruction", default=DEFAULT_INSTRUCTION,
                   help='instruction text; "" for no instruction message (default: %(default)r)')
