"""Typed settings for every Tingshen process, read from TINGSHEN_* variables and a TOML file."""

from config.settings import IceServer, Settings, SettingsError, ensure_admin_token, load_settings

__all__ = ["IceServer", "Settings", "SettingsError", "ensure_admin_token", "load_settings"]
