"""`kimi-asr prompt`: print the exact prompt the model would see for one audio file.

Used to compare against the reference (golden vectors) without running the LLM:
both id streams, the continuous mask, the semantic-token count, and checksums of
the Whisper features (shape reported as the reference's [1, N, D]).
"""
from __future__ import annotations

import argparse
import json
import sys

from kimi_model.commands import add_prompt_args
from kimi_model.errors import KimiError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("prompt", help="print the Kimi-Audio ASR prompt for an audio file as JSON")
    add_prompt_args(p)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    p.add_argument("file", help="audio file (WAV, FLAC, OGG, MP3; any rate, any channels)")
    p.set_defaults(func=run)


def prompt_json(prompt) -> dict:
    feats = prompt.whisper_features.float()
    n, d = feats.shape
    return {
        "audio_ids": prompt.audio_ids,
        "text_ids": prompt.text_ids,
        "continuous_mask": prompt.continuous_mask,
        "n_semantic": prompt.n_semantic,
        "whisper_features": {
            "shape": [1, n, d],
            "sum": float(feats.double().sum()),
            "row0_first4": feats[0, :4].tolist() if n else [],
            "last_row_first4": feats[-1, :4].tolist() if n else [],
        },
    }


def run(args: argparse.Namespace) -> int:
    from kimi_model.audio_io import load_audio
    from kimi_model.frontend import FrontEnd

    try:
        audio = load_audio(args.file)
        front = FrontEnd.load(args.model, args.speech_tokenizer, device=args.device)
        (prompt,) = front.build_prompts([audio], [args.instruction or None])
    except KimiError as exc:
        print(json.dumps({"error": {"code": exc.code, "message": exc.message}}), file=sys.stderr)
        return 2
    print(json.dumps(prompt_json(prompt)))
    return 0
