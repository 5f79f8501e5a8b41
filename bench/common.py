"""What every benchmark shares: the record schema, appending to docs/benchmarks.jsonl,
audio sets, checkpoints (tiny or real-shape random) and resource sampling.

Why one module: issue 5 asks every number to carry the same fields (bench, system,
device, clip_s, n_files, rtfx, p50_s, p95_s, date, command, hardware, versions, model
shape, audio set) and to land in one JSONL file; the unit test
(tests/unit/test_bench_records.py) checks exactly this code.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import shlex
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_JSONL = REPO_ROOT / "docs" / "benchmarks.jsonl"
AUDIO_CACHE = REPO_ROOT / ".data" / "bench-audio"          # .data/ is git-ignored
REQUIRED_FIELDS = ("bench", "system", "device", "clip_s", "n_files", "rtfx", "p50_s", "p95_s", "date", "command")
BENCHES = ("engine", "transcriber", "service")
SYSTEMS = ("ours", "reference_loop", "vllm_intree", "naive_worker")
SAMPLE_RATE = 16_000
WARMUP_FILES = 8   # a warm-up at batch size: the first batch of a shape pays allocation/first-call costs

# Real Kimi-Audio-7B shapes (spec §1.2) and its front ends.
REAL_LLM = {"hidden_size": 3584, "num_hidden_layers": 28, "intermediate_size": 18944,
            "num_attention_heads": 28, "num_key_value_heads": 4, "kimia_adaptor_input_dim": 5120,
            "kimia_mimo_layers": 6, "kimia_mimo_transformer_from_layer_index": 21, "torch_dtype": "bfloat16"}
REAL_WHISPER_LAYERS, REAL_GLM_LAYERS, REAL_ENCODER_D = 32, 16, 1280


# =====================================================================================
# records
# =====================================================================================

def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (numpy's default); None for no values."""
    if not values:
        return None
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def _result_env(environ: dict[str, str] | os._Environ) -> dict[str, str]:
    return {k: v for k, v in sorted(environ.items())
            if k.startswith(("KIMI_", "VLLM_")) and k != "KIMI_BENCH_JSONL"}


# Snapshot before vLLM is imported: vLLM sets VLLM_* variables of its own at import.
_LAUNCH_ENV = _result_env(os.environ)
# stdout carries only the JSON lines; vLLM (here and in its child processes) logs to stderr.
os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")


def command_line(argv: Sequence[str] | None = None, env: dict[str, str] | None = None) -> str:
    """The exact command, runnable from the repo root, with the KIMI_*/VLLM_* variables
    it was launched with (they change results)."""
    argv = list(sys.argv if argv is None else argv)
    env = _LAUNCH_ENV if env is None else env
    return " ".join([f"{k}={shlex.quote(v)}" for k, v in env.items()] + ["python", shlex.join(argv)])


