"""Configuration: the TOML file, EDGECLOUD_* overrides, explicit overrides, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgecloud.server.config import ConfigError, load_settings

pytestmark = pytest.mark.unit


def test_defaults_use_sqlite_under_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGECLOUD_HOME", str(tmp_path))
    settings = load_settings()
    assert settings.db_url == f"sqlite:///{tmp_path / 'edgecloud.db'}"
    assert settings.auth_file == tmp_path / "auth"
    assert settings.host_port == ("127.0.0.1", 2474)


def test_file_then_environment_then_arguments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "edgecloud.toml").write_text(
        'bind = "0.0.0.0:9000"\nlog_format = "json"\nlog_level = "DEBUG"\n'
    )
    monkeypatch.setenv("EDGECLOUD_HOME", str(tmp_path))
    monkeypatch.setenv("EDGECLOUD_LOG_LEVEL", "WARNING")
    settings = load_settings(bind="127.0.0.1:7000")
    assert settings.log_format == "json"  # file
    assert settings.log_level == "WARNING"  # environment beats file
    assert settings.bind == "127.0.0.1:7000"  # argument beats both


def test_explicit_config_file(tmp_path: Path) -> None:
    path = tmp_path / "other.toml"
    path.write_text('db = "postgresql+psycopg://u@127.0.0.1/x"\n')
    assert load_settings(path, home=tmp_path).db_url == "postgresql+psycopg://u@127.0.0.1/x"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("bind = ", "edgecloud.toml"),
        ('colour = "red"', "colour"),
        ('log_format = "xml"', "log_format"),
    ],
)
def test_bad_config_is_a_clear_error(tmp_path: Path, text: str, needle: str) -> None:
    (tmp_path / "edgecloud.toml").write_text(text + "\n")
    with pytest.raises(ConfigError) as err:
        load_settings(home=tmp_path)
    assert needle in str(err.value)


def test_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_settings(tmp_path / "missing.toml", home=tmp_path)
