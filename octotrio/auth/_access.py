"""Who is who: API keys, passwords, login sessions and failed-login limits. Sans-IO.

Time is an argument (``now``, seconds on any monotonic clock: the server passes
``trio.current_time()``, so tests can use ``MockClock``). Nothing here blocks except
:meth:`AccessControl.check_password`, which spends ~50 ms of CPU in scrypt on purpose: call it in
a worker thread.

Reference: octoprint-push.md §2.3 (sessions, staleness, keep-alive), §2.4 (logout), §12.1-12.2.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from ._config import GLOBAL_KEY_USER, AccessConfig, UserRecord
from ._passwords import hash_password, verify_password
from ._permissions import effective_permissions

MAX_LOGIN_SESSIONS = 4096
"""Live login sessions kept at most. Every passive login makes a new one (as in OctoPrint, Q21),
so a client that logs in in a loop must not grow memory: past this, the least recently used
session without a connected socket is dropped (it reads as stale)."""

FAILED_LOGIN_LIMITS = ((60.0, 3), (600.0, 5), (3600.0, 10))
"""(window seconds, failures allowed): OctoPrint's failed-login rate limits 3/min, 5/10 min,
10/h (§12.2). Once any window is full, logins from that address are refused until it drains."""

MAX_TRACKED_ADDRESSES = 1024
"""Client addresses whose failed logins are remembered; the oldest is forgotten past this, so a
spray from many addresses cannot grow memory (it can only reset its own oldest counters)."""

SESSION_TOKEN_BYTES = 32
"""64 hex characters, as OctoPrint's session tokens (§2.3)."""

ReauthListener = Callable[[str], None]
"""Called with a ``reauthRequired`` reason (``logout``, ``modified``, ``removed``) for a session a
socket uses; the socket is no longer attached to the session when it is called."""


@dataclass(frozen=True)
class Principal:
    """Who makes a call or holds a socket: a user name and the permission keys they hold.

    ``anonymous`` is the guests group (no credentials); its ``name`` is empty.
    """

    name: str
    permissions: frozenset[str]
    groups: frozenset[str] = frozenset()
    anonymous: bool = False
    api_key: str | None = None

    def has(self, permission: str) -> bool:
        """ADMIN implies every permission (OctoPrint's admin needs)."""
        return "ADMIN" in self.permissions or permission in self.permissions

    def permission_keys(self) -> list[str]:
        """Every permission held, ADMIN expanded, sorted: what ``/api/currentuser`` lists."""
        return sorted(effective_permissions(self.permissions))


@dataclass
class LoginSession:
    """One login: who, when last used, and the sockets that must hear about its end."""

    token: str
    principal: Principal
    last_used: float
    listeners: list[ReauthListener] = field(default_factory=list)


class FailedLoginLimiter:
    """Counts failed logins per client address in sliding windows (:data:`FAILED_LOGIN_LIMITS`)."""

    def __init__(self, max_addresses: int = MAX_TRACKED_ADDRESSES) -> None:
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._max_addresses = max_addresses
        self._longest_window = max(window for window, _ in FAILED_LOGIN_LIMITS)
        self._max_kept = max(limit for _, limit in FAILED_LOGIN_LIMITS)

    def allowed(self, address: str, now: float) -> bool:
        """Whether ``address`` may try another login at ``now``."""
        failures = self._failures.get(address)
        if failures is None:
            return True
        while failures and failures[0] <= now - self._longest_window:
            failures.popleft()
        return all(
            sum(1 for t in failures if t > now - window) < limit for window, limit in FAILED_LOGIN_LIMITS
        )

    def record_failure(self, address: str, now: float) -> None:
        failures = self._failures.pop(address, None) or deque(maxlen=self._max_kept)
        failures.append(now)
        self._failures[address] = failures  # most recent last
        while len(self._failures) > self._max_addresses:
            self._failures.popitem(last=False)


def _key_digest(api_key: str) -> bytes:
    # Keys are looked up by digest: a dict lookup's timing then says nothing about the key.
    return hashlib.sha256(api_key.encode("utf-8", "surrogatepass")).digest()