def device_name() -> str:
    try:
        import torch
        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except Exception:  # noqa: BLE001 - no torch / broken CUDA: report the CPU
        pass
    return "cpu"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware() -> dict[str, Any]:
    hw: dict[str, Any] = {"cpu": _cpu_model(), "cpu_cores": os.cpu_count()}
    try:
        import psutil
        hw["ram_gib"] = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    try:
        import torch
        hw["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(0)
            hw["gpu"] = props.name
            hw["gpu_mem_gib"] = round(props.total_memory / 2**30, 1)
    except Exception:  # noqa: BLE001
        pass
    return hw


def versions() -> dict[str, Any]:
    out: dict[str, Any] = {"python": platform.python_version()}
    for mod in ("torch", "vllm"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - recorded as missing, never fatal
            out[mod] = None
    try:
        out["git"] = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"],
                                    capture_output=True, text=True, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        out["git"] = None
    return out


def make_record(bench: str, system: str, *, clip_s: float, n_files: int, wall_s: float,
                latencies_s: Sequence[float], model_shape: str, audio_set: str,
                argv: Sequence[str] | None = None, **extra: Any) -> dict[str, Any]:
    """One measurement. rtfx = audio seconds / wall seconds over the whole run; p50/p95
    over the per-request latencies; requests_per_s = n_files / wall."""
    if bench not in BENCHES:
        raise ValueError(f"bench must be one of {BENCHES}, got {bench!r}")
    if system not in SYSTEMS:
        raise ValueError(f"system must be one of {SYSTEMS}, got {system!r}")
    audio_s = float(clip_s) * int(n_files)
    rec: dict[str, Any] = {
        "bench": bench, "system": system, "device": device_name(),
        "clip_s": float(clip_s), "n_files": int(n_files),
        "rtfx": round(audio_s / wall_s, 3) if wall_s > 0 else None,
        "p50_s": _round(percentile(latencies_s, 50)), "p95_s": _round(percentile(latencies_s, 95)),
        "requests_per_s": round(n_files / wall_s, 4) if wall_s > 0 else None,
        "wall_s": round(wall_s, 4), "audio_s": round(audio_s, 3),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": command_line(argv), "model_shape": model_shape, "audio_set": audio_set,
        "hardware": hardware(), "versions": versions(),
    }
    rec.update({k: _round(v) if isinstance(v, float) else v for k, v in extra.items()})
    return rec


def _round(v: float | None, nd: int = 4) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else round(float(v), nd)


def jsonl_path(explicit: str | os.PathLike | None = None) -> Path | None:
    """--jsonl beats $KIMI_BENCH_JSONL beats docs/benchmarks.jsonl; "-" or "" = print only."""
    raw = explicit if explicit is not None else os.environ.get("KIMI_BENCH_JSONL", str(DEFAULT_JSONL))
    return None if str(raw) in ("", "-") else Path(raw)


def emit(record: dict[str, Any], path: Path | None) -> None:
    """Print the record as one JSON line on stdout and append the same line to ``path``."""
    missing = [k for k in REQUIRED_FIELDS if k not in record]
    if missing:
        raise ValueError(f"record lacks {missing}")
    line = json.dumps(record, ensure_ascii=False, sort_keys=False)
    print(line, flush=True)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:   # one write per line: concurrent runs never interleave
            f.write(line + "\n")


def add_common_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--jsonl", default=None,
                    help="append records here (default docs/benchmarks.jsonl or $KIMI_BENCH_JSONL; '-' = don't)")
    ap.add_argument("--audio", choices=("speech", "tones"), default="speech",
                    help="speech: espeak-ng synthetic speech; tones: sine tones + noise")
    ap.add_argument("--note", default=None, help="free text stored in every record")


# =====================================================================================
# resource sampling: CPU time per process, peak GPU memory
# =====================================================================================

class ResourceMeter:
    """CPU seconds of this process vs its children (vLLM's EngineCore and the like) and
    peak GPU memory, between start() and stop(). The child/self split is the only
    front-end vs LLM split available for the engine process on CPU."""

    def __init__(self, interval_s: float = 0.25):
        self.interval_s = interval_s
        self.peak_gpu_mib: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0: tuple[float, float] = (0.0, 0.0)
        self.self_cpu_s = 0.0
        self.children_cpu_s = 0.0

    @staticmethod
    def _cpu() -> tuple[float, float]:
        try:
            import psutil
        except ImportError:
            return 0.0, 0.0
        me = psutil.Process()
        t = me.cpu_times()
        mine = t.user + t.system
        kids = 0.0
        for c in me.children(recursive=True):
            try:
                ct = c.cpu_times()
                kids += ct.user + ct.system
            except psutil.Error:
                pass
        return mine, kids

    def _gpu_used_mib(self) -> float | None:
        if not shutil.which("nvidia-smi"):
            return None
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True, timeout=5).stdout.split()
            return float(out[0]) if out else None
        except (OSError, subprocess.SubprocessError, ValueError):
            return None

    def _poll(self) -> None:
        while not self._stop.wait(self.interval_s):
            used = self._gpu_used_mib()
            if used is not None:
                self.peak_gpu_mib = max(self.peak_gpu_mib or 0.0, used)

    def start(self) -> "ResourceMeter":
        self._t0 = self._cpu()
        if shutil.which("nvidia-smi"):
            self._thread = threading.Thread(target=self._poll, daemon=True, name="bench-gpu-mem")
            self._thread.start()
        return self

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        mine, kids = self._cpu()
        self.self_cpu_s, self.children_cpu_s = mine - self._t0[0], kids - self._t0[1]
        out: dict[str, Any] = {"cpu_s_main_process": round(self.self_cpu_s, 3),
                               "cpu_s_child_processes": round(self.children_cpu_s, 3)}
        out["peak_gpu_mem_gib"] = round(self.peak_gpu_mib / 1024, 2) if self.peak_gpu_mib else None
        try:
            import torch
            if torch.cuda.is_available():
                out["peak_torch_mem_gib_main_process"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        except Exception:  # noqa: BLE001
            pass
        return out


# =====================================================================================
# audio sets
# =====================================================================================

SENTENCES = (
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Please call Stella and ask her to bring these things with her from the store.",
    "Six spoons of fresh snow peas, five thick slabs of blue cheese, and maybe a snack for her brother Bob.",
    "We also need a small plastic snake and a big toy frog for the kids.",
    "She can scoop these things into three red bags, and we will go meet her Wednesday at the train station.",
    "A large language model turns audio into text one token at a time.",
    "The weather tomorrow will be cloudy in the morning with light rain in the afternoon.",
    "Benchmarks measure throughput in audio seconds per wall clock second.",
    "Our meeting has been moved to half past four on Thursday in the second floor conference room.",
    "Numbers like seventeen, two hundred and forty, and nine thousand are read out in full.",
    "The library closes at eight, but the reading room stays open until midnight during exams.",
    "Every request carries its own audio, its own prompt and its own stopping rule.",
)
VOICES = ("en-us", "en-gb", "en-gb-x-rp", "en-gb-scotland")
SPEEDS = (150, 175)


@dataclass(frozen=True)
class AudioSet:
    kind: str            # "speech" or "tones"
    clip_s: float
    files: tuple[Path, ...]

    def subset(self, start: int, stop: int) -> "AudioSet":
        return AudioSet(self.kind, self.clip_s, self.files[start:stop])

    @property
    def description(self) -> str:
        if self.kind == "speech":
            return (f"synthetic speech (espeak-ng, {len(VOICES)} voices x {len(SPEEDS)} speeds, "
                    f"{len(SENTENCES)} English sentences shuffled per file, 16 kHz mono PCM16): "
                    f"{len(self.files)} distinct files of {self.clip_s:g} s")
        return f"tones (sine 150-650 Hz + noise, 16 kHz mono PCM16): {len(self.files)} distinct files of {self.clip_s:g} s"


def _espeak_phrases(cache: Path) -> list[np.ndarray]:
    """Each (sentence, voice, speed) synthesised once, resampled to 16 kHz."""
    from kimi_model.audio_io import load_audio

    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng); use --audio tones")
    cache.mkdir(parents=True, exist_ok=True)
    phrases = []
    for s_i, text in enumerate(SENTENCES):
        for voice in VOICES:
            for speed in SPEEDS:
                wav = cache / f"s{s_i:02d}-{voice}-{speed}.wav"
                if not wav.is_file():
                    tmp = wav.with_suffix(".tmp.wav")
                    subprocess.run([exe, "-v", voice, "-s", str(speed), "-w", str(tmp), text], check=True,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    tmp.replace(wav)
                phrases.append(load_audio(wav))
    return phrases


def synth_speech(seconds: float, seed: int, phrases: Sequence[np.ndarray]) -> np.ndarray:
    """Phrases in a seed-dependent order with 0.1-0.5 s pauses, cut to exactly ``seconds``."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * SAMPLE_RATE))
    parts, total = [], 0
    while total < n:
        for i in rng.permutation(len(phrases)):
            gap = np.zeros(int(rng.uniform(0.1, 0.5) * SAMPLE_RATE), dtype=np.float32)
            parts += [phrases[i], gap]
            total += len(phrases[i]) + len(gap)
            if total >= n:
                break
    return np.concatenate(parts)[:n].astype(np.float32)


def synth_tones(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * SAMPLE_RATE))) / SAMPLE_RATE
    f = 150.0 + 500.0 * rng.random()
    y = 0.3 * np.sin(2 * np.pi * f * t) + 0.02 * rng.standard_normal(t.shape)
    return y.astype(np.float32)


def ensure_audio_set(kind: str, clip_s: float, n: int, cache: Path = AUDIO_CACHE) -> AudioSet:
    """``n`` distinct WAV files of ``clip_s`` seconds under ``cache`` (built once, reused).
    Distinct files keep vLLM's prefix cache from turning the benchmark into cache hits."""
    import soundfile as sf

    if kind not in ("speech", "tones"):
        raise ValueError(f"unknown audio kind {kind!r}")
    folder = cache / f"{kind}-{clip_s:g}s"
    folder.mkdir(parents=True, exist_ok=True)
    files = [folder / f"{i:04d}.wav" for i in range(n)]
    todo = [(i, p) for i, p in enumerate(files) if not p.is_file()]
    if todo:
        phrases = _espeak_phrases(cache / "phrases") if kind == "speech" else []
        for i, p in todo:
            y = synth_speech(clip_s, i, phrases) if kind == "speech" else synth_tones(clip_s, i)
            tmp = p.with_suffix(".tmp.wav")
            sf.write(tmp, y, SAMPLE_RATE, subtype="PCM_16")
            tmp.replace(p)
    return AudioSet(kind, float(clip_s), tuple(files))


def load_waves(files: Iterable[Path]) -> list[np.ndarray]:
    from kimi_model.audio_io import load_audio
    return [load_audio(p) for p in files]


# =====================================================================================
# checkpoints
# =====================================================================================

def tiny_dirs() -> tuple[Path, Path]:
    """The tiny random checkpoint (built once into $KIMI_TINY_DIR or <repo>/.tiny)."""
    from kimi_model.tiny import ensure_tiny_checkpoint
    ckpt = ensure_tiny_checkpoint(os.environ.get("KIMI_TINY_DIR", REPO_ROOT / ".tiny"))
    return Path(ckpt.model_dir), Path(ckpt.speech_tokenizer_dir)


def real_shape_config(layers: int | None = None) -> dict[str, Any]:
    """config.json of Kimi-Audio-7B (spec §1.2), optionally with fewer decoder layers."""
    from kimi_model import tiny

    cfg = tiny._llm_config()   # every non-shape field exactly as the tiny (real-layout) checkpoint
    cfg.update(REAL_LLM)
    if layers is not None:
        cfg["num_hidden_layers"] = int(layers)
    return cfg


def write_config_only_checkpoint(out: Path, layers: int | None = None) -> Path:
    """A checkpoint dir with the real config.json, tokenizer files and Whisper config but
    NO weights: vLLM fills the LLM with load_format="dummy" (random) at the real shape."""
    from kimi_model import tiny

    tiny_model, _ = tiny_dirs()
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(real_shape_config(layers), indent=2) + "\n")
    for name in ("tiktoken.model", "tokenizer_config.json"):
        shutil.copyfile(tiny_model / name, out / name)
    wdir = out / "whisper-large-v3"
    wdir.mkdir(exist_ok=True)
    wl = REAL_WHISPER_LAYERS if layers is None else min(REAL_WHISPER_LAYERS, int(layers))
    wcfg = tiny._whisper_config()
    wcfg.update({"d_model": REAL_ENCODER_D, "encoder_layers": wl, "num_hidden_layers": wl, "decoder_layers": wl,
                 "encoder_attention_heads": 20, "decoder_attention_heads": 20,
                 "encoder_ffn_dim": 5120, "decoder_ffn_dim": 5120, "torch_dtype": "float16"})
    (wdir / "config.json").write_text(json.dumps(wcfg, indent=2) + "\n")
    shutil.copyfile(tiny_model / "whisper-large-v3" / "preprocessor_config.json", wdir / "preprocessor_config.json")
    (out / "CONFIG_ONLY_RANDOM_WEIGHTS.txt").write_text(
        "No weights: for load_format='dummy' benchmarks at the real Kimi-Audio shape only.\n")
    return out


