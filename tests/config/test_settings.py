"""Settings: environment over TOML file over defaults; every bad value a one-line SettingsError."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from config import IceServer, SettingsError, ensure_admin_token, load_settings
from config.settings import ADMIN_TOKEN_FILE


@pytest.fixture(autouse=True)
def _no_ambient_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's own TINGSHEN_* variables must not leak into tests that read os.environ.
    for key in list(os.environ):
        if key.startswith("TINGSHEN_"):
            monkeypatch.delenv(key)


def write_toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tingshen.toml"
    path.write_text(text, encoding="utf-8")
    return path


def assert_one_line_naming(error: SettingsError, name: str) -> None:
    message = str(error)
    assert message.startswith(name), message
    assert "\n" not in message and "\r" not in message, message
    assert len(message) > len(name) + 2, message  # says what is wrong, not only where


# -- defaults and precedence ---------------------------------------------------------------


def test_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(environ={})
    assert settings.data_dir.resolve() == tmp_path / "var"
    assert settings.database == f"sqlite+aiosqlite:///{tmp_path / 'var' / 'tingshen.db'}"
    assert settings.default_language == "zh"
    assert settings.port == 8080
    assert settings.host == "127.0.0.1"
    assert settings.base_url == "http://127.0.0.1:8080"
    assert settings.ice_servers == []
    assert settings.udp_port_range is None
    assert settings.admin_token is None


def test_database_defaults_into_a_given_data_dir(tmp_path: Path) -> None:
    settings = load_settings(environ={"TINGSHEN_DATA_DIR": str(tmp_path / "court")})
    assert settings.database == f"sqlite+aiosqlite:///{tmp_path / 'court' / 'tingshen.db'}"


def test_file_overrides_defaults(tmp_path: Path) -> None:
    path = write_toml(tmp_path, 'port = 9000\ndefault_language = "en"\n')
    settings = load_settings(config_file=path, environ={})
    assert settings.port == 9000
    assert settings.default_language == "en"
    assert settings.host == "127.0.0.1"


def test_file_named_by_tingshen_config(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "port = 9001\n")
    settings = load_settings(environ={"TINGSHEN_CONFIG": str(path)})
    assert settings.port == 9001


def test_environment_overrides_file(tmp_path: Path) -> None:
    path = write_toml(tmp_path, 'port = 9000\ndefault_language = "en"\n')
    settings = load_settings(config_file=path, environ={"TINGSHEN_PORT": "9100"})
    assert settings.port == 9100
    assert settings.default_language == "en"  # not overridden, so the file's value stands


def test_explicit_overrides_beat_environment(tmp_path: Path) -> None:
    settings = load_settings(environ={"TINGSHEN_PORT": "9100"}, port=9200)
    assert settings.port == 9200


def test_empty_optional_variable_means_unset(tmp_path: Path) -> None:
    path = write_toml(tmp_path, 'redis_url = "redis://127.0.0.1:6379/0"\n')
    settings = load_settings(config_file=path, environ={"TINGSHEN_REDIS_URL": ""})
    assert settings.redis_url is None


def test_public_url_is_the_base_url_without_trailing_slash() -> None:
    settings = load_settings(environ={"TINGSHEN_PUBLIC_URL": "https://court.example/"})
    assert settings.base_url == "https://court.example"


# -- value parsing -------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["40000-40100", " 40000 - 40100 "])
def test_udp_port_range_from_environment(raw: str) -> None:
    settings = load_settings(environ={"TINGSHEN_UDP_PORT_RANGE": raw})
    assert settings.udp_port_range == (40000, 40100)


def test_udp_port_range_from_file(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "udp_port_range = [41000, 41010]\n")
    assert load_settings(config_file=path, environ={}).udp_port_range == (41000, 41010)


def test_ice_servers_as_json() -> None:
    raw = (
        '[{"urls": ["stun:stun.example.org:3478"]},'
        ' {"urls": ["turn:turn.example.org:3478?transport=udp"],'
        ' "username": "court", "credential": "s3cret"}]'
    )
    settings = load_settings(environ={"TINGSHEN_ICE_SERVERS": raw})
    assert settings.ice_servers == [
        IceServer(urls=["stun:stun.example.org:3478"]),
        IceServer(
            urls=["turn:turn.example.org:3478?transport=udp"],
            username="court",
            credential="s3cret",
        ),
    ]


def test_ice_servers_from_file(tmp_path: Path) -> None:
    path = write_toml(tmp_path, '[[ice_servers]]\nurls = ["stuns:stun.example.org"]\n')
    settings = load_settings(config_file=path, environ={})
    assert settings.ice_servers == [IceServer(urls=["stuns:stun.example.org"])]


def test_ice_host_addresses_comma_separated() -> None:
    settings = load_settings(environ={"TINGSHEN_ICE_HOST_ADDRESSES": "10.0.0.5, 192.0.2.7,"})
    assert settings.ice_host_addresses == ["10.0.0.5", "192.0.2.7"]


# -- invalid settings ----------------------------------------------------------------------

INVALID_ENVIRONMENT = [
    ("TINGSHEN_PORT", "abc"),
    ("TINGSHEN_PORT", "70000"),
    ("TINGSHEN_PORT", "-1"),
    ("TINGSHEN_HOST", ""),
    ("TINGSHEN_PUBLIC_URL", "court.example"),
    ("TINGSHEN_DATABASE_URL", "mysql://root@localhost/tingshen"),
    ("TINGSHEN_DATABASE_URL", "sqlite:///tingshen.db"),
    ("TINGSHEN_DATABASE_URL", "postgresql://localhost/tingshen"),
    ("TINGSHEN_REDIS_URL", "http://127.0.0.1:6379"),
    ("TINGSHEN_DEFAULT_LANGUAGE", "Chinese"),
    ("TINGSHEN_WHISPER_MODEL", "no-such-model"),
    ("TINGSHEN_ICE_SERVERS", '[{"urls": ["http://stun.example.org"]}]'),
    ("TINGSHEN_ICE_SERVERS", '[{"urls": []}]'),
    ("TINGSHEN_ICE_SERVERS", '[{"url": "stun:stun.example.org"}]'),
    ("TINGSHEN_ICE_SERVERS", '[{"urls": ["stun:x"]'),
    ("TINGSHEN_ICE_SERVERS", "stun:stun.example.org"),
    ("TINGSHEN_UDP_PORT_RANGE", "40000"),
    ("TINGSHEN_UDP_PORT_RANGE", "40000-"),
    ("TINGSHEN_UDP_PORT_RANGE", "a-b"),
    ("TINGSHEN_UDP_PORT_RANGE", "40100-40000"),
    ("TINGSHEN_UDP_PORT_RANGE", "80-90"),
    ("TINGSHEN_UDP_PORT_RANGE", "40000-70000"),
    ("TINGSHEN_ADMIN_TOKEN", "short"),
    ("TINGSHEN_LOG_LEVEL", "verbose"),
    ("TINGSHEN_HEARTBEAT_SECONDS", "0"),
    ("TINGSHEN_FOO", "1"),
]


@pytest.mark.parametrize(("name", "value"), INVALID_ENVIRONMENT)
def test_invalid_environment_variable_is_named(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(environ={name: value})
    assert_one_line_naming(caught.value, name)


def test_unknown_variable_is_reported_as_unknown() -> None:
    with pytest.raises(SettingsError, match=r"^TINGSHEN_FOO: unknown setting$"):
        load_settings(environ={"TINGSHEN_FOO": "1"})


def test_invalid_environment_value_is_named_even_when_the_file_is_fine(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "port = 9000\n")
    with pytest.raises(SettingsError) as caught:
        load_settings(config_file=path, environ={"TINGSHEN_PORT": "abc"})
    assert_one_line_naming(caught.value, "TINGSHEN_PORT")


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ('port = "abc"\n', "port"),
        ('database_url = "oracle://db"\n', "database_url"),
        ("udp_port_range = [50000, 40000]\n", "udp_port_range"),
        ('[[ice_servers]]\nurls = ["ftp://x"]\n', "ice_servers"),
        ("colour = 1\n", "colour"),
    ],
)
def test_invalid_file_value_is_named(tmp_path: Path, text: str, name: str) -> None:
    path = write_toml(tmp_path, text)
    with pytest.raises(SettingsError) as caught:
        load_settings(config_file=path, environ={})
    assert_one_line_naming(caught.value, name)
    assert "TINGSHEN_CONFIG" in str(caught.value)


def test_bad_toml_file(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "port = = 8080\n[unclosed\n")
    with pytest.raises(SettingsError) as caught:
        load_settings(config_file=path, environ={})
    assert_one_line_naming(caught.value, "TINGSHEN_CONFIG")
    assert "TOML" in str(caught.value)


def test_missing_toml_file(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(environ={"TINGSHEN_CONFIG": str(tmp_path / "absent.toml")})
    assert_one_line_naming(caught.value, "TINGSHEN_CONFIG")


def test_toml_file_not_in_utf8(tmp_path: Path) -> None:
    # A file saved in GBK by a Chinese-locale editor is a common mistake.
    path = tmp_path / "tingshen.toml"
    path.write_bytes('# 演示法院\nport = 9000\n'.encode("gbk"))
    with pytest.raises(SettingsError) as caught:
        load_settings(config_file=path, environ={})
    assert_one_line_naming(caught.value, "TINGSHEN_CONFIG")


def test_toml_path_that_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(environ={"TINGSHEN_CONFIG": str(tmp_path)})
    assert_one_line_naming(caught.value, "TINGSHEN_CONFIG")


# -- admin token ---------------------------------------------------------------------------


def test_admin_token_generated_once_and_kept_private(tmp_path: Path) -> None:
    settings = load_settings(environ={"TINGSHEN_DATA_DIR": str(tmp_path / "var")})
    token, generated = ensure_admin_token(settings)
    assert generated is True
    assert len(token) >= 32
    path = tmp_path / "var" / ADMIN_TOKEN_FILE
    assert path.read_text().strip() == token
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    again, generated_again = ensure_admin_token(settings)
    assert (again, generated_again) == (token, False)


def test_admin_token_differs_between_installations(tmp_path: Path) -> None:
    first, _ = ensure_admin_token(load_settings(environ={}, data_dir=tmp_path / "a"))
    second, _ = ensure_admin_token(load_settings(environ={}, data_dir=tmp_path / "b"))
    assert first != second


def test_admin_token_from_environment_wins(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    stored, _ = ensure_admin_token(load_settings(environ={}, data_dir=data_dir))
    env_token = "from-the-environment-0123456789"
    settings = load_settings(
        environ={"TINGSHEN_ADMIN_TOKEN": env_token, "TINGSHEN_DATA_DIR": str(data_dir)}
    )
    assert ensure_admin_token(settings) == (env_token, False)
    assert (data_dir / ADMIN_TOKEN_FILE).read_text().strip() == stored


def test_admin_token_from_environment_writes_no_file(tmp_path: Path) -> None:
    settings = load_settings(
        environ={"TINGSHEN_ADMIN_TOKEN": "from-the-environment-0123456789"},
        data_dir=tmp_path / "var",
    )
    ensure_admin_token(settings)
    assert not (tmp_path / "var" / ADMIN_TOKEN_FILE).exists()


# -- the command line ----------------------------------------------------------------------


def test_cli_refuses_invalid_setting_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from web.cli import main

    data_dir = tmp_path / "var"
    monkeypatch.setenv("TINGSHEN_DATA_DIR", str(data_dir))
    monkeypatch.setenv("TINGSHEN_PORT", "abc")
    assert main(["migrate"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert "TINGSHEN_PORT" in lines[0]
    assert not data_dir.exists()  # nothing was migrated with half-valid settings
