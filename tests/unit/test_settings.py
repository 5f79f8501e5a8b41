import pytest

from service.settings import SETTINGS_DOC, Settings, SettingsError, settings_table_markdown


def test_env_parsing_and_defaults():
    s = Settings.from_env({"KIMI_API_KEYS": "a, b", "KIMI_WEBHOOK_SCHEDULE_S": "0,1.5",
                           "KIMI_ALLOW_PRIVATE_URLS": "yes", "KIMI_MAX_UPLOAD_BYTES": "1000"})
    assert s.api_keys == ("a", "b")
    assert s.webhook_schedule_s == (0.0, 1.5)
    assert s.allow_private_urls is True
    assert s.max_upload_bytes == 1000
    assert s.storage_backend == "local"


def test_bad_values_are_named():
    with pytest.raises(SettingsError, match="KIMI_MAX_UPLOAD_BYTES"):
        Settings.from_env({"KIMI_MAX_UPLOAD_BYTES": "lots"})
    with pytest.raises(SettingsError, match="KIMI_S3_BUCKET"):
        Settings.from_env({"KIMI_STORAGE": "s3"})


def test_worker_refuses_visibility_timeout_not_above_time_limit():
    with pytest.raises(SettingsError, match="VISIBILITY_TIMEOUT"):
        Settings.from_env({"KIMI_TASK_TIME_LIMIT_S": "600", "KIMI_VISIBILITY_TIMEOUT_S": "600"}).validate_worker()
    with pytest.raises(SettingsError, match="webhook"):
        Settings.from_env({"KIMI_TASK_TIME_LIMIT_S": "10", "KIMI_VISIBILITY_TIMEOUT_S": "100",
                           "KIMI_WEBHOOK_SCHEDULE_S": "0,500"}).validate_worker()
    Settings.from_env({}).validate_worker()


def test_every_setting_documented():
    table = settings_table_markdown()
    for _name, var, _p, _d, doc in SETTINGS_DOC:
        assert f"`{var}`" in table and doc


def test_tenants_and_webhook_secrets():
    s = Settings.from_env({"KIMI_API_KEYS": "k1,k2", "KIMI_WEBHOOK_SECRETS": "k2=whsec_AAAA"})
    assert s.tenant_for_key("k1") == Settings.tenant_of("k1") != s.tenant_for_key("k2")
    assert s.tenant_for_key("nope") is None
    assert s.webhook_secret_for_key("k2") == "whsec_AAAA"
    assert s.webhook_secret_for_key("k1").startswith("whsec_")
    assert s.webhook_secret_for_tenant(s.tenant_of("k1")) == s.webhook_secret_for_key("k1")


def test_docs_list_every_setting():
    from pathlib import Path
    doc = (Path(__file__).resolve().parents[2] / "docs" / "service.md").read_text()
    for _name, var, _p, _d, _doc in SETTINGS_DOC:
        assert f"`{var}`" in doc, f"{var} missing from docs/service.md"


def test_docs_settings_table_is_the_generated_one():
    from pathlib import Path
    doc = (Path(__file__).resolve().parents[2] / "docs" / "service.md").read_text()
    assert settings_table_markdown().strip() in doc, \
        "regenerate the table in docs/service.md from service.settings.settings_table_markdown()"