def add_checkpoint_args(ap: argparse.ArgumentParser) -> None:
    """Which model a disk-loading bench (transcriber, service) runs: tiny, real, or real-shape random."""
    ap.add_argument("--model", type=Path, help="checkpoint dir (default: tiny checkpoint)")
    ap.add_argument("--speech-tokenizer", type=Path)
    ap.add_argument("--real-shapes", action="store_true",
                    help="Kimi-Audio-7B shapes with random weights: LLM by load_format=dummy, front ends "
                         "random on disk (written once under .data/)")
    ap.add_argument("--layers", type=int, help="with --real-shapes: cut every stack to N layers (CPU smoke)")


def select_checkpoint(args: argparse.Namespace) -> tuple[Path, Path | None, str]:
    """(model dir, speech-tokenizer dir, model_shape label) for ``add_checkpoint_args``.
    --real-shapes sets KIMI_LOAD_FORMAT=dummy in this process's environment, which the
    in-process Transcriber and the service's worker (a child) both read."""
    if args.real_shapes:
        name = "real-shape-random" + (f"-{args.layers}l" if args.layers else "")
        model_dir, glm_dir = write_random_real_shape_checkpoint(REPO_ROOT / ".data" / name, args.layers)
        os.environ["KIMI_LOAD_FORMAT"] = "dummy"
        shape = "real (random weights)" if not args.layers else f"real width, {args.layers} layers (random weights)"
        return model_dir, glm_dir, shape
    if args.model:
        return args.model, args.speech_tokenizer, f"checkpoint {args.model.name}"
    model_dir, glm_dir = tiny_dirs()
    return model_dir, glm_dir, "tiny"


