"""docker-compose.yml and the Dockerfile say what docs/service.md promises (Docker does not run in CI)."""
import re
from pathlib import Path

import yaml

from service.settings import SETTINGS_DOC

ROOT = Path(__file__).resolve().parents[2]


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_runs_the_whole_stack():
    svc = _compose()["services"]
    assert {"redis", "minio", "bucket-init", "api", "worker", "flower"} <= set(svc)
    assert "--appendonly" in svc["redis"]["command"] and "yes" in svc["redis"]["command"]
    assert svc["api"]["command"][0] == "gunicorn"
    assert svc["worker"]["command"] == ["python", "-m", "worker"]
    gpu = svc["worker"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["driver"] == "nvidia" and "gpu" in gpu["capabilities"]
    assert svc["api"]["depends_on"]["bucket-init"]["condition"] == "service_completed_successfully"


def test_compose_only_sets_documented_settings():
    known = {var for _n, var, _p, _d, _doc in SETTINGS_DOC}
    engine_doc = (ROOT / "docs" / "plugin.md").read_text()
    svc = _compose()["services"]
    env = {**svc["api"]["environment"], **svc["worker"]["environment"]}
    for var in env:
        if var.startswith("KIMI_"):
            assert var in known or f"`{var}`" in engine_doc, f"{var} is not a documented setting"


def test_dockerfile_installs_the_gpu_extra_and_registers_the_plugin():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r'pip install .*"\.\[gpu\]"', text)
    assert re.search(r"pip install --no-cache-dir --no-deps \.$", text, re.M)   # not editable: entry point
