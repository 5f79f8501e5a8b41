"""`kimi-asr` command line: a dispatcher over subcommand modules.

Each module exposes ``add_parser(subparsers)``, which registers its subcommand and
sets ``func`` on it. Modules are imported lazily by name so that `kimi-asr prompt`
does not pay for Flask or Celery, and `kimi-asr submit` does not import torch.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# subcommand name → module that implements it
SUBCOMMANDS: dict[str, str] = {
    "prompt": "kimi_model.commands.prompt",
    "transcribe": "kimi_model.commands.transcribe",
    "tiny": "kimi_model.commands.tiny",
    "up": "service.commands.up",
    "submit": "service.commands.client",
    "status": "service.commands.client",
    "bulk": "service.commands.client",
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kimi-asr", description="Kimi-Audio speech-to-text")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    # With a known subcommand, import only its module; for --help, import them all.
    modules = [SUBCOMMANDS[only]] if only else list(dict.fromkeys(SUBCOMMANDS.values()))
    for module_name in modules:
        importlib.import_module(module_name).add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    only = argv[0] if argv and argv[0] in SUBCOMMANDS else None
    args = build_parser(only).parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
