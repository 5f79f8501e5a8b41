#!/usr/bin/env bash
# Fresh machine → running service: installs, then starts API + worker + Redis with
# embedded defaults (local storage; a tiny random checkpoint when KIMI_MODEL_DIR is unset).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec kimi-asr up "$@"