class AccessControl:
    """Users, groups, API keys and login sessions of one server."""

    def __init__(self, config: AccessConfig, *, global_api_key: str | None = None) -> None:
        self.config = config
        self.stale_after = config.session_stale_after_minutes * 60
        self.failed_logins = FailedLoginLimiter()
        self._global_key: Principal | None = None
        if global_api_key:
            # OctoPrint's deprecated global key acts as user _api in groups admins and users.
            self._global_key = Principal(
                GLOBAL_KEY_USER, frozenset({"ADMIN"}), frozenset({"admins", "users"}), api_key=global_api_key
            )
        self._users: dict[str, UserRecord] = {}
        self._api_keys: dict[bytes, Principal] = {}
        self._index_users()
        self.guest = Principal("", config.groups["guests"], frozenset({"guests"}), anonymous=True)
        self._sessions: OrderedDict[str, LoginSession] = OrderedDict()
        # Checked against when the user is unknown, so both answers take the same time.
        self._dummy_hash = hash_password(secrets.token_hex(8))

    def _index_users(self) -> None:
        self._users = {user.name: user for user in self.config.users}
        self._api_keys = {}
        for user in self.config.users:
            if user.api_key is not None and user.active:
                self._api_keys[_key_digest(user.api_key)] = self.principal_of(user)
        if self._global_key is not None and self._global_key.api_key is not None:
            self._api_keys[_key_digest(self._global_key.api_key)] = self._global_key

    def user(self, name: str) -> UserRecord | None:
        return self._users.get(name)

    def replace_users(self, config: AccessConfig, now: float) -> None:
        """Switch to ``config``'s users (groups and settings are kept) and tell their sockets (§2.4).

        A user no longer listed: their sessions end and each socket on them hears ``removed``.
        A user whose groups, permissions, API key or active flag changed: each socket on their
        sessions hears ``modified`` and drops to the guests' permissions; the sessions themselves
        carry the new permissions, so ``auth`` with the same ``user:session`` works again (a
        deactivated user's sessions end instead). ``config`` must already be valid.
        """
        old = self._users
        self.config = replace(self.config, users=config.users)
        self._index_users()
        for token, session in list(self._sessions.items()):
            name = session.principal.name
            before, after = old.get(name), self._users.get(name)
            if before is None or before == after:
                continue
            listeners, session.listeners = list(session.listeners), []
            if after is None or not after.active:
                del self._sessions[token]
            else:
                session.principal, session.last_used = self.principal_of(after), now
            for listener in listeners:
                listener("removed" if after is None else "modified")

    def principal_of(self, user: UserRecord) -> Principal:
        granted: set[str] = set(user.permissions)
        for group in user.groups:
            granted |= self.config.groups[group]
        return Principal(user.name, frozenset(granted), frozenset(user.groups), api_key=user.api_key)

    def principal_for_api_key(self, api_key: str) -> Principal | None:
        principal = self._api_keys.get(_key_digest(api_key))
        if principal is None or principal.api_key is None:
            return None
        return principal if hmac.compare_digest(principal.api_key, api_key) else None

    def check_password(self, name: str, password: str) -> Principal | None:
        """The active user ``name`` if ``password`` is theirs. CPU-bound (scrypt): run in a thread."""
        user = self._users.get(name)
        if user is None:
            verify_password(password, self._dummy_hash)
            return None
        if not verify_password(password, user.password_hash) or not user.active:
            return None
        return self.principal_of(user)

    def create_session(self, principal: Principal, now: float) -> str | None:
        """A new session token for ``principal``; None when :data:`MAX_LOGIN_SESSIONS` are all in use."""
        if len(self._sessions) >= MAX_LOGIN_SESSIONS:
            unwatched = next((t for t, s in self._sessions.items() if not s.listeners), None)
            if unwatched is None:
                return None
            del self._sessions[unwatched]
        token = secrets.token_hex(SESSION_TOKEN_BYTES)
        self._sessions[token] = LoginSession(token, principal, now)
        return token

    def _live_session(self, token: str, now: float) -> LoginSession | None:
        session = self._sessions.get(token)
        if session is None:
            return None
        if not session.listeners and now - session.last_used > self.stale_after:
            del self._sessions[token]  # stale: nobody is listening, so nobody to tell
            return None
        session.last_used = now
        self._sessions.move_to_end(token)
        return session

    def session_principal(self, token: str, now: float) -> Principal | None:
        """Who holds session ``token``; None if it is unknown or stale. Using it keeps it alive."""
        session = self._live_session(token, now)
        return None if session is None else session.principal

    def logout(self, token: str) -> Principal | None:
        """End session ``token``; every socket on it hears ``logout``. Returns whose it was."""
        session = self._sessions.pop(token, None)
        if session is None:
            return None
        for listener in session.listeners:
            listener("logout")
        return session.principal

    def attach_socket(self, token: str, listener: ReauthListener, now: float) -> Principal | None:
        """Authenticate a socket with session ``token``: its principal, or None (unknown or stale).

        While at least one socket is attached the session never goes stale: that is the socket's
        keep-alive (OctoPrint touches every 60 s; attaching is the same without a timer).
        """
        session = self._live_session(token, now)
        if session is None:
            return None
        session.listeners.append(listener)
        return session.principal

    def detach_socket(self, token: str, listener: ReauthListener, now: float) -> None:
        """The socket left or re-authenticated: the session is used until ``now``, then ages."""
        session = self._sessions.get(token)
        if session is not None and listener in session.listeners:
            session.listeners.remove(listener)
            session.last_used = now
