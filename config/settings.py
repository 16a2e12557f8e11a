"""Settings: environment variables `TINGSHEN_*` over an optional TOML file over defaults.

The TOML file is named by `TINGSHEN_CONFIG` (or passed to `load_settings`); its keys are the
field names below without the prefix, e.g. `port = 8443` or `[[ice_servers]]` tables.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

ENV_PREFIX = "TINGSHEN_"
ADMIN_TOKEN_FILE = "admin_token"
# Whisper models Tingshen can load without a download; anything else must be a local directory.
PACKAGED_WHISPER_MODELS = ("base", "tiny.en")


class SettingsError(Exception):
    """A setting is missing or invalid; the message is one line naming the setting."""


class IceServer(BaseModel):
    """A STUN or TURN server handed to clients and used by the server's own peers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    urls: list[str] = Field(min_length=1)
    username: str | None = None
    credential: str | None = None

    @field_validator("urls")
    @classmethod
    def _check_scheme(cls, urls: list[str]) -> list[str]:
        for url in urls:
            if not url.startswith(("stun:", "stuns:", "turn:", "turns:")):
                raise ValueError(f"{url!r} is not a stun:, stuns:, turn: or turns: URL")
        return urls


class Settings(BaseModel):
    """Everything a Tingshen process needs to know about its deployment."""

    model_config = ConfigDict(extra="forbid", validate_default=True)

    host: str = Field(default="127.0.0.1", min_length=1, description="Address to bind")
    port: int = Field(default=8080, ge=0, le=65535, description="TCP port to bind")
    public_url: str | None = Field(
        default=None, description="Base URL in join links; default http://host:port"
    )
    data_dir: Path = Field(default=Path("var"), description="Recordings, database, secrets")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy async URL; default SQLite in the data dir"
    )
    redis_url: str | None = Field(default=None, description="Redis for multi-process state")
    default_language: str = Field(default="zh", pattern=r"^[a-z]{2,3}$")
    whisper_model: str = Field(default="base", min_length=1)
    whisper_device: Literal["auto", "cpu", "cuda"] = Field(
        default="auto", description="Where Whisper runs: CUDA when present (auto), or forced"
    )
    whisper_decodes: int = Field(
        default=0, ge=0, le=64,
        description="Whisper decodes run at once (hearings' finals and captions); 0: one per "
                    "core this process may use, shared among `serve --workers N`",
    )
    whisper_threads: int = Field(
        default=0, ge=0, le=256,
        description="CPU threads each Whisper decode uses; 0: one",
    )
    ice_servers: list[IceServer] = Field(default_factory=list)
    ice_host_addresses: list[str] = Field(
        default_factory=list, description="Addresses offered as host ICE candidates"
    )
    udp_port_range: tuple[int, int] | None = Field(
        default=None, description="Inclusive UDP port range for media, e.g. 40000-40999"
    )
    adapt_downlinks: bool = Field(
        default=True,
        description="Fit each participant's received video to their link, audio first (off "
                    "only to measure what it changes)",
    )
    heartbeat_seconds: float = Field(
        default=15.0, ge=0.5, le=300, description="WebSocket ping interval; dead peers drop"
    )
    admin_token: SecretStr | None = Field(default=None, min_length=16)
    keep_admin_token: bool = Field(
        default=False,
        description="Accept the admin token as a bearer even once an administrator account "
                    "exists (by default it only sets the server up: integrations use API "
                    "tokens, `tingshen token add`)",
    )
    join_grace_hours: float = Field(
        default=6.0, ge=0, le=168,
        description="Join links stop working this long after a hearing's scheduled end",
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Reverse proxies (addresses or networks, e.g. 127.0.0.1 or 10.0.0.0/8) "
                    "whose X-Forwarded-For and X-Forwarded-Proto name the client and its "
                    "scheme; from anyone else those headers are ignored",
    )
    court_time_zone: str = Field(
        default="Asia/Shanghai",
        description="The court's time zone (IANA name): every page, document, export and CLI "
                    "line shows local time in it; the data keeps UTC",
    )
    staff_idle_minutes: float = Field(
        default=30.0, gt=0, le=24 * 60,
        description="A staff session ends after this long without a request",
    )
    staff_session_hours: float = Field(
        default=12.0, gt=0, le=24 * 30,
        description="A staff session ends this long after sign-in, whatever its use",
    )
    signing_key_path: Path | None = Field(
        default=None,
        description="Ed25519 key signing seals and checkpoints; created (0600) at first start; "
                    "default data_dir/audit-signing-key.pem. Keep it off the database's host "
                    "and backups",
    )
    checkpoint_file: Path | None = Field(
        default=None, description="Append-only file of signed checkpoints of the audit chain; "
                                  "default data_dir/audit-checkpoints.jsonl",
    )
    checkpoint_url: str | None = Field(
        default=None, description="Also POST each checkpoint (JSON) here; retried until taken",
    )
    checkpoint_interval_seconds: float = Field(
        default=60.0, ge=1.0, le=86400, description="How often the chain's head is checkpointed",
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "text", "json"] = Field(
        default="auto", description="Log lines as text or JSON; auto: JSON unless at a terminal"
    )

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        return url

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, proxies: list[str]) -> list[str]:
        for proxy in proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise ValueError(f"{proxy!r} is not an address or a network") from None
        return proxies

    @field_validator("court_time_zone")
    @classmethod
    def _check_time_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{name!r} is not a time zone (an IANA name like Asia/Shanghai)"
                             ) from None
        return name

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return url

    @field_validator("checkpoint_url")
    @classmethod
    def _check_checkpoint_url(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return url

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, url: str | None) -> str | None:
        if url is not None:
            if not url.startswith(("http://", "https://")):
                raise ValueError("must start with http:// or https://")
            url = url.rstrip("/")
        return url

    @field_validator("udp_port_range", mode="before")
    @classmethod
    def _parse_port_range(cls, value: Any) -> Any:
        if isinstance(value, str):
            low, sep, high = value.partition("-")
            if not sep or not low.strip().isdigit() or not high.strip().isdigit():
                raise ValueError("must look like 40000-40999")
            return (int(low), int(high))
        return value

    @field_validator("udp_port_range")
    @classmethod
    def _check_port_range(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None:
            low, high = value
            if not (1024 <= low <= high <= 65535):
                raise ValueError("must be two ports 1024-65535, the first not above the second")
        return value

    @field_validator("whisper_model")
    @classmethod
    def _check_whisper_model(cls, value: str) -> str:
        if value not in PACKAGED_WHISPER_MODELS and not Path(value).is_dir():
            raise ValueError(
                f"must be one of {', '.join(PACKAGED_WHISPER_MODELS)} or a local model directory"
            )
        return value

    @model_validator(mode="after")
    def _resolve_defaults(self) -> Settings:
        if self.database_url is None:
            self.database_url = f"sqlite+aiosqlite:///{self.data_dir.resolve() / 'tingshen.db'}"
        if self.signing_key_path is None:
            self.signing_key_path = self.data_dir / "audit-signing-key.pem"
        if self.checkpoint_file is None:
            self.checkpoint_file = self.data_dir / "audit-checkpoints.jsonl"
        return self

    @property
    def database(self) -> str:
        """The database URL, always set after validation."""
        assert self.database_url is not None
        return self.database_url

    @property
    def court_zone(self) -> ZoneInfo:
        """The court's time zone, as `court_time_zone` names it."""
        return ZoneInfo(self.court_time_zone)

    @property
    def signing_key(self) -> Path:
        """Where the audit's signing key is kept, always set after validation."""
        assert self.signing_key_path is not None
        return self.signing_key_path

    @property
    def checkpoints(self) -> Path:
        """The checkpoint file, always set after validation."""
        assert self.checkpoint_file is not None
        return self.checkpoint_file

    @property
    def base_url(self) -> str:
        """Base of the links handed to participants."""
        if self.public_url:
            return self.public_url
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as e:
        raise SettingsError(f"TINGSHEN_CONFIG: file {path} does not exist") from e
    except tomllib.TOMLDecodeError as e:
        raise SettingsError(f"TINGSHEN_CONFIG: {path} is not valid TOML: {e}") from e
    except UnicodeDecodeError as e:
        # tomllib decodes the bytes itself and lets this escape; TOML files must be UTF-8.
        raise SettingsError(f"TINGSHEN_CONFIG: {path} is not UTF-8 text: {e.reason}") from e
    except OSError as e:
        raise SettingsError(f"TINGSHEN_CONFIG: cannot read {path}: {e.strerror}") from e


# Fields given in the environment as lists: JSON, or a comma-separated list for plain strings.
_LIST_FIELDS = {"ice_servers", "ice_host_addresses"}


def _from_environment(env: dict[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, raw in env.items():
        if not key.startswith(ENV_PREFIX) or key == "TINGSHEN_CONFIG":
            continue
        name = key[len(ENV_PREFIX) :].lower()
        if name not in Settings.model_fields:
            raise SettingsError(f"{key}: unknown setting")
        value: Any = raw
        if name in _LIST_FIELDS:
            stripped = raw.strip()
            if stripped.startswith("["):
                try:
                    value = json.loads(stripped)
                except json.JSONDecodeError as e:
                    raise SettingsError(f"{key}: not valid JSON: {e.msg}") from e
            else:
                value = [part.strip() for part in stripped.split(",") if part.strip()]
        elif raw == "" and not Settings.model_fields[name].is_required():
            value = None
        values[name] = value
    return values


def load_settings(
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Build settings from overrides, then `TINGSHEN_*` variables, then the TOML file.

    Raises `SettingsError` with one line naming the first invalid setting.
    """
    env = dict(os.environ if environ is None else environ)
    path = config_file or (Path(env["TINGSHEN_CONFIG"]) if env.get("TINGSHEN_CONFIG") else None)
    file_values = _read_toml(path) if path is not None else {}
    env_values = _from_environment(env)
    values = {**file_values, **env_values, **{k: v for k, v in overrides.items() if v is not None}}
    try:
        return Settings(**values)
    except ValidationError as e:
        raise SettingsError(_describe(e, set(env_values), set(file_values))) from e


def _describe(error: ValidationError, env_names: set[str], file_names: set[str]) -> str:
    first = error.errors()[0]
    loc = [str(part) for part in first["loc"]]
    field = loc[0] if loc else "settings"
    if field in file_names and field not in env_names:
        name = f"{field} (in TINGSHEN_CONFIG)"
    else:
        name = ENV_PREFIX + field.upper()
    detail = first["msg"]
    if first["type"] == "extra_forbidden":
        detail = "unknown setting"
    where = "." + ".".join(loc[1:]) if len(loc) > 1 else ""
    return f"{name}{where}: {detail}"


def ensure_admin_token(settings: Settings) -> tuple[str, bool]:
    """Return the admin token and whether it was generated just now.

    `TINGSHEN_ADMIN_TOKEN` wins; otherwise a token kept in the data dir (mode 0600) is read,
    or generated at first start.
    """
    if settings.admin_token is not None:
        return settings.admin_token.get_secret_value(), False
    path = settings.data_dir / ADMIN_TOKEN_FILE
    if path.exists():
        token = path.read_text().strip()
        if len(token) >= 16:
            return token, False
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    return token, True
