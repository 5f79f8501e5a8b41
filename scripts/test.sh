#!/usr/bin/env bash
# The one test command (README, CI): installs what is missing, then runs every test,
# the real-vLLM-engine and end-to-end suites included. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-1}
exec python3 -m pytest -v -ra --durations=25 "$@"