def real_shape_encoders(layers: int | None = None) -> tuple[Any, Any]:
    """(GLM tokenizer, Whisper encoder) with random weights at the real shapes: Whisper-large-v3
    (32 layers, d 1280) and GLM-4-Voice tokenizer (16 layers, d 1280, 16,384 codes);
    ``layers`` caps both for CPU smokes."""
    import torch

    from kimi_model.encoders import EncoderConfig, GLMSpeechTokenizer, WhisperEncoder

    torch.manual_seed(0)
    wl = REAL_WHISPER_LAYERS if layers is None else min(REAL_WHISPER_LAYERS, layers)
    gl = REAL_GLM_LAYERS if layers is None else min(REAL_GLM_LAYERS, layers)
    whisper = WhisperEncoder(EncoderConfig(d_model=REAL_ENCODER_D, heads=20, ffn=5120, layers=wl))
    glm = GLMSpeechTokenizer(EncoderConfig(d_model=REAL_ENCODER_D, heads=20, ffn=5120, layers=gl, causal_conv=True,
                                           block_size=200, final_norm=False), codebook_size=16_384)
    return glm, whisper


def real_shape_frontend(device: Any, max_batch: int, tokenizer_dir: Path, layers: int | None = None) -> Any:
    """FrontEnd over ``real_shape_encoders`` (dtypes are FrontEnd's own: GLM fp32; Whisper
    bf16 on CUDA, fp32 on CPU)."""
    from kimi_model.frontend import FrontEnd
    from kimi_model.text_tokenizer import KimiTextTokenizer

    glm, whisper = real_shape_encoders(layers)
    tok = KimiTextTokenizer.from_model_dir(tokenizer_dir)
    return FrontEnd(tok, glm, whisper, device, max_batch)


