"""Front-end throughput: audio seconds processed per wall-clock second.

    python bench/frontend.py                       # tiny checkpoint (CPU or GPU)
    python bench/frontend.py --model DIR [--speech-tokenizer DIR]
    python bench/frontend.py --real-shapes         # random weights at 7B front-end widths

Prints one JSON line per batch size (audios per `build_prompts` call, which is
also the encoder batch in windows). The tiny checkpoint measures overheads only
(mel, padding, Python); --real-shapes builds Whisper-large-v3 (32 layers, d 1280)
and GLM-4-Voice (16 layers, d 1280, 16,384 codes) with random weights so that a
GPU number means something without downloading 3 GB of weights.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.common import real_shape_frontend, tiny_dirs  # noqa: E402
from kimi_model.audio_io import load_audio  # noqa: E402
from kimi_model.constants import DEFAULT_INSTRUCTION, SAMPLE_RATE  # noqa: E402
from kimi_model.frontend import FrontEnd, pick_device  # noqa: E402

GOLDEN_AUDIO = Path(os.environ.get("KIMI_GOLDEN_DIR", REPO_ROOT.parent / "shared" / "golden")) / "audio" / "a_asr_example.wav"


def clip(seconds: float) -> np.ndarray:
    if GOLDEN_AUDIO.is_file():
        speech = load_audio(GOLDEN_AUDIO)
        reps = int(np.ceil(seconds * SAMPLE_RATE / len(speech)))
        return np.tile(speech, reps)[: int(seconds * SAMPLE_RATE)]
    rng = np.random.default_rng(0)
    return (0.1 * rng.standard_normal(int(seconds * SAMPLE_RATE))).astype(np.float32)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, help="Kimi-Audio checkpoint dir (default: tiny checkpoint)")
    ap.add_argument("--speech-tokenizer", type=Path)
    ap.add_argument("--real-shapes", action="store_true", help="random weights at the real encoder widths")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch-sizes", default="1,8,32")
    ap.add_argument("--seconds", type=float, default=10.38, help="length of each audio (default: golden clip)")
    ap.add_argument("--iters", type=int, default=3, help="timed calls per batch size (after one warm-up)")
    args = ap.parse_args()

    device = pick_device(args.device)
    sizes = [int(s) for s in args.batch_sizes.split(",")]
    if args.real_shapes:
        tok_dir = args.model or tiny_dirs()[0]
        label = "real-shapes(random)"
    elif args.model:
        label = str(args.model)
    else:
        label = "tiny"
    audio = clip(args.seconds)
    torch.set_grad_enabled(False)
    for b in sizes:
        if args.real_shapes:
            front = real_shape_frontend(device, b, tok_dir)
        elif args.model:
            front = FrontEnd.load(args.model, args.speech_tokenizer, device=device, max_batch=b)
        else:
            model_dir, glm_dir = tiny_dirs()
            front = FrontEnd.load(model_dir, glm_dir, device=device, max_batch=b)
        audios, instr = [audio] * b, [DEFAULT_INSTRUCTION] * b
        front.build_prompts(audios, instr)  # warm-up
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(args.iters):
            front.build_prompts(audios, instr)
        if device.type == "cuda":
            torch.cuda.synchronize()
        wall = (time.perf_counter() - t0) / args.iters
        print(json.dumps({
            "bench": "frontend", "model": label, "device": str(device),
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "torch_threads": torch.get_num_threads(), "attention": front.whisper.attention_impl,
            "batch": b, "audio_s": round(b * args.seconds, 3), "wall_s": round(wall, 4),
            "audio_s_per_s": round(b * args.seconds / wall, 2),
        }), flush=True)
        del front
    return 0


if __name__ == "__main__":
    sys.exit(main())
