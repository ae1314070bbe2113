"""User management under ``/api/access/users`` (ADMIN), as OctoPrint's (octoprint-push.md §12.5).

* ``GET /api/access/users``: ``{"users": [user, ...]}``.
* ``POST /api/access/users {"name","password","active","groups"?,"permissions"?}``: 200 with the
  list; 400 a key missing or invalid; 409 the name is taken. ``groups`` defaults to ``["users"]``.
* ``GET /api/access/users/<name>``: the user; 404.
* ``PUT /api/access/users/<name> {"groups"?,"permissions"?,"active"?}``: 200 with the list; 400; 404.
* ``DELETE /api/access/users/<name>``: 200 with the list; 404.

A change reaches the user's sockets at once: ``reauthRequired modified`` or ``removed``
(:meth:`AccessControl.replace_users`). When the server was started with a config file, the file
is rewritten (atomically) before the change takes effect; if that fails the answer is 500 and
nothing changed.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

import trio

from octotrio.auth import AccessConfig, AccessControl, ConfigError, UserRecord, hash_password, save_config
from octotrio.http import Router
from octotrio.state import JSONObject

from ._auth import AccessAuthenticator
from ._common import ApiError, Call, endpoint
from ._login import MAX_CREDENTIAL_CHARS

ADMIN = ("ADMIN",)
TRUE_VALUES = (True, "true", "yes", "y", "1", 1)
"""What OctoPrint reads as ``active: true`` (its ``valid_boolean_trues``); anything else is false."""


def user_entry(access: AccessControl, user: UserRecord) -> JSONObject:
    """One user as OctoPrint lists it: ``permissions`` are the user's own (what ``PUT`` sets),
    ``needs.role`` everything held through the groups too."""
    principal = access.principal_of(user)
    admin = principal.has("ADMIN")
    return {
        "name": user.name,
        "active": user.active,
        "user": True,
        "admin": admin,
        "apikey": user.api_key,
        "groups": sorted(user.groups),
        "permissions": sorted(user.permissions),
        "needs": {"group": sorted(user.groups), "role": [key.lower() for key in principal.permission_keys()]},
        "roles": ["user", "admin"] if admin else ["user"],
        "settings": {},
    }


def _strings(body: dict[str, object], key: str) -> tuple[str, ...] | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ApiError(400, f"{key} must be a list of strings")
    return tuple(value)


class AccessEndpoints:
    """The user routes of one server; ``config_path`` is the file to keep in step (None: memory only)."""

    def __init__(self, authenticator: AccessAuthenticator, config_path: Path | None) -> None:
        self.authenticator = authenticator
        self.access: AccessControl = authenticator.access
        self.config_path = config_path
        self._lock = trio.Lock()  # one change at a time: each is computed from the one before

    def add_routes(self, router: Router) -> None:
        auth = self.authenticator
        router.add(
            r"/api/access/users",
            {
                "GET": endpoint(auth, self.list_users, permissions=ADMIN),
                "POST": endpoint(auth, self.add_user, permissions=ADMIN),
            },
        )
        router.add(
            r"/api/access/users/(?P<name>[^/]+)",
            {
                "GET": endpoint(auth, self.get_user, permissions=ADMIN),
                "PUT": endpoint(auth, self.update_user, permissions=ADMIN),
                "DELETE": endpoint(auth, self.remove_user, permissions=ADMIN),
            },
        )

    def _users(self) -> JSONObject:
        return {"users": [user_entry(self.access, user) for user in self.access.config.users]}

    def _existing(self, call: Call) -> UserRecord:
        user = self.access.user(unquote(call.path_params["name"]))
        if user is None:
            raise ApiError(404, "Unknown user")
        return user

    async def _commit(self, config: AccessConfig) -> None:
        """Write ``config`` to the file (if any), then apply it. On cancellation the write still
        runs to its end in its thread and the change is applied right after it, with no checkpoint
        between, so the file and the running server never disagree."""
        if self.config_path is not None:
            try:
                await trio.to_thread.run_sync(save_config, self.config_path, config)
            except OSError as error:
                raise ApiError(500, f"Could not save the users: {error.strerror}") from None
        self.access.replace_users(config, trio.current_time())

    async def list_users(self, call: Call) -> object:
        return self._users()

    async def get_user(self, call: Call) -> object:
        return user_entry(self.access, self._existing(call))

    async def add_user(self, call: Call) -> object:
        body = call.json_body()
        for key in ("name", "password", "active"):
            if key not in body:
                raise ApiError(400, f"{key} is missing")
        name, password = body["name"], body["password"]
        if not isinstance(name, str) or not isinstance(password, str) or not password:
            raise ApiError(400, "name and password must be strings, the password not empty")
        if len(password) > MAX_CREDENTIAL_CHARS:
            raise ApiError(400, "password too long")
        groups, permissions = _strings(body, "groups"), _strings(body, "permissions")
        # scrypt spends ~50 ms of CPU on purpose: keep it off the event loop.
        password_hash = await trio.to_thread.run_sync(hash_password, password)
        async with self._lock:
            if self.access.user(name) is not None:
                raise ApiError(409, "User already exists")
            user = UserRecord(
                name,
                password_hash,
                groups=("users",) if groups is None else groups,
                permissions=permissions or (),
                active=body["active"] in TRUE_VALUES,
            )
            try:
                config = self.access.config.with_user(user)
            except ConfigError as error:
                raise ApiError(400, str(error)) from None
            await self._commit(config)
        return self._users()

    async def update_user(self, call: Call) -> object:
        body = call.json_body()
        groups, permissions = _strings(body, "groups"), _strings(body, "permissions")
        async with self._lock:
            user = self._existing(call)
            changed = UserRecord(
                user.name,
                user.password_hash,
                groups=user.groups if groups is None else groups,
                permissions=user.permissions if permissions is None else permissions,
                api_key=user.api_key,
                active=user.active if "active" not in body else body["active"] in TRUE_VALUES,
            )
            try:
                config = self.access.config.with_user(changed)
            except ConfigError as error:
                raise ApiError(400, str(error)) from None
            await self._commit(config)
        return self._users()

    async def remove_user(self, call: Call) -> object:
        async with self._lock:
            user = self._existing(call)
            await self._commit(self.access.config.without_user(user.name))
        return self._users()
