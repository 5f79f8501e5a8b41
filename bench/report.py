"""Markdown table of docs/benchmarks.jsonl for docs/benchmarks.md: one run per row,
each baseline's ratio to ours, and the exact command behind every number.

    python bench/report.py [--jsonl docs/benchmarks.jsonl] [--since 2026-11-24]

Ratio = RTFx(ours) / RTFx(this row) for the latest "ours" row of the same bench,
scenario, clip length, device and model shape (> 1: ours is faster).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.common import DEFAULT_JSONL  # noqa: E402


def _key(r: dict[str, Any]) -> tuple:
    return (r["bench"], r.get("scenario"), r["clip_s"], r["device"], r.get("model_shape"))


def _f(v: Any, nd: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{nd}g}" if abs(v) < 1000 else f"{v:,.0f}"
    return str(v)


def render(records: list[dict[str, Any]]) -> str:
    ours = {}
    for r in records:
        if r["system"] == "ours" and r.get("rtfx"):
            ours[_key(r)] = r   # latest wins
    commands: list[str] = []
    rows = ["| # | bench | scenario | system | device | model | clip s | files | RTFx | req/s | p50 s | p95 s "
            "| front-end share | ours ÷ this | extra | cmd |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for i, r in enumerate(records, 1):
        if r["command"] not in commands:
            commands.append(r["command"])
        base = ours.get(_key(r))
        ratio = "" if r["system"] == "ours" or not base or not r.get("rtfx") else f"{base['rtfx'] / r['rtfx']:.2f}×"
        extra = []
        if r.get("service_overhead") is not None:
            extra.append(f"overhead {r['service_overhead']:.0%} vs in-process RTFx {_f(r['inprocess_rtfx'])}")
        if r.get("llm_only_rtfx"):
            extra.append(f"LLM-only RTFx {_f(r['llm_only_rtfx'])}")
        if r.get("peak_gpu_mem_gib"):
            extra.append(f"peak GPU {r['peak_gpu_mem_gib']} GiB")
        if r.get("worker_concurrency") is not None:
            extra.append(f"worker concurrency {r['worker_concurrency']}")
        if r.get("concurrency") is not None and r["bench"] == "transcriber":
            extra.append(f"concurrency {r['concurrency']}")
        share = r.get("frontend_share")
        rows.append(f"| {i} | {r['bench']} | {r.get('scenario', '')} | {r['system']} | {r['device']} | "
                    f"{r.get('model_shape', '')} | {_f(r['clip_s'])} | {r['n_files']} | {_f(r['rtfx'])} | "
                    f"{_f(r.get('requests_per_s'))} | {_f(r['p50_s'])} | {_f(r['p95_s'])} | "
                    f"{'' if share is None else f'{share:.0%}'} | {ratio} | {'; '.join(extra)} | "
                    f"[{commands.index(r['command']) + 1}] |")
    cmds = "\n".join(f"{i}. `{c}`" for i, c in enumerate(commands, 1))
    first = records[0] if records else {}
    hw, ver = first.get("hardware", {}), first.get("versions", {})
    head = (f"Hardware: {hw.get('cpu')} ({hw.get('cpu_cores')} cores, {hw.get('ram_gib')} GiB)"
            f"{', GPU ' + hw['gpu'] if hw.get('gpu') else ', no GPU'}; "
            f"python {ver.get('python')}, torch {ver.get('torch')}, vLLM {ver.get('vllm')}, git {ver.get('git')}.")
    return f"{head}\n\n" + "\n".join(rows) + "\n\nCommands (run from the repo root):\n\n" + cmds + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jsonl", type=Path, default=DEFAULT_JSONL)
    ap.add_argument("--since", default="", help="only records with date >= this ISO prefix")
    args = ap.parse_args(argv)
    records = [json.loads(line) for line in args.jsonl.read_text().splitlines() if line.strip()]
    print(render([r for r in records if r["date"] >= args.since]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
