"""Users, groups and access settings in a TOML file: read with :mod:`tomllib`, written atomically.

The file looks like this (``octotrio user add`` writes it)::

    [access]
    allow_cross_origin = false         # websocket/SockJS connections from other origins (§1.3)
    session_stale_after_minutes = 15   # login sessions unused this long go stale (§2.3)

    [groups.readonly]                  # optional: a built-in group's permissions, replacing the defaults
    permissions = ["STATUS", "MONITOR_TERMINAL"]

    [[users]]
    name = "alice"
    password = "scrypt$16384$8$1$<salt>$<key>"
    groups = ["users"]
    permissions = []                   # extra permissions on top of the groups'
    apikey = "<32 hex>"                # optional
    active = true

Reference: octoprint-push.md §12.1 (groups admins, users, readonly, guests; no dangerous
permission for guests).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import tempfile
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ._passwords import is_password_hash
from ._permissions import DANGEROUS_PERMISSIONS, GROUP_KEYS, PERMISSION_KEYS, default_group_permissions

DEFAULT_STALE_AFTER_MINUTES = 15.0
"""OctoPrint's ``accessControl.sessionStaleAfter`` default (octoprint-push.md §2.3)."""

USER_NAME = re.compile(r"[A-Za-z0-9_.@+-]{1,64}")
"""Allowed user names. No ``:`` (the socket's ``auth`` splits ``user:session`` on it), nothing
that needs escaping anywhere, and ``_api`` stays reserved for the global API key."""

GLOBAL_KEY_USER = "_api"


class ConfigError(Exception):
    """The config file cannot be used; the message says which entry is wrong."""


@dataclass(frozen=True)
class UserRecord:
    """One user as stored in the file."""

    name: str
    password_hash: str
    groups: tuple[str, ...] = ("users",)
    permissions: tuple[str, ...] = ()
    api_key: str | None = None
    active: bool = True


@dataclass(frozen=True)
class AccessConfig:
    """Everything the access control needs from the file."""

    users: tuple[UserRecord, ...] = ()
    groups: Mapping[str, frozenset[str]] = field(default_factory=default_group_permissions)
    allow_cross_origin: bool = False
    session_stale_after_minutes: float = DEFAULT_STALE_AFTER_MINUTES

    def with_user(self, user: UserRecord) -> AccessConfig:
        """This config with ``user`` added, or replacing the user of the same name."""
        others = tuple(u for u in self.users if u.name != user.name)
        config = replace(self, users=(*others, user))
        _validate(config)
        return config

    def without_user(self, name: str) -> AccessConfig:
        """This config without the user called ``name`` (unchanged if there is none)."""
        return replace(self, users=tuple(u for u in self.users if u.name != name))


def new_api_key() -> str:
    """A fresh API key: 128 random bits as 32 hex characters (OctoPrint's format)."""
    return secrets.token_hex(16).upper()


def load_config(path: Path) -> AccessConfig:
    """Read ``path``; a missing file is an empty config (no users, default groups)."""
    try:
        with path.open("rb") as file:
            data = tomllib.load(file)
    except FileNotFoundError:
        return AccessConfig()
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    try:
        config = _from_toml(data)
    except (KeyError, TypeError, ValueError) as error:
        raise ConfigError(f"{path}: {error}") from None
    _validate(config)
    return config


