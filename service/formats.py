"""Transcript renderings: json, text, srt, vtt, verbose_json (OpenAI-compatible shapes).

The stored transcript (``transcripts/<job>.json``) is
``{"text", "language", "duration", "segments": [{"start","end","text","tokens"}], "token_ids"}``.
"""
from __future__ import annotations

import json

FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
CONTENT_TYPES = {"json": "application/json", "verbose_json": "application/json",
                 "text": "text/plain; charset=utf-8", "srt": "application/x-subrip; charset=utf-8",
                 "vtt": "text/vtt; charset=utf-8"}


def transcript_from_result(result, language: str | None) -> dict:
    segs = [{"start": float(s.start_s), "end": float(s.end_s), "text": s.text, "tokens": list(s.token_ids)}
            for s in (result.segments or [])]
    if not segs and result.text:
        segs = [{"start": 0.0, "end": float(result.duration_s), "text": result.text,
                 "tokens": list(result.token_ids)}]
    return {"text": result.text, "language": language, "duration": float(result.duration_s),
            "segments": segs, "token_ids": list(result.token_ids),
            "timings": dict(getattr(result, "timings", {}) or {})}


def _ts(t: float, sep: str) -> str:
    ms = int(round(max(0.0, t) * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def render(tr: dict, fmt: str) -> str:
    segs = tr.get("segments") or []
    if fmt == "json":
        return json.dumps({"text": tr["text"]}, ensure_ascii=False)
    if fmt == "text":
        return tr["text"]
    if fmt == "srt":
        blocks = [f"{i}\n{_ts(s['start'], ',')} --> {_ts(s['end'], ',')}\n{s['text'].strip()}\n"
                  for i, s in enumerate(segs, 1)]
        return "\n".join(blocks)
    if fmt == "vtt":
        blocks = [f"{_ts(s['start'], '.')} --> {_ts(s['end'], '.')}\n{s['text'].strip()}\n" for s in segs]
        return "WEBVTT\n\n" + "\n".join(blocks)
    if fmt == "verbose_json":
        return json.dumps({
            "task": "transcribe", "language": tr.get("language") or "unknown", "duration": tr["duration"],
            "text": tr["text"],
            "segments": [{"id": i, "seek": 0, "start": s["start"], "end": s["end"], "text": s["text"],
                          "tokens": s["tokens"], "temperature": tr.get("temperature", 0.0),
                          "avg_logprob": 0.0, "compression_ratio": 0.0, "no_speech_prob": 0.0}
                         for i, s in enumerate(segs)],
        }, ensure_ascii=False)
    raise ValueError(fmt)
