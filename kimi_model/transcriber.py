"""The engine host: one vLLM AsyncLLM + one FrontEnd per process (docs/architecture.md).

    cfg = TranscriberConfig.from_env()              # or TranscriberConfig(model_dir=...)
    async with Transcriber(cfg) as t:               # start() / aclose()
        result = await t.transcribe("a.wav")        # bytes | path | 16 kHz float32 ndarray

    bt = BlockingTranscriber(cfg)                   # own event-loop thread; thread-safe
    result = bt.transcribe(b"...wav bytes...")
    bt.close()

Flow of one request: decode (thread pool) → split into chunks → each chunk goes to
the front-end queue → a batching worker collects up to ``frontend_batch`` chunks
(waiting at most ``frontend_max_wait_ms`` after the first) and runs
``FrontEnd.build_prompts`` in a dedicated thread, so the event loop keeps feeding the
engine → each prompt is submitted to the AsyncLLM (vLLM prompt = audio stream,
multimodal item = prompt tensors, see vllm_model.py) → sampled ids come back →
detokenized ourselves (spec §6).

Long audio (docs/plugin.md): audio up to ``chunk_seconds`` (default 300 s) is ONE
prompt, exactly the reference. Longer audio is cut every ``chunk_seconds`` from t=0;
``chunk_seconds`` is a multiple of 30 s, so every chunk boundary is a 30-s window
boundary of the reference front end and each chunk's windows are the reference's
windows. Chunks are transcribed concurrently and stitched in order; each becomes a
``Segment`` with its start/end time, and ``progress`` is called as chunks finish.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import logging
import os
import threading
import time
import unicodedata
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kimi_model import constants as K
from kimi_model.errors import (
    AudioError,
    AudioTooLongError,
    EmptyAudioError,
    InvalidRequestError,
    KimiError,
    RequestTooLongError,
)

logger = logging.getLogger(__name__)

GiB = 1 << 30
WINDOW_SECONDS = K.WINDOW_SAMPLES // K.SAMPLE_RATE      # 30
FIXED_PROMPT_POSITIONS = 6                              # user start, media begin/end, ct, msg end, assistant start


# =====================================================================================
# public data types (engine-host contract)
# =====================================================================================

@dataclass
class TranscriptionOptions:
    instruction: str | None = K.DEFAULT_INSTRUCTION   # None or "" → no instruction message
    max_tokens: int | None = None                     # None → reference default 7500 − L (≤ context)
    temperature: float = 0.0
    repetition_penalty: float = 1.0
    ignore_eos: bool = False
    seed: int | None = None                           # only matters for temperature > 0


@dataclass
class Segment:
    start_s: float
    end_s: float
    text: str
    token_ids: list[int]


@dataclass
class TranscriptionResult:
    text: str
    token_ids: list[int]
    duration_s: float
    segments: list[Segment]
    timings: dict[str, float] = field(default_factory=dict)


def _env(name: str, default: Any, cast: Callable[[str], Any]) -> Any:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return cast(raw)
    except ValueError as exc:
        raise ValueError(f"bad value for {name}: {raw!r}") from exc


def _bool(raw: str) -> bool:
    v = raw.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)


def _opt_int(raw: str) -> int | None:
    return None if raw.strip().lower() in ("none", "auto") else int(raw)


@dataclass
class TranscriberConfig:
    model_dir: str
    speech_tokenizer_dir: str | None = None          # None → <model_dir>/glm-4-voice-tokenizer or sibling
    dtype: str = "auto"                              # auto = checkpoint dtype (bf16 real, fp32 tiny)
    gpu_memory_utilization: float = 0.9              # GPU only
    kv_cache_gib: float | None = None                # KV cache size; default 4 GiB on CPU, utilisation on GPU
    max_num_seqs: int = 16
    max_model_len: int = K.MAX_POSITIONS             # 8192
    max_num_batched_tokens: int | None = None        # None → vLLM default (chunked prefill)
    enable_prefix_caching: bool = True
    enforce_eager: bool = False
    load_format: str = "auto"                        # "dummy": random LLM weights (benchmarks only)
    scheduling_policy: str = "fcfs"                  # "priority" makes transcribe(priority=) count
    frontend_device: str = "auto"
    frontend_batch: int = 8                          # prompts per FrontEnd.build_prompts call
    frontend_max_wait_ms: float = 5.0                # wait for more work after the first item
    frontend_max_windows: int = 32                   # 30-s windows per encoder call
    chunk_seconds: int = 300                         # long-audio chunk, multiple of 30 s
    max_audio_seconds: float | None = None           # None → unlimited (chunked)
    extra_engine_args: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.chunk_seconds <= 0 or self.chunk_seconds % WINDOW_SECONDS:
            raise ValueError(f"chunk_seconds must be a positive multiple of {WINDOW_SECONDS}, got {self.chunk_seconds}")
        if self.scheduling_policy not in ("fcfs", "priority"):
            raise ValueError("scheduling_policy must be 'fcfs' or 'priority'")

    @classmethod
    def from_env(cls, **overrides: Any) -> "TranscriberConfig":
        """Read KIMI_* environment variables (documented in docs/plugin.md)."""
        model_dir = overrides.pop("model_dir", None) or os.environ.get("KIMI_MODEL_DIR")
        if not model_dir:
            raise ValueError("KIMI_MODEL_DIR is not set")
        values = dict(
            model_dir=model_dir,
            speech_tokenizer_dir=os.environ.get("KIMI_SPEECH_TOKENIZER_DIR") or None,
            dtype=_env("KIMI_DTYPE", "auto", str),
            gpu_memory_utilization=_env("KIMI_GPU_MEMORY_UTILIZATION", 0.9, float),
            kv_cache_gib=_env("KIMI_KV_CACHE_GIB", None, float),
            max_num_seqs=_env("KIMI_MAX_NUM_SEQS", 16, int),
            max_model_len=_env("KIMI_MAX_MODEL_LEN", K.MAX_POSITIONS, int),
            max_num_batched_tokens=_env("KIMI_MAX_NUM_BATCHED_TOKENS", None, _opt_int),
            enable_prefix_caching=_env("KIMI_ENABLE_PREFIX_CACHING", True, _bool),
            enforce_eager=_env("KIMI_ENFORCE_EAGER", False, _bool),
            load_format=_env("KIMI_LOAD_FORMAT", "auto", str),
            scheduling_policy=_env("KIMI_SCHEDULING_POLICY", "fcfs", str),
            frontend_device=_env("KIMI_FRONTEND_DEVICE", "auto", str),
            frontend_batch=_env("KIMI_FRONTEND_BATCH", 8, int),
            frontend_max_wait_ms=_env("KIMI_FRONTEND_MAX_WAIT_MS", 5.0, float),
            frontend_max_windows=_env("KIMI_FRONTEND_MAX_WINDOWS", 32, int),
            chunk_seconds=_env("KIMI_CHUNK_SECONDS", 300, int),
            max_audio_seconds=_env("KIMI_MAX_AUDIO_SECONDS", None, float),
        )
        values.update(overrides)
        return cls(**values)

    def engine_args(self) -> Any:
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.platforms import current_platform

        from kimi_model.vllm_model import LOGITS_PROCESSOR_FQCN

        kwargs: dict[str, Any] = dict(
            model=self.model_dir,
            dtype=self.dtype,
            max_model_len=self.max_model_len,
            max_num_seqs=self.max_num_seqs,
            enable_prefix_caching=self.enable_prefix_caching,
            enforce_eager=self.enforce_eager,
            load_format=self.load_format,
            skip_tokenizer_init=True,            # we tokenize and detokenize ourselves
            generation_config="vllm",            # stops come only from our SamplingParams
            logits_processors=[LOGITS_PROCESSOR_FQCN],
            limit_mm_per_prompt={"audio": 1},
            scheduling_policy=self.scheduling_policy,
            gpu_memory_utilization=self.gpu_memory_utilization,
        )
        if self.max_num_batched_tokens is not None:
            kwargs["max_num_batched_tokens"] = self.max_num_batched_tokens
        kv_gib = self.kv_cache_gib
        if kv_gib is None and current_platform.is_cpu():
            kv_gib = 4.0
        if kv_gib is not None:
            kwargs["kv_cache_memory_bytes"] = int(kv_gib * GiB)
        kwargs.update(self.extra_engine_args)
        return AsyncEngineArgs(**kwargs)


# =====================================================================================
# helpers
# =====================================================================================

def split_chunks(num_samples: int, chunk_seconds: int) -> list[tuple[int, int]]:
    """[start, end) sample ranges: one chunk if the audio fits, else every chunk_seconds."""
    step = chunk_seconds * K.SAMPLE_RATE
    if num_samples <= step:
        return [(0, num_samples)]
    return [(s, min(s + step, num_samples)) for s in range(0, num_samples, step)]


def num_semantic_tokens(num_samples: int) -> int:
    """N = Σ over 30-s windows of ceil(L_w / 1280) (spec §4a)."""
    full, rest = divmod(num_samples, K.WINDOW_SAMPLES)
    n = full * (K.WINDOW_SAMPLES // K.SAMPLES_PER_TOKEN)
    return n + (-(-rest // K.SAMPLES_PER_TOKEN) if rest else 0)


def _is_cjk(ch: str) -> bool:
    return "CJK" in unicodedata.name(ch, "") or "HIRAGANA" in unicodedata.name(ch, "") \
        or "KATAKANA" in unicodedata.name(ch, "") or "HANGUL" in unicodedata.name(ch, "")


def stitch_texts(texts: Sequence[str]) -> str:
    """Join chunk texts: a single space between two chunks unless either side already
    has whitespace there or a side is CJK (no-space scripts) or empty."""
    out = ""
    for t in texts:
        if out and t and not out[-1].isspace() and not t[0].isspace() and not (_is_cjk(out[-1]) or _is_cjk(t[0])):
            out += " "
        out += t
    return out


def sampling_params_for(options: TranscriptionOptions, max_tokens: int) -> Any:
    from vllm import SamplingParams

    from kimi_model.vllm_model import REPETITION_PENALTY_KEY

    extra = {REPETITION_PENALTY_KEY: float(options.repetition_penalty)} if options.repetition_penalty != 1.0 else None
    return SamplingParams(
        n=1,
        max_tokens=max_tokens,
        temperature=float(options.temperature),
        top_k=5 if options.temperature > 1e-6 else 0,   # reference text_top_k = 5
        top_p=1.0,
        seed=options.seed,
        stop_token_ids=[] if options.ignore_eos else [K.TEXT_EOS],
        ignore_eos=bool(options.ignore_eos),
        detokenize=False,
        skip_special_tokens=False,
        extra_args=extra,
    )


@dataclass(order=True)
class _FrontEndJob:
    priority: int
    seq: int
    audio: np.ndarray = field(compare=False)
    instruction: str | None = field(compare=False)
    future: asyncio.Future = field(compare=False)


# =====================================================================================
# Transcriber (async)
# =====================================================================================

class Transcriber:
    """One AsyncLLM + one FrontEnd per process; many concurrent ``transcribe`` calls."""

    def __init__(self, config: TranscriberConfig):
        self.config = config
        self._llm: Any = None
        self._frontend: Any = None
        self._queue: asyncio.PriorityQueue[_FrontEndJob] | None = None
        self._worker: asyncio.Task | None = None
        self._fe_executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._io_executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._seq = itertools.count()
        self._closed = False
        self._started = False

    # --- lifecycle -----------------------------------------------------------------
    async def start(self) -> None:
        if self._started:
            return
        from kimi_model.frontend import FrontEnd
        from kimi_model.plugin import register

        register()   # in-process too, in case the entry point is not installed
        loop = asyncio.get_running_loop()
        self._fe_executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="kimi-frontend")
        self._io_executor = concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="kimi-decode")
        cfg = self.config
        self._frontend = await loop.run_in_executor(
            self._fe_executor,
            lambda: FrontEnd.load(cfg.model_dir, cfg.speech_tokenizer_dir, device=cfg.frontend_device,
                                  max_batch=cfg.frontend_max_windows,
                                  require_llm_weights=cfg.load_format != "dummy"))
        from vllm.v1.engine.async_llm import AsyncLLM

        self._llm = AsyncLLM.from_engine_args(cfg.engine_args())
        self._queue = asyncio.PriorityQueue()
        self._worker = asyncio.create_task(self._frontend_worker(), name="kimi-frontend-batcher")
        self._started = True

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._worker
        if self._queue is not None:
            while not self._queue.empty():
                job = self._queue.get_nowait()
                if not job.future.done():
                    job.future.set_exception(KimiError("transcriber is shutting down"))
        if self._llm is not None:
            self._llm.shutdown()
            self._llm = None
        for ex in (self._fe_executor, self._io_executor):
            if ex is not None:
                ex.shutdown(wait=False, cancel_futures=True)

    async def __aenter__(self) -> "Transcriber":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def text_tokenizer(self) -> Any:
        return self._frontend.text_tokenizer

    # --- front-end batching ------------------------------------------------------------
    async def _frontend_worker(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        max_batch = max(1, self.config.frontend_batch)
        max_wait = max(0.0, self.config.frontend_max_wait_ms) / 1000.0
        while True:
            jobs = [await self._queue.get()]
            deadline = loop.time() + max_wait
            while len(jobs) < max_batch:
                if not self._queue.empty():
                    jobs.append(self._queue.get_nowait())
                    continue
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    jobs.append(await asyncio.wait_for(self._queue.get(), remaining))
                except asyncio.TimeoutError:
                    break
            jobs = [j for j in jobs if not j.future.done()]   # cancelled callers
            if jobs:
                await self._run_frontend(jobs)

    async def _run_frontend(self, jobs: list[_FrontEndJob]) -> None:
        loop = asyncio.get_running_loop()
        fe = self._frontend
        try:
            prompts = await loop.run_in_executor(
                self._fe_executor, fe.build_prompts, [j.audio for j in jobs], [j.instruction for j in jobs])
        except Exception as exc:  # noqa: BLE001
            if len(jobs) == 1:
                if not jobs[0].future.done():
                    jobs[0].future.set_exception(exc)
                return
            for job in jobs:   # isolate the bad one(s)
                await self._run_frontend([job])
            return
        for job, prompt in zip(jobs, prompts):
            if not job.future.done():
                job.future.set_result(prompt)

    async def _build_prompt(self, audio: np.ndarray, instruction: str | None, priority: int) -> Any:
        if self._closed or self._queue is None:
            raise KimiError("transcriber is not running")
        fut = asyncio.get_running_loop().create_future()
        await self._queue.put(_FrontEndJob(priority, next(self._seq), audio, instruction, fut))
        return await fut

    # --- request path --------------------------------------------------------------
    async def _decode(self, audio: bytes | str | os.PathLike | np.ndarray) -> np.ndarray:
        if isinstance(audio, np.ndarray):
            a = np.asarray(audio, dtype=np.float32)
            if a.ndim != 1:
                raise InvalidRequestError(f"ndarray audio must be 1-D 16 kHz mono, got shape {a.shape}")
            if a.size == 0:
                raise EmptyAudioError("audio has no samples")
            if not np.isfinite(a).all():
                raise InvalidRequestError("audio contains non-finite samples")
            return a
        from kimi_model.audio_io import load_audio

        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._io_executor, load_audio, audio)

    def _max_tokens_for(self, prompt_len: int, options: TranscriptionOptions) -> int:
        room = self.config.max_model_len - prompt_len
        if room < 1:
            raise RequestTooLongError(
                f"prompt of {prompt_len} positions leaves no room for output in a {self.config.max_model_len}-token "
                f"context; lower chunk_seconds (now {self.config.chunk_seconds})")
        if options.max_tokens is None:
            return max(1, min(K.REFERENCE_MAX_TOTAL_TOKENS - prompt_len, room))
        if options.max_tokens < 1:
            raise InvalidRequestError("max_tokens must be ≥ 1")
        if options.max_tokens > room:
            raise RequestTooLongError(
                f"prompt ({prompt_len}) + max_tokens ({options.max_tokens}) exceeds the context "
                f"({self.config.max_model_len})")
        return options.max_tokens

    def _check_fits(self, chunk_samples: int, instruction: str | None, options: TranscriptionOptions) -> None:
        """Reject before any front-end work when the longest chunk cannot fit."""
        n_instr = len(self._frontend.text_tokenizer.encode(instruction)) if instruction else 0
        self._max_tokens_for(n_instr + num_semantic_tokens(chunk_samples) + FIXED_PROMPT_POSITIONS, options)

    async def generate_prompt(self, prompt: Any, options: TranscriptionOptions | None = None, *,
                              priority: int = 0, sampling_overrides: dict[str, Any] | None = None) -> list[int]:
        """Run one prebuilt ``KimiPrompt`` through the engine → sampled text ids
        (151667 excluded). For parity checks and benchmarks; no front end involved.
        ``sampling_overrides`` are extra vLLM SamplingParams fields."""
        if not self._started or self._closed:
            raise KimiError("transcriber is not running (call start())")
        return await self._generate(prompt, options or TranscriptionOptions(), priority, sampling_overrides)

    async def _generate(self, prompt: Any, options: TranscriptionOptions, priority: int,
                        sampling_overrides: dict[str, Any] | None = None) -> list[int]:
        from kimi_model.vllm_model import prompt_to_mm_data

        max_tokens = self._max_tokens_for(len(prompt.audio_ids), options)
        params = sampling_params_for(options, max_tokens)
        for key, value in (sampling_overrides or {}).items():
            setattr(params, key, value)
        engine_prompt = {
            "prompt_token_ids": list(prompt.audio_ids),
            "multi_modal_data": {"audio": prompt_to_mm_data(prompt.audio_ids, prompt.text_ids,
                                                            prompt.continuous_mask, prompt.whisper_features)},
        }
        kwargs: dict[str, Any] = {}
        if self.config.scheduling_policy == "priority":
            kwargs["priority"] = priority
        final = None
        try:
            async for out in self._llm.generate(engine_prompt, params, f"kimi-{uuid.uuid4().hex}", **kwargs):
                final = out
        except KimiError:
            raise
        except (ValueError, TypeError) as exc:   # rejected by vLLM's input processing
            raise InvalidRequestError(f"engine rejected the request: {exc}") from exc
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001
            cause = exc.__cause__
            if isinstance(cause, (ValueError, TypeError)):   # vLLM wraps input-processing errors
                raise InvalidRequestError(f"engine rejected the request: {cause}") from exc
            raise KimiError(f"engine error: {type(exc).__name__}: {exc}") from exc   # retryable
        if final is None or not final.outputs:
            raise KimiError("engine returned no output")
        ids = list(final.outputs[0].token_ids)
        if not options.ignore_eos and ids and ids[-1] == K.TEXT_EOS:
            ids.pop()   # the stop id is never part of the result (spec §6)
        return ids

    async def _transcribe_chunk(self, audio: np.ndarray, options: TranscriptionOptions, priority: int,
                                timings: dict[str, float]) -> list[int]:
        t0 = time.perf_counter()
        prompt = await self._build_prompt(audio, options.instruction or None, priority)
        t1 = time.perf_counter()
        ids = await self._generate(prompt, options, priority)
        t2 = time.perf_counter()
        timings["frontend_s"] = timings.get("frontend_s", 0.0) + (t1 - t0)
        timings["engine_s"] = timings.get("engine_s", 0.0) + (t2 - t1)
        return ids

    async def transcribe(self, audio: bytes | str | os.PathLike | np.ndarray,
                         options: TranscriptionOptions | None = None, *, priority: int = 0,
                         progress: Callable[[float], None] | None = None) -> TranscriptionResult:
        if not self._started or self._closed:
            raise KimiError("transcriber is not running (call start())")
        options = options or TranscriptionOptions()
        if options.temperature < 0:
            raise InvalidRequestError("temperature must be ≥ 0")
        if options.repetition_penalty <= 0:
            raise InvalidRequestError("repetition_penalty must be > 0")
        t_start = time.perf_counter()
        try:
            wave = await self._decode(audio)
        except KimiError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise AudioError(f"could not decode audio: {exc}") from exc
        t_decoded = time.perf_counter()
        duration = wave.shape[0] / K.SAMPLE_RATE
        if self.config.max_audio_seconds is not None and duration > self.config.max_audio_seconds:
            raise AudioTooLongError(f"audio is {duration:.1f} s; the limit is {self.config.max_audio_seconds:.0f} s")
        chunks = split_chunks(wave.shape[0], self.config.chunk_seconds)
        instruction = options.instruction or None
        self._check_fits(max(e - s for s, e in chunks), instruction, options)

        timings: dict[str, float] = {"decode_s": t_decoded - t_start}
        done = 0

        async def run(i: int, s: int, e: int) -> list[int]:
            nonlocal done
            ids = await self._transcribe_chunk(wave[s:e], options, priority, timings)
            done += 1
            if progress is not None:
                try:
                    progress(done / len(chunks))
                except Exception:  # noqa: BLE001 - a callback must not kill the request
                    logger.exception("progress callback failed")
            return ids

        tasks = [asyncio.ensure_future(run(i, s, e)) for i, (s, e) in enumerate(chunks)]
        try:
            results = await asyncio.gather(*tasks)
        except BaseException:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        tok = self._frontend.text_tokenizer
        segments = [Segment(s / K.SAMPLE_RATE, e / K.SAMPLE_RATE, tok.decode_generated(ids), ids)
                    for (s, e), ids in zip(chunks, results)]
        timings["total_s"] = time.perf_counter() - t_start
        return TranscriptionResult(
            text=stitch_texts([seg.text for seg in segments]),
            token_ids=[t for seg in segments for t in seg.token_ids],
            duration_s=duration,
            segments=segments,
            timings=timings,
        )


# =====================================================================================
# BlockingTranscriber (threads)
# =====================================================================================

class BlockingTranscriber:
    """The same API, blocking; runs a Transcriber on its own event-loop thread, so
    any number of threads may call ``transcribe`` at once."""

    def __init__(self, config: TranscriberConfig, *, start: bool = True):
        self.config = config
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="kimi-transcriber-loop", daemon=True)
        self._thread.start()
        self._inner = Transcriber(config)
        self._closed = False
        if start:
            self.start()

    def _call(self, coro: Any, timeout: float | None = None) -> Any:
        if self._closed:
            coro.close()
            raise KimiError("transcriber is closed")
        fut = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return fut.result(timeout)
        except BaseException:
            # timeout or an interrupted caller: cancel the task, which aborts its vLLM
            # requests, so a timed-out job stops using the engine
            fut.cancel()
            raise

    def start(self) -> None:
        self._call(self._inner.start())

    @property
    def text_tokenizer(self) -> Any:
        return self._inner.text_tokenizer

    def transcribe(self, audio: bytes | str | os.PathLike | np.ndarray,
                   options: TranscriptionOptions | None = None, *, priority: int = 0,
                   progress: Callable[[float], None] | None = None,
                   timeout: float | None = None) -> TranscriptionResult:
        return self._call(self._inner.transcribe(audio, options, priority=priority, progress=progress), timeout)

    def generate_prompt(self, prompt: Any, options: TranscriptionOptions | None = None, *, priority: int = 0,
                        sampling_overrides: dict[str, Any] | None = None, timeout: float | None = None) -> list[int]:
        return self._call(self._inner.generate_prompt(prompt, options, priority=priority,
                                                      sampling_overrides=sampling_overrides), timeout)

    def close(self) -> None:
        if self._closed:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._inner.aclose(), self._loop).result(120)
        finally:
            self._closed = True
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    aclose = close   # symmetry with Transcriber

    def __enter__(self) -> "BlockingTranscriber":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = [
    "BlockingTranscriber",
    "Segment",
    "Transcriber",
    "TranscriberConfig",
    "TranscriptionOptions",
    "TranscriptionResult",
]