def save_config(path: Path, config: AccessConfig) -> None:
    """Write ``config`` to ``path`` atomically: a private temp file in the same folder, fsynced,
    then renamed over the old one, so a crash leaves either the old or the new file."""
    _validate(config)
    text = _to_toml(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:  # mkstemp: mode 0600
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def _strings(value: object, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise TypeError(f"{what} must be a list of strings")
    return tuple(value)


def _from_toml(data: dict[str, Any]) -> AccessConfig:
    access = data.get("access", {})
    if not isinstance(access, dict):
        raise TypeError("[access] must be a table")
    allow_cross_origin = access.get("allow_cross_origin", False)
    stale = access.get("session_stale_after_minutes", DEFAULT_STALE_AFTER_MINUTES)
    if not isinstance(allow_cross_origin, bool):
        raise TypeError("access.allow_cross_origin must be true or false")
    if isinstance(stale, bool) or not isinstance(stale, int | float) or not 0 < stale <= 365 * 24 * 60:
        raise ValueError("access.session_stale_after_minutes must be a number of minutes up to a year")
    groups = default_group_permissions()
    configured_groups = data.get("groups", {})
    if not isinstance(configured_groups, dict):
        raise TypeError("[groups] must be a table")
    for key, table in configured_groups.items():
        if key not in groups:
            raise ValueError(f"unknown group {key!r} (groups are {', '.join(GROUP_KEYS)})")
        if not isinstance(table, dict):
            raise TypeError(f"[groups.{key}] must be a table")
        groups[key] = frozenset(_strings(table.get("permissions", []), f"groups.{key}.permissions"))
    users = []
    raw_users = data.get("users", [])
    if not isinstance(raw_users, list):
        raise TypeError("users must be an array of tables ([[users]])")
    for entry in raw_users:
        if not isinstance(entry, dict):
            raise TypeError("each [[users]] entry must be a table")
        name, password, api_key, active = (
            entry["name"],
            entry["password"],
            entry.get("apikey"),
            entry.get("active", True),
        )
        if not isinstance(name, str) or not isinstance(password, str):
            raise TypeError("users.name and users.password must be strings")
        if api_key is not None and not isinstance(api_key, str):
            raise TypeError(f"user {name!r}: apikey must be a string")
        if not isinstance(active, bool):
            raise TypeError(f"user {name!r}: active must be true or false")
        users.append(
            UserRecord(
                name=name,
                password_hash=password,
                groups=_strings(entry.get("groups", ["users"]), f"user {name!r}: groups"),
                permissions=_strings(entry.get("permissions", []), f"user {name!r}: permissions"),
                api_key=api_key,
                active=active,
            )
        )
    return AccessConfig(
        users=tuple(users),
        groups=groups,
        allow_cross_origin=allow_cross_origin,
        session_stale_after_minutes=float(stale),
    )


def _validate(config: AccessConfig) -> None:
    for key, permissions in config.groups.items():
        unknown = permissions - PERMISSION_KEYS
        if unknown:
            raise ConfigError(f"group {key!r}: unknown permissions {sorted(unknown)}")
    dangerous = set(config.groups.get("guests", frozenset())) & DANGEROUS_PERMISSIONS
    if dangerous:
        raise ConfigError(f"the guests group cannot hold dangerous permissions {sorted(dangerous)}")
    names: set[str] = set()
    keys: set[str] = set()
    for user in config.users:
        if not USER_NAME.fullmatch(user.name) or user.name == GLOBAL_KEY_USER:
            raise ConfigError(f"invalid user name {user.name!r}: use 1-64 of A-Z a-z 0-9 _ . @ + -")
        if user.name in names:
            raise ConfigError(f"user {user.name!r} is listed twice")
        names.add(user.name)
        if not is_password_hash(user.password_hash):
            raise ConfigError(f"user {user.name!r}: password is not a scrypt hash written by octotrio")
        if unknown_groups := set(user.groups) - set(GROUP_KEYS):
            raise ConfigError(f"user {user.name!r}: unknown groups {sorted(unknown_groups)}")
        if unknown_permissions := set(user.permissions) - PERMISSION_KEYS:
            raise ConfigError(f"user {user.name!r}: unknown permissions {sorted(unknown_permissions)}")
        if user.api_key is not None:
            if not re.fullmatch(r"[A-Za-z0-9_-]{16,128}", user.api_key):
                raise ConfigError(f"user {user.name!r}: apikey must be 16-128 of A-Z a-z 0-9 _ -")
            if user.api_key in keys:
                raise ConfigError(f"user {user.name!r}: apikey is used by another user")
            keys.add(user.api_key)


def _toml_string(value: str) -> str:
    # JSON string escapes are valid TOML basic-string escapes; TOML also forbids a raw DEL.
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007F")


def _toml_strings(values: tuple[str, ...] | frozenset[str]) -> str:
    return "[" + ", ".join(_toml_string(v) for v in sorted(values)) + "]"


def _to_toml(config: AccessConfig) -> str:
    lines = [
        "# octotrio access control: users, groups and API keys (written by `octotrio user add`).",
        "",
        "[access]",
        f"allow_cross_origin = {'true' if config.allow_cross_origin else 'false'}",
        f"session_stale_after_minutes = {config.session_stale_after_minutes!r}",
    ]
    for key in GROUP_KEYS:
        lines += ["", f"[groups.{key}]", f"permissions = {_toml_strings(config.groups[key])}"]
    for user in config.users:
        lines += [
            "",
            "[[users]]",
            f"name = {_toml_string(user.name)}",
            f"password = {_toml_string(user.password_hash)}",
            f"groups = {_toml_strings(tuple(user.groups))}",
            f"permissions = {_toml_strings(tuple(user.permissions))}",
        ]
        if user.api_key is not None:
            lines.append(f"apikey = {_toml_string(user.api_key)}")
        lines.append(f"active = {'true' if user.active else 'false'}")
    return "\n".join(lines) + "\n"
