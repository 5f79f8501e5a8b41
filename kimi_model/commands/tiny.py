"""`kimi-asr tiny OUT_DIR`: the same generator as `python -m kimi_model.tiny`."""
from __future__ import annotations

import argparse

from kimi_model import tiny


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("tiny", help="write a tiny random checkpoint in the real layout (NOT A REAL MODEL)")
    tiny.add_arguments(p)
    p.set_defaults(func=tiny.run)
