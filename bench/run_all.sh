#!/usr/bin/env bash
# The whole benchmark suite, one command per machine (docs/benchmarks.md).
#
#   bash bench/run_all.sh gpu    # one H100/H200: real shapes, random weights (the issue-5 numbers)
#   bash bench/run_all.sh cpu    # CPU, tiny checkpoint, small sets (< 20 min on 2 cores)
#
# Every record is printed and appended to docs/benchmarks.jsonl (KIMI_BENCH_JSONL to redirect).
# BENCH_LOCK=/path/lockfile wraps each command in `flock` (shared CPU boxes).
# GPU: transcriber/service load from disk: KIMI_MODEL_DIR (+ KIMI_SPEECH_TOKENIZER_DIR) when
# set, else a real-shape checkpoint with random front-end weights and a dummy-loaded LLM.
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-cpu}"
run() { echo "+ $*" >&2; if [[ -n "${BENCH_LOCK:-}" ]]; then flock "$BENCH_LOCK" "$@"; else "$@"; fi; }
py=python

case "$mode" in
  cpu)
    run $py bench/frontend.py --batch-sizes 1,8,32 --seconds 30
    E="--sets 30:8,5:16,300:2 --max-tokens 16 --idle-requests 3"
    run $py bench/engine.py --system ours $E
    run $py bench/engine.py --system vllm_intree $E
    run $py bench/engine.py --system reference_loop $E
    run $py bench/transcriber.py --clip-s 30 --n-files 8 --concurrency 8 --max-tokens 16 --latency-requests 3
    run $py bench/transcriber.py --clip-s 5 --n-files 16 --concurrency 16 --max-tokens 16 --latency-requests 0
    run $py bench/transcriber.py --clip-s 300 --n-files 2 --concurrency 2 --max-tokens 16 --latency-requests 0
    run $py bench/service.py --system ours --clip-s 30 --n-files 8 --concurrency 8 --max-tokens 16 --latency-requests 3
    run $py bench/service.py --system naive_worker --clip-s 30 --n-files 8 --max-tokens 16 --latency-requests 0
    # Where the time goes: py-spy over the in-process run (its shares land in the records' profile_sample_shares).
    command -v py-spy >/dev/null && run $py bench/transcriber.py --clip-s 30 --n-files 8 --concurrency 8 --max-tokens 16 \
        --latency-requests 0 --profile .data/bench-profile-transcriber.raw --note "with --profile: py-spy sampled another 8 files before this measurement"
    # Real-shape path smoke (full width, 1 layer: 7B in fp32 does not fit 24 GiB).
    for sys in ours vllm_intree reference_loop; do
      run $py bench/engine.py --system $sys --real-shapes --layers 1 --sets 30:2 --max-tokens 4 --idle-requests 0
    done
    run $py bench/transcriber.py --real-shapes --layers 1 --clip-s 30 --n-files 2 --concurrency 2 --max-tokens 4 \
        --latency-requests 0
    ;;
  gpu)
    export VLLM_USE_FLASHINFER_SAMPLER="${VLLM_USE_FLASHINFER_SAMPLER:-0}"   # FlashInfer is not in the GPU kit
    E="--real-shapes --max-tokens 96 --idle-requests 5"
    run $py bench/frontend.py --real-shapes --batch-sizes 1,8,32 --seconds 30
    run $py bench/engine.py --system ours $E --sets 30:512,5:512,300:32
    run $py bench/engine.py --system vllm_intree $E --sets 30:512,5:512,300:32
    run $py bench/engine.py --system reference_loop $E --sets 30:16,5:16,300:2
    # transcriber/service load from disk: a real checkpoint when KIMI_MODEL_DIR is set, else a
    # real-shape checkpoint with random front-end weights and KIMI_LOAD_FORMAT=dummy.
    M=(--real-shapes)
    [[ -n "${KIMI_MODEL_DIR:-}" ]] && M=(--model "$KIMI_MODEL_DIR") && \
      [[ -n "${KIMI_SPEECH_TOKENIZER_DIR:-}" ]] && M+=(--speech-tokenizer "$KIMI_SPEECH_TOKENIZER_DIR")
    run $py bench/transcriber.py "${M[@]}" --clip-s 30 --n-files 256 --concurrency 128 --max-tokens 96 --latency-requests 5
    run $py bench/transcriber.py "${M[@]}" --clip-s 5 --n-files 256 --concurrency 128 --max-tokens 96 --latency-requests 0
    run $py bench/transcriber.py "${M[@]}" --clip-s 300 --n-files 16 --concurrency 16 --max-tokens 96 --latency-requests 0
    run $py bench/service.py "${M[@]}" --system ours --clip-s 30 --n-files 256 --concurrency 128 --max-tokens 96 \
        --latency-requests 5
    run $py bench/service.py "${M[@]}" --system naive_worker --clip-s 30 --n-files 32 --max-tokens 96 --latency-requests 0
    ;;
  *) echo "usage: bash bench/run_all.sh cpu|gpu" >&2; exit 2 ;;
esac
