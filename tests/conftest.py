"""Session-wide fixtures shared by every test module.

The tiny checkpoint is built once per machine (about 3 s, 300 MB) into
``$KIMI_TINY_DIR`` or ``<repo>/.tiny`` and reused; it is byte-identical to the
checkpoint behind ../shared/golden.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from kimi_model.tiny import TinyCheckpoint, ensure_tiny_checkpoint

REPO_ROOT = Path(__file__).resolve().parents[1]


def golden_dir() -> Path:
    return Path(os.environ.get("KIMI_GOLDEN_DIR", REPO_ROOT.parent / "shared" / "golden"))


@pytest.fixture(scope="session")
def tiny_ckpt() -> TinyCheckpoint:
    return ensure_tiny_checkpoint(os.environ.get("KIMI_TINY_DIR", REPO_ROOT / ".tiny"))


@pytest.fixture(scope="session")
def golden() -> dict:
    path = golden_dir() / "golden.json"
    if not path.is_file():
        pytest.fail(f"golden vectors not found at {path}; set KIMI_GOLDEN_DIR")
    return json.loads(path.read_text())


@pytest.fixture(scope="session")
def golden_case(golden: dict) -> dict:
    """The a_en case with its audio path made absolute."""
    case = dict(golden["cases"][0])
    case["audio_path"] = str(golden_dir() / case["audio"])
    return case