def write_random_real_shape_checkpoint(out: Path, layers: int | None = None) -> tuple[Path, Path]:
    """A checkpoint in the real layout at the real shapes for code that loads from disk (the
    Transcriber, the service's worker): random front-end weights under the real key names,
    and no LLM weights, so it runs only with ``KIMI_LOAD_FORMAT=dummy``. Built once.

    Returns (model dir, speech-tokenizer dir)."""
    from safetensors.torch import save_file

    from kimi_model import tiny

    glm_dir = out / tiny.SPEECH_TOKENIZER_SUBDIR
    done = out / "RANDOM_FRONTEND_WEIGHTS.txt"
    if done.is_file():
        return out, glm_dir
    write_config_only_checkpoint(out, layers)
    glm, whisper = real_shape_encoders(layers)
    save_file({f"model.encoder.{k}": v.contiguous() for k, v in whisper.state_dict().items()},
              str(out / "whisper-large-v3" / "model.safetensors"))
    glm_dir.mkdir(exist_ok=True)
    n_glm = sum(1 for k in glm.state_dict() if k.endswith(".fc2.weight"))
    gcfg = tiny._glm_config()
    gcfg.update({"d_model": REAL_ENCODER_D, "encoder_attention_heads": 20, "decoder_attention_heads": 20,
                 "encoder_ffn_dim": 5120, "decoder_ffn_dim": 5120, "encoder_layers": n_glm,
                 "num_hidden_layers": n_glm, "quantize_position": n_glm, "pooling_position": n_glm})
    (glm_dir / "config.json").write_text(json.dumps(gcfg, indent=2) + "\n")
    (glm_dir / "preprocessor_config.json").write_text(json.dumps(tiny._preprocessor_config(), indent=2) + "\n")
    save_file({k: v.contiguous() for k, v in glm.state_dict().items()}, str(glm_dir / "model.safetensors"))
    done.write_text("Random front-end weights at the real shapes, no LLM weights: run with "
                    "KIMI_LOAD_FORMAT=dummy. For benchmarks only; transcripts are noise.\n")
    return out, glm_dir


