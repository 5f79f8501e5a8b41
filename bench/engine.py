"""Engine-only benchmark: audio (already decoded) in, text ids out, no service, no Transcriber.

    python bench/engine.py --system ours            # our vLLM plugin, tiny checkpoint
    python bench/engine.py --system vllm_intree     # vLLM's own kimi_audio.py, same weights
    python bench/engine.py --system reference_loop  # plain-PyTorch batch-1 loop with KV cache
    python bench/engine.py --real-shapes ...        # random weights at the real 7B shapes (GPU)
    python bench/engine.py --real-shapes --layers 1 # CPU smoke of the real-shape path

Why each system is timed this way:
* ours: our FrontEnd builds the prompts (GLM-4-Voice codes + Whisper features, batched),
  then all prompts go to one AsyncLLM at once (continuous batching). Front-end and LLM
  phases are timed separately; rtfx counts both.
* vllm_intree: vLLM's KimiAudioForConditionalGeneration gets the raw audio; its processor
  and Whisper encoder run inside the engine, so one phase. Our plugin is disabled with
  VLLM_PLUGINS (set before vLLM is imported). Only speed is comparable: its outputs
  differ by design (spec §7).
* reference_loop: one request at a time, front end at batch 1, then
  kimi_model.reference.generate — how Moonshot's kimia_infer serves.

Every request generates exactly --max-tokens ids (ignore_eos) unless --stop-on-eos, so
the systems do the same work. Two records per run: scenario "bulk" (all files at once;
p50/p95 over per-request latencies) and "idle" (--idle-requests single requests, one
after another; latency includes the front end).
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.common import (  # noqa: E402
    WARMUP_FILES,
    AudioSet,
    ResourceMeter,
    add_common_args,
    emit,
    ensure_audio_set,
    jsonl_path,
    load_waves,
    make_record,
    random_llm_tensors,
    real_shape_config,
    real_shape_frontend,
    tiny_dirs,
    write_config_only_checkpoint,
)

INTREE_MAX_CLIP_S = 30.0   # its feature extractor keeps the first 30 s (3000 mel frames) and drops the rest


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--system", choices=("ours", "vllm_intree", "reference_loop"), default="ours")
    ap.add_argument("--real-shapes", action="store_true",
                    help="Kimi-Audio-7B shapes with random weights (LLM: load_format=dummy)")
    ap.add_argument("--layers", type=int, default=None,
                    help="with --real-shapes: cut LLM and encoder layers (CPU smoke; 7B fp32 needs ~40 GB)")
    ap.add_argument("--model", type=Path, help="real checkpoint dir (default: tiny checkpoint)")
    ap.add_argument("--speech-tokenizer", type=Path)
    ap.add_argument("--clip-s", type=float, default=30.0)
    ap.add_argument("--n-files", type=int, default=8)
    ap.add_argument("--sets", help="several audio sets in one engine, CLIP_S:N_FILES,... (overrides --clip-s/--n-files)")
    ap.add_argument("--idle-requests", type=int, default=3, help="single requests for the idle latency (0: skip)")
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--stop-on-eos", action="store_true", help="let requests stop on 151667 (default: ignore_eos)")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--max-num-seqs", type=int, default=None, help="default: n-files (at least 16)")
    ap.add_argument("--kv-cache-gib", type=float, default=None)
    ap.add_argument("--gpu-memory-utilization", type=float, default=0.9)
    ap.add_argument("--enforce-eager", action="store_true")
    ap.add_argument("--frontend-batch", type=int, default=32, help="30-s windows per encoder call (ours)")
    add_common_args(ap)
    return ap.parse_args(argv)


# =====================================================================================
# model / front end selection
# =====================================================================================

def model_dirs(args: argparse.Namespace) -> tuple[Path, Path | None, str]:
    """(model dir, speech-tokenizer dir, model_shape label)."""
    if args.real_shapes:
        tag = "real" if args.layers is None else f"real-{args.layers}layers"
        out = Path(tempfile.gettempdir()) / f"kimi-config-only-{tag}"
        return write_config_only_checkpoint(out, args.layers), None, (
            "real (random weights)" if args.layers is None else f"real width, {args.layers} layers (random weights)")
    if args.model:
        return args.model, args.speech_tokenizer, f"checkpoint {args.model.name}"
    model_dir, glm_dir = tiny_dirs()
    return model_dir, glm_dir, "tiny"


def make_frontend(args: argparse.Namespace, model_dir: Path, glm_dir: Path | None) -> Any:
    from kimi_model.frontend import FrontEnd, pick_device

    device = pick_device("auto")
    if args.real_shapes:
        return real_shape_frontend(device, args.frontend_batch, model_dir, args.layers)
    return FrontEnd.load(model_dir, glm_dir, device=device, max_batch=args.frontend_batch)


def timed_prompts(front: Any, waves: list[Any], batch: int) -> tuple[list[Any], float]:
    """Front-end prompts, ``batch`` audios per build_prompts call, and the seconds it took."""
    from kimi_model.constants import DEFAULT_INSTRUCTION

    sync = _cuda_sync()
    t0 = time.perf_counter()
    prompts = []
    for i in range(0, len(waves), batch):
        chunk = waves[i:i + batch]
        prompts += front.build_prompts(chunk, [DEFAULT_INSTRUCTION] * len(chunk))
    sync()
    return prompts, time.perf_counter() - t0


def _cuda_sync() -> Any:
    import torch
    return torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)


# =====================================================================================
# vLLM systems (ours, in-tree)
# =====================================================================================

def intree_checkpoint(model_dir: Path) -> Path:
    """The same files (symlinks) with ``"model_type": "qwen2"`` added to config.json.

    Why: Kimi-Audio's config.json has no model_type, only ``auto_map`` remote code
    (configuration_moonshot_kimia.py, a Qwen2Config plus kimia_* fields). vLLM's in-tree
    model is meant to be run with ``trust_remote_code=True`` and that file; our checkpoints
    do not ship it (no remote code is ever run here), so without this shim vLLM stops with
    "contains custom code which must be executed". Qwen2Config keeps the kimia_* fields
    as attributes, which is all the in-tree model reads."""
    key = hashlib.sha1(str(model_dir.resolve()).encode()).hexdigest()[:12]   # stable across runs
    out = Path(tempfile.gettempdir()) / f"kimi-intree-{key}"
    out.mkdir(parents=True, exist_ok=True)
    for src in model_dir.iterdir():
        dst = out / src.name
        if src.name != "config.json" and not dst.exists():
            dst.symlink_to(src.resolve())
    cfg = json.loads((model_dir / "config.json").read_text())
    cfg["model_type"] = "qwen2"
    (out / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    return out


def engine_args(args: argparse.Namespace, model_dir: Path, glm_dir: Path | None, intree: bool) -> Any:
    """Ours: exactly the Transcriber's engine args. In-tree: the same limits, its own
    tokenizer (its processor needs one), no logits processor of ours."""
    from kimi_model.transcriber import TranscriberConfig

    extra: dict[str, Any] = {"load_format": "dummy"} if args.real_shapes else {}
    if intree:
        extra.update(skip_tokenizer_init=False, logits_processors=None)
    cfg = TranscriberConfig(
        model_dir=str(intree_checkpoint(model_dir) if intree else model_dir), speech_tokenizer_dir=str(glm_dir) if glm_dir else None, dtype=args.dtype,
        gpu_memory_utilization=args.gpu_memory_utilization, kv_cache_gib=args.kv_cache_gib,
        max_num_seqs=args.max_num_seqs or max(16, args.n_files), enforce_eager=args.enforce_eager,
        extra_engine_args=extra)
    return cfg.engine_args()


def sampling(args: argparse.Namespace) -> Any:
    from kimi_model.transcriber import TranscriptionOptions, sampling_params_for
    return sampling_params_for(TranscriptionOptions(max_tokens=args.max_tokens, ignore_eos=not args.stop_on_eos),
                               args.max_tokens)


def our_engine_prompt(prompt: Any) -> dict[str, Any]:
    """The plugin's input contract (docs/plugin.md §2): prompt ids = audio stream, one
    multimodal item holding all four prompt tensors."""
    from kimi_model.vllm_model import prompt_to_mm_data
    return {"prompt_token_ids": list(prompt.audio_ids),
            "multi_modal_data": {"audio": prompt_to_mm_data(prompt.audio_ids, prompt.text_ids,
                                                            prompt.continuous_mask, prompt.whisper_features)}}


def intree_engine_prompt(wave: Any, instruction_ids: list[int]) -> dict[str, Any]:
    """vLLM's in-tree layout (its get_generation_prompt): user start, instruction + "\\n",
    media begin, one blank (expanded by its processor), media end, msg end, assistant."""
    from kimi_model import constants as K
    ids = [K.KIMIA_USER_MSG_START, *instruction_ids, 198, K.MEDIA_BEGIN, K.TEXT_BLANK, K.MEDIA_END,
           K.MSG_END, K.KIMIA_ASSISTANT_MSG_START]
    return {"prompt_token_ids": ids, "multi_modal_data": {"audio": (wave, K.SAMPLE_RATE)}}


async def run_requests(llm: Any, prompts: list[dict[str, Any]], params: Any) -> tuple[list[float], float, list[int]]:
    """All prompts at once; (per-request latency, wall, generated token counts)."""
    async def one(p: dict[str, Any]) -> tuple[float, int]:
        t = time.perf_counter()
        final = None
        async for out in llm.generate(p, params, f"bench-{uuid.uuid4().hex}"):
            final = out
        return time.perf_counter() - t, len(final.outputs[0].token_ids)

    t0 = time.perf_counter()
    res = await asyncio.gather(*(one(p) for p in prompts))
    return [r[0] for r in res], time.perf_counter() - t0, [r[1] for r in res]


Report = Callable[..., None]     # report(scenario, audio_set, wall_s, latencies_s, **extra)
Sets = list[tuple[AudioSet, list[Any]]]   # (measured set, its waves followed by the warm-up waves)


def _set_failed(audio: AudioSet, exc: BaseException) -> None:
    """A set a system cannot run (e.g. 5-min audio in the in-tree model) is reported, not fatal."""
    print(f"ERROR: {audio.clip_s:g}-s set failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)


async def bench_vllm(args: argparse.Namespace, model_dir: Path, glm_dir: Path | None, sets: Sets,
                     idle: AudioSet | None, idle_waves: list[Any], report: Report) -> None:
    from vllm.v1.engine.async_llm import AsyncLLM

    intree = args.system == "vllm_intree"
    front = None if intree else make_frontend(args, model_dir, glm_dir)
    llm = AsyncLLM.from_engine_args(engine_args(args, model_dir, glm_dir, intree))
    params = sampling(args)
    try:
        if intree:
            from kimi_model.constants import DEFAULT_INSTRUCTION
            from kimi_model.text_tokenizer import KimiTextTokenizer
            instr = KimiTextTokenizer.from_model_dir(model_dir).encode(DEFAULT_INSTRUCTION)

            def build(ws: list[Any]) -> tuple[list[dict[str, Any]], float]:
                return [intree_engine_prompt(w, instr) for w in ws], 0.0
        else:
            def build(ws: list[Any]) -> tuple[list[dict[str, Any]], float]:
                prompts, fe_s = timed_prompts(front, ws, args.frontend_batch)
                return [our_engine_prompt(p) for p in prompts], fe_s

        for audio, waves in sets:
            if intree and audio.clip_s > INTREE_MAX_CLIP_S:
                print(f"SKIP: {audio.clip_s:g}-s set: vLLM's in-tree processor truncates audio to "
                      f"{INTREE_MAX_CLIP_S:g} s (WhisperFeatureExtractor n_samples); it serves longer audio only "
                      "through its transcription endpoint, which cuts it into <=30-s chunks", file=sys.stderr)
                continue
            try:
                n = len(audio.files)
                warm, _ = build(waves[n:])   # first batch of a shape compiles / allocates: not timed
                await run_requests(llm, warm, params)
                meter = ResourceMeter().start()
                prompts, fe_s = build(waves[:n])
                lat, llm_s, ntok = await run_requests(llm, prompts, params)
                res = meter.stop()
            except Exception as exc:  # noqa: BLE001
                _set_failed(audio, exc)
                continue
            report("bulk", audio, fe_s + llm_s, lat, frontend_s=fe_s, llm_s=llm_s,
                   frontend_share=None if intree else fe_s / (fe_s + llm_s),
                   llm_only_rtfx=audio.clip_s * len(audio.files) / llm_s, generated_tokens=sum(ntok), **res)
        if idle is not None:
            lat1, wall1 = [], 0.0
            for w in idle_waves:
                p, f = build([w])
                lat_i, llm_i, _ = await run_requests(llm, p, params)
                lat1.append(f + lat_i[0])
                wall1 += f + llm_i
            report("idle", idle, wall1, lat1)
    finally:
        llm.shutdown()
        del llm   # now, not in __del__ at interpreter exit (noisy traceback)


# =====================================================================================
# reference loop
# =====================================================================================

def bench_reference(args: argparse.Namespace, model_dir: Path, glm_dir: Path | None, sets: Sets,
                    idle: AudioSet | None, idle_waves: list[Any], report: Report) -> None:
    import torch

    from kimi_model.reference import ReferenceLM, generate

    front = make_frontend(args, model_dir, glm_dir)
    device = front.device
    if args.real_shapes:
        cfg = real_shape_config(args.layers)
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        lm = ReferenceLM(cfg, random_llm_tensors(cfg, dtype, device), dtype)
    else:
        lm = ReferenceLM.load(model_dir)
    lm = lm.to(device)
    sync = _cuda_sync()

    def one(w: Any) -> tuple[float, float, int]:
        prompts, fe = timed_prompts(front, [w], 1)
        t = time.perf_counter()
        r = generate(lm, prompts[0], args.max_tokens, ignore_eos=not args.stop_on_eos)
        sync()
        return fe, time.perf_counter() - t, len(r.token_ids)

    for audio, waves in sets:
        try:
            n = len(audio.files)
            one(waves[n])   # warm-up (batch 1: one request is its batch shape)
            meter = ResourceMeter().start()
            runs = [one(w) for w in waves[:n]]
            res = meter.stop()
        except Exception as exc:  # noqa: BLE001
            _set_failed(audio, exc)
            continue
        fe_s, llm_s = sum(r[0] for r in runs), sum(r[1] for r in runs)
        report("bulk", audio, fe_s + llm_s, [r[0] + r[1] for r in runs], frontend_s=fe_s, llm_s=llm_s,
               frontend_share=fe_s / (fe_s + llm_s), llm_only_rtfx=audio.clip_s * len(runs) / llm_s,
               generated_tokens=sum(r[2] for r in runs), **res)
    if idle is not None:
        runs = [one(w) for w in idle_waves]
        report("idle", idle, sum(a + b for a, b, _ in runs), [a + b for a, b, _ in runs])


# =====================================================================================

def parse_sets(spec: str) -> list[tuple[float, int]]:
    """"30:8,5:16,300:2" → [(30.0, 8), (5.0, 16), (300.0, 2)] (clip seconds : files)."""
    out = []
    for part in spec.split(","):
        clip, _, n = part.strip().partition(":")
        out.append((float(clip), int(n)))
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.system == "vllm_intree":
        # Must happen before vLLM is imported anywhere: load every general plugin but ours.
        os.environ["VLLM_PLUGINS"] = os.environ.get("KIMI_BENCH_INTREE_PLUGINS", "")
    model_dir, glm_dir, shape = model_dirs(args)
    sets: Sets = []
    for clip_s, n in parse_sets(args.sets) if args.sets else [(args.clip_s, args.n_files)]:
        # Extra files for a warm-up at batch size, so no measured request is a prefix-cache hit.
        full = ensure_audio_set(args.audio, clip_s, n + min(n, WARMUP_FILES))
        sets.append((full.subset(0, n), load_waves(full.files)))
    args.n_files = max(len(a.files) for a, _ in sets)   # sizes max_num_seqs: all of a set at once
    idle = ensure_audio_set(args.audio, 10.0, args.idle_requests) if args.idle_requests else None
    idle_waves = load_waves(idle.files) if idle else []
    path = jsonl_path(args.jsonl)

    def report(scenario: str, audio: AudioSet, wall_s: float, latencies_s: list[float], **extra: Any) -> None:
        emit(make_record("engine", args.system, clip_s=audio.clip_s, n_files=len(audio.files), wall_s=wall_s,
                         latencies_s=latencies_s, model_shape=shape, audio_set=audio.description,
                         scenario=scenario, max_tokens=args.max_tokens, ignore_eos=not args.stop_on_eos,
                         note=args.note, **extra), path)

    if args.system == "reference_loop":
        bench_reference(args, model_dir, glm_dir, sets, idle, idle_waves, report)
    else:
        asyncio.run(bench_vllm(args, model_dir, glm_dir, sets, idle, idle_waves, report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