def random_llm_tensors(config: dict[str, Any], dtype: Any, device: Any, seed: int = 0) -> dict[str, Any]:
    """Random LLM tensors under the checkpoint's key names for ReferenceLM at any shape
    (the reference_loop baseline at the real shape, where no weights exist)."""
    import torch

    g = torch.Generator(device=device).manual_seed(seed)
    h, ff = int(config["hidden_size"]), int(config["intermediate_size"])
    nh, nkv = int(config["num_attention_heads"]), int(config["num_key_value_heads"])
    hd = h // nh
    v, ain = int(config["vocab_size"]), int(config["kimia_adaptor_input_dim"])

    def r(*shape: int, std: float = 0.02) -> torch.Tensor:
        return (torch.randn(*shape, generator=g, device=device, dtype=torch.float32) * std).to(dtype)

    def ones(n: int) -> torch.Tensor:
        return torch.ones(n, device=device, dtype=dtype)

    t = {"model.embed_tokens.weight": r(v, h), "model.norm.weight": ones(h), "lm_head.weight": r(v, h),
         "model.vq_adaptor.layers.0.weight": r(h, ain), "model.vq_adaptor.layers.0.bias": r(h),
         "model.vq_adaptor.layers.3.weight": r(h, h), "model.vq_adaptor.layers.3.bias": r(h),
         "model.vq_adaptor.layers.4.weight": ones(h), "model.vq_adaptor.layers.4.bias": r(h)}
    for i in range(int(config["num_hidden_layers"])):
        p = f"model.layers.{i}."
        t.update({p + "self_attn.q_proj.weight": r(nh * hd, h), p + "self_attn.q_proj.bias": r(nh * hd),
                  p + "self_attn.k_proj.weight": r(nkv * hd, h), p + "self_attn.k_proj.bias": r(nkv * hd),
                  p + "self_attn.v_proj.weight": r(nkv * hd, h), p + "self_attn.v_proj.bias": r(nkv * hd),
                  p + "self_attn.o_proj.weight": r(h, nh * hd),
                  p + "input_layernorm.weight": ones(h), p + "post_attention_layernorm.weight": ones(h),
                  p + "mlp.gate_proj.weight": r(ff, h), p + "mlp.up_proj.weight": r(ff, h),
                  p + "mlp.down_proj.weight": r(h, ff)})
    return t


# =====================================================================================
# sampling profile (py-spy): every thread of this process and of vLLM's child processes
# =====================================================================================

# First matching rule wins; checked against the whole collapsed stack of one sample.
PROFILE_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("vLLM worker: spin-waiting on its message queue", ("SpinCondition.wait", "acquire_read")),
    ("front end: GLM-4-Voice tokenizer", ("semantic_codes",)),
    ("front end: Whisper features", ("whisper_features",)),
    ("front end: other (prompt build, checks)", ("build_prompts",)),
    ("audio decode", ("load_audio",)),
    ("LLM: model forward", ("execute_model", "_model_forward", "sample_tokens")),
)


def classify_stack(stack: str, main_pid: int) -> str:
    for label, needles in PROFILE_RULES:
        if any(n in stack for n in needles):
            return label
    # py-spy --subprocesses nests a child's frames under "process PID:..." frames of its parents.
    frames = stack.split(";")
    procs = [f for f in frames if f.startswith("process ")]
    if len(procs) > 1 or (procs and not procs[0].startswith(f"process {main_pid}:")):
        return "vLLM child processes: scheduler, IPC, other"
    return "main process: asyncio, IPC, threads, other"


def summarize_collapsed(path: Path, main_pid: int) -> dict[str, float]:
    """Share of (non-idle) samples per category of a py-spy ``--format raw`` file."""
    counts: dict[str, int] = {}
    for line in path.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        label = classify_stack(stack, main_pid)
        counts[label] = counts.get(label, 0) + int(n)
    total = sum(counts.values())
    return {k: round(v / total, 4) for k, v in sorted(counts.items(), key=lambda kv: -kv[1])} if total else {}


class PySpy:
    """``py-spy record`` attached to this process and its children while the block runs."""

    def __init__(self, out: Path, rate: int = 50):
        self.out, self.rate = out, rate
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "PySpy":
        exe = shutil.which("py-spy")
        if exe is None:
            raise RuntimeError("--profile needs py-spy (pip install py-spy)")
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen([exe, "record", "--pid", str(os.getpid()), "--subprocesses", "--rate",
                                      str(self.rate), "--format", "raw", "--output", str(self.out), "--nonblocking"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import time
        time.sleep(1.0)   # attach before the work starts
        return self

    def __exit__(self, *exc: object) -> None:
        import signal
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)   # py-spy writes the file on SIGINT
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
