"""The conformance run: log in, open connections on every transport, drive the printer through REST,
probe authentication, subscriptions and bad input, run the Hypothesis properties, and judge.

Probes that do not depend on each other run concurrently, so a full run stays under 3 minutes.
"""

from __future__ import annotations

import itertools
import json
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
import trio

from . import _analysis as analysis
from ._report import Report, Results
from ._spec import schema_validator
from ._target import Login, RestTarget
from ._wire import TRANSPORTS, Connection, Received, Transport, open_connection

STATE_TIMEOUT = 5.0
"""Seconds a REST-driven state may take to show in `current` (PUSH-STATE-2)."""

HISTORY_TIMEOUT = 5.0
"""Seconds after `auth` within which `history` must arrive (PUSH-AUTH-3)."""

QUIET = 1.5
"""Seconds to watch for a reply that must not come (a malformed `auth`, a dropped connection)."""

HEARTBEAT_WINDOW = 28.0
"""Seconds an idle SockJS connection is watched for `h` (25 s heartbeat + tolerance, SOCKJS-HEARTBEAT-1)."""

HEARTBEAT_LIMIT = 27.0

LENIENT_THROTTLE_CURRENTS = 6
"""`current` messages measured after `{"throttle": "3"}` (PUSH-RATE-3): five intervals, so one
tick without news (a server sends `current` only on news) still leaves enough to measure."""

LENIENT_THROTTLE_LIMIT = 16.0
"""Seconds to wait for them: 1.6 s settling plus six 1.5 s intervals, with room for a loaded machine."""

RATE_WINDOW = 8.0
"""Seconds a throttle-3 connection is watched: 1.6 s to settle, then at least four pushes 1.5 s apart."""

_RATE_WINDOW_IDS = ("PUSH-RATE-2", "PUSH-RATE-5", "PUSH-ACC-2", "PUSH-ORDER-2")

INVALID_THROTTLES: tuple[object, ...] = (0, -1, "x", None, [], {})
"""Throttle values a server must ignore (PUSH-RATE-4); OctoPrint aborts on the last three."""


@dataclass
class Config:
    url: str
    api_key: str | None = None
    user: str | None = None
    password: str | None = None
    only: tuple[str, ...] = ()
    properties: bool = True
    property_examples: int = 4


@dataclass
class Run:
    """Shared state of one run."""

    config: Config
    client: httpx.AsyncClient
    rest: RestTarget
    results: Results
    nursery: trio.Nursery
    login: Login | None = None
    is_admin: bool = False
    profiles: list[analysis.Profile] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    offered: set[Transport] = field(default_factory=lambda: set(TRANSPORTS))
    commands_work: bool = False

    async def connect(
        self, transport: Transport, name: str, *, auth: Login | None = None, subscribe: Any = None
    ) -> analysis.Profile:
        """Open a connection (recorded for the final judgement), optionally subscribe, then `auth`."""
        connection = await open_connection(self.nursery, self.config.url, transport, name, self.client)
        profile = analysis.Profile(connection)
        self.profiles.append(profile)
        await connection.wait_type("connected", 5)
        if subscribe is not None:
            await connection.send({"subscribe": subscribe})
            profile.subscribed_events = bool(subscribe.get("events"))
            profile.subscribed_state = bool(subscribe.get("state"))
        if auth is not None:
            await connection.send({"auth": auth.auth})
            profile.authed = True
        return profile

    async def throttle(self, profile: analysis.Profile, factor: Any, effective: int) -> None:
        await profile.connection.send({"throttle": factor})
        profile.throttle.append((trio.current_time(), effective))

    async def markers(self, count: int, spacing: float = 0.2) -> list[str]:
        """Send ``count`` unique `M117` markers through REST (PUSH-ACC-1); empty if the target cannot."""
        if not self.commands_work:
            return []
        nonce = secrets.token_hex(3)
        sent = []
        for index in range(count):
            marker = f"conformance-{nonce}-{index:02d}"
            outcome = await self.rest.send_commands([f"M117 {marker}"])
            if outcome.ok:
                sent.append(marker)
            await trio.sleep(spacing)
        return sent


def _is_history(item: Received) -> bool:
    return item.type == "history"


def _state_flag(flag: str, value: bool = True) -> Callable[[Received], bool]:
    def predicate(item: Received) -> bool:
        payload = item.payload if isinstance(item.payload, dict) else {}
        state = payload.get("state") if item.type == "current" else None
        return isinstance(state, dict) and bool(state.get("flags", {}).get(flag)) == value

    return predicate


def _reached(flag: str, value: bool) -> Callable[[Received], bool]:
    """A `current` whose ``flag`` has ``value``; "not printing" also means "not paused" (after a cancel)."""
    has_flag, paused = _state_flag(flag, value), _state_flag("paused")
    return lambda item: has_flag(item) and (flag != "printing" or value or not paused(item))


async def _http_basics(run: Run) -> None:
    results, base = run.results, run.rest.url + "/sockjs"
    problems = []
    for path in ("", "/"):
        try:
            response = await run.client.get(base + path)
        except httpx.HTTPError as error:
            problems.append(f"GET /sockjs{path}: {error!r}")
            continue
        if response.status_code != 200 or response.text != "Welcome to SockJS!\n":
            problems.append(f"GET /sockjs{path} → {response.status_code} {response.text[:80]!r}")
    results.check("SOCKJS-GREETING-1", problems, "GET /sockjs and /sockjs/ → greeting")
    try:
        response = await run.client.get(base + "/info")
        info = response.json()
        errors = [e.message for e in schema_validator("sockjs-info").iter_errors(info)]
        if response.status_code != 200:
            errors.append(f"status {response.status_code}")
        if "set-cookie" in response.headers:
            errors.append("sets a cookie")
        results.check(
            "SOCKJS-INFO-1", [f"/sockjs/info {analysis.short(info)}: {e}" for e in errors], str(info)
        )
        if isinstance(info, dict) and info.get("websocket") is False:
            run.offered.discard("websocket")
    except (httpx.HTTPError, ValueError) as error:
        results.failed("SOCKJS-INFO-1", f"GET /sockjs/info: {error!r}")
    try:
        response = await run.client.post(f"{base}/000/{secrets.token_hex(4)}/xhr_send", content=b'["x"]')
        results.check(
            "SOCKJS-SEND-3",
            []
            if response.status_code == 404
            else [f"xhr_send to an unknown session → {response.status_code}"],
            "404",
        )
    except httpx.HTTPError as error:
        results.failed("SOCKJS-SEND-3", repr(error))


async def _login(run: Run) -> None:
    results = run.results
    if run.config.api_key:
        outcome, login = await run.rest.passive_login()
        if login is None:
            results.failed("PUSH-AUTH-1", f"{outcome.description}: {analysis.short(outcome.body)}")
        else:
            results.passed("PUSH-AUTH-1", f"{outcome.description}, name {login.name!r}")
            run.login = login
            run.is_admin = _has_admin(outcome.body)
    else:
        results.skipped("PUSH-AUTH-1", "no --api-key given")
    if run.config.user and run.config.password:
        # With an API key the password login gets a client of its own (see RestTarget.password_login).
        async with httpx.AsyncClient(timeout=10) as own_client:
            rest = RestTarget(own_client, run.rest.url, None) if run.config.api_key else run.rest
            outcome, login = await rest.password_login(run.config.user, run.config.password)
        if login is None:
            results.failed("PUSH-AUTH-9", f"{outcome.description}: {analysis.short(outcome.body)}")
        else:
            results.passed("PUSH-AUTH-9", outcome.description)
            if run.login is None:
                run.login, run.is_admin = login, _has_admin(outcome.body)
    else:
        results.skipped("PUSH-AUTH-9", "no --user/--password given")
    if run.login is None:
        run.notes.append("no login: checks that need an authenticated socket were not reached")


def _has_admin(body: Any) -> bool:
    if not isinstance(body, dict):
        return False
    return (
        bool(body.get("admin"))
        or "ADMIN" in (body.get("permissions") or [])
        or "admins" in (body.get("groups") or [])
    )


async def _scenario(run: Run) -> None:
    """The main scenario: connections on every transport, the printer driven through its states."""
    results, login, rest = run.results, run.login, run.rest
    assert login is not None
    unauthed = await run.connect("raw", "unauthenticated-raw")
    primary = await run.connect("raw", "primary-raw", auth=login)
    others = []
    for transport in ("websocket", "xhr_streaming", "xhr"):
        if transport in run.offered:
            profile = await run.connect(transport, f"primary-{transport}", auth=login)
            if profile.connection.ended and "answered 404" in profile.connection.ended:
                run.offered.discard(transport)
                results.skipped(
                    "SOCKJS-STREAM-1" if transport == "xhr_streaming" else "SOCKJS-POLL-1",
                    f"the server does not offer {transport} ({profile.connection.ended})",
                )
                continue
            others.append(profile)
    events_only = await run.connect(
        "raw", "subscribed-events", subscribe={"events": ["PrintStarted", "PrintPaused"]}, auth=login
    )
    state_only = await run.connect("raw", "subscribed-state", subscribe={"state": True}, auth=login)
    for profile in [primary, *others, state_only]:
        if await profile.connection.wait_for(_is_history, HISTORY_TIMEOUT) is None:
            results.failed(
                "PUSH-AUTH-3", f"{profile.connection.name}: no history {HISTORY_TIMEOUT} s after auth"
            )
        else:
            results.passed("PUSH-AUTH-3", f"{profile.connection.name}: history after auth")
    if others and others[0].connection.transport == "websocket":
        await run.throttle(others[0], 3, 3)
    # PERM-1/2: an admin connection sees another connection open and a second login.
    start = len(primary.connection.received)
    extra = await run.connect("raw", "late-joiner", auth=login)
    second_outcome, _ = await rest.passive_login()
    window_start = trio.current_time()

    connect = await rest.connect_printer()
    connected_at = trio.current_time()
    phases: list[tuple[str, float, bool]] = []
    if not connect.ok:
        run.notes.append(
            f"could not connect the printer: {connect.description} {analysis.short(connect.body)}"
        )
    operational = await primary.connection.wait_for(_state_flag("operational"), 15 if connect.ok else 2)
    phases.append(("operational", connected_at, operational is not None))
    command = await rest.send_commands(["M117 conformance-probe"])
    run.commands_work = command.ok and operational is not None
    if not command.ok:
        run.notes.append(f"printer commands not accepted: {command.description}")
    markers = await run.markers(6)
    job_steps = []
    # Taken before the call: the events may arrive before its response does.
    upload_at = trio.current_time()
    upload = await rest.upload_and_print() if operational is not None else None
    if upload is None or not upload.ok:
        reason = upload.description if upload else "printer not operational"
        run.notes.append(f"could not upload and print: {reason}")
    else:
        job_steps.append(("PrintStarted", "printing", upload_at))
        printing = await primary.connection.wait_for(_state_flag("printing"), 10)
        phases.append(("printing", job_steps[-1][2], printing is not None))
        await trio.sleep(1.5)
        for step, (command_name, action, event, flag, value) in enumerate(
            [
                ("pause", "pause", "PrintPaused", "paused", True),
                ("pause", "resume", "PrintResumed", "printing", True),
                ("cancel", None, "PrintCancelled", "printing", False),
            ]
        ):
            at = trio.current_time()
            outcome = await rest.job(command_name, action)
            if not outcome.ok:
                run.notes.append(
                    f"job step {step} failed: {outcome.description} {analysis.short(outcome.body)}"
                )
                break
            job_steps.append((event, flag, at))
            reached = await primary.connection.wait_for(
                _reached(flag, value),
                STATE_TIMEOUT + (10 if event == "PrintPaused" else 0),
                start=len(primary.connection.received) - 1,
            )
            phases.append((f"{action or command_name}: {flag}={value}", at, reached is not None))
            await trio.sleep(1.2)
    await trio.sleep(1.0)
    if others and others[0].connection.transport == "websocket" and run.results.wanted(*_RATE_WINDOW_IDS):
        # Enough throttle-3 pushes for a median (PUSH-RATE-2, PUSH-RATE-5) when the scenario was short.
        await trio.sleep(max(0.0, others[0].throttle[-1][0] + RATE_WINDOW - trio.current_time()))
    window_end = trio.current_time()

    # PUSH-STATE-2
    if phases:
        failed = [f"{name}: not shown in current within the timeout" for name, _, ok in phases if not ok]
        if connect.ok or operational is not None:
            results.check("PUSH-STATE-2", failed, ", ".join(name for name, _, _ in phases))
    else:
        results.skipped("PUSH-STATE-2", "the printer could not be driven")
    # PUSH-EVENT-1
    events = [(item.at, item.payload.get("type")) for item in primary.connection.of_type("event")]
    expected = []
    if (connect.ok and connect.status != 204) or connect.description.startswith("POST"):
        expected.append(("Connected", connected_at))
    if run.commands_work and upload is not None and upload.ok:
        expected.append(("FileAdded", job_steps[0][2] - 5))
        expected += [(event, at) for event, _, at in job_steps]
    if not expected:
        results.skipped("PUSH-EVENT-1", "no REST action could be driven: " + "; ".join(run.notes))
    else:
        missing = []
        cursor = 0.0
        for name, at in expected:
            found = next((t for t, kind in events if kind == name and t >= max(at, cursor)), None)
            if found is None:
                missing.append(
                    f"no {name} after its REST call (or out of order); events seen: "
                    + ", ".join(str(kind) for _, kind in events[-30:])
                )
            else:
                cursor = found
        results.check("PUSH-EVENT-1", missing, " → ".join(name for name, _ in expected))
    # PUSH-SUB-1 / PUSH-SUB-5
    allowed = {"PrintStarted", "PrintPaused"}
    wrong = [
        analysis.short(i.message)
        for i in events_only.connection.of_type("event")
        if i.payload.get("type") not in allowed
    ]
    states = [i.type for i in events_only.connection.received if i.type in ("current", "history")]
    got_allowed = [i for i in events_only.connection.of_type("event") if i.payload.get("type") in allowed]
    if wrong or states:
        results.check(
            "PUSH-SUB-1",
            [f"unsubscribed event delivered: {w}" for w in wrong[:5]]
            + ([f"{len(states)} current/history without state subscription"] if states else []),
        )
    elif got_allowed or len(job_steps) > 1:
        results.check(
            "PUSH-SUB-1",
            [] if got_allowed else ["PrintStarted/PrintPaused never delivered"],
            f"{len(got_allowed)} allowed events, nothing else",
        )
    else:
        results.skipped("PUSH-SUB-1", "no print could be started, so no subscribed event fired")
    state_events = state_only.connection.of_type("event")
    results.check(
        "PUSH-SUB-5",
        [
            f"event delivered with state-only subscription: {analysis.short(i.message)}"
            for i in state_events[:5]
        ],
        f"{len(state_only.connection.of_type('current'))} current, 0 events",
    )
    # PUSH-AUTH-2
    leaked = [i for i in unauthed.connection.received if i.type not in ("connected", "reauthRequired")]
    results.check(
        "PUSH-AUTH-2",
        [f"unauthenticated connection got {i.type}: {analysis.short(i.message, 160)}" for i in leaked[:3]],
        f"only connected during {window_end - unauthed.connection.opened_at:.0f} s",
    )
    # PERM-1 / PERM-2 (admin side)
    if run.is_admin:
        later = primary.connection.received[start:]
        opened = [i for i in later if i.type == "event" and i.payload.get("type") == "ClientOpened"]
        results.check(
            "PUSH-PERM-2",
            []
            if any("remoteAddress" in (i.payload.get("payload") or {}) for i in opened)
            else [f"admin connection got no ClientOpened with remoteAddress ({len(opened)} ClientOpened)"],
            "admin sees remoteAddress",
        )
        if second_outcome.ok:
            logged_in = [i for i in later if i.type == "event" and i.payload.get("type") == "UserLoggedIn"]
            results.check(
                "PUSH-PERM-1",
                [] if logged_in else ["admin connection got no UserLoggedIn"],
                "admin sees UserLoggedIn",
            )
    else:
        for requirement in ("PUSH-PERM-1", "PUSH-PERM-2"):
            results.skipped(requirement, "the login is not an ADMIN user")
    terminal = [
        i
        for i in primary.connection.of_type("current")
        if not ("logs" in i.payload and "messages" in i.payload)
    ]
    if run.is_admin:
        results.check(
            "PUSH-PERM-3",
            [f"admin current without logs/messages: {analysis.short(i.message, 200)}" for i in terminal[:2]],
            "admin currents carry logs and messages",
        )
    # Accumulation
    if markers:
        problems = []
        for profile in [primary, *others, extra]:
            counts = analysis.marker_counts(profile.connection, markers)
            problems += [
                f"{profile.connection.name}: marker {m} in {n} current log lines"
                for m, n in counts.items()
                if n != 1
            ]
        results.check(
            "PUSH-ACC-1",
            problems,
            f"{len(markers)} markers exactly once on {len(others) + 2} connections (throttles 1 and 3)",
        )
    else:
        results.skipped("PUSH-ACC-1", "no markers could be sent (POST /api/printer/command)")
    if others and others[0].connection.transport == "websocket":
        slow = others[0]
        for key in ("temps", "messages"):
            inner = [x for batch in analysis.accumulated(slow.connection, key)[2:-2] for x in batch]
            outer = [x for batch in analysis.accumulated(primary.connection, key) for x in batch]
            if not inner:
                continue
            results.check(
                "PUSH-ACC-2",
                []
                if analysis.is_contiguous_within(inner, outer)
                else [
                    f"{key}: the throttle-3 connection's {len(inner)} items are not one run of the "
                    f"throttle-1 connection's {len(outer)} (lost, duplicated or reordered)"
                ],
                f"{key}: {len(inner)} items identical at throttle 3 and 1",
            )
        # PUSH-RATE-2 / PUSH-RATE-5
        median_slow = analysis.median_interval(slow, slow.throttle[-1][0] + 1.6)
        median_fast = analysis.median_interval(primary, window_start)
        if median_slow is not None and median_fast is not None:
            results.check(
                "PUSH-RATE-2",
                []
                if median_slow >= 1.5 - analysis.RATE_TOLERANCE and median_fast < 1.0
                else [f"median interval {median_slow:.3f} s at throttle 3, {median_fast:.3f} s at 1"],
                f"median {median_slow:.3f} s at throttle 3 while {median_fast:.3f} s at 1",
            )
            if operational is not None:
                results.check(
                    "PUSH-RATE-5",
                    []
                    if median_fast <= 0.5 + analysis.RATE_SLACK and median_slow <= 1.5 + analysis.RATE_SLACK
                    else [f"median interval {median_fast:.3f} s at throttle 1, {median_slow:.3f} s at 3"],
                    f"median {median_fast:.3f} s / {median_slow:.3f} s",
                )
        sequences = [analysis.comparable_events(p.connection) for p in (primary, *others)]
        reference = sequences[0]
        problems = [
            f"{p.connection.name}: event sequence ({len(seq)}) differs from primary-raw ({len(reference)}); "
            f"first not in it: {next((e for e in seq[2:-2] if e not in reference), 'none, reordered')[:200]}"
            for p, seq in zip(others, sequences[1:], strict=True)
            if not analysis.is_contiguous_within(seq[2:-2], reference)
        ]
        results.check(
            "PUSH-ORDER-2",
            problems,
            f"{len(reference)} events in the same order on {len(sequences)} connections",
        )
    for profile in [unauthed, events_only, extra]:
        profile.connection.close()
    for profile in [primary, *others, state_only]:
        profile.connection.close()


async def _auth_probes(run: Run) -> None:
    results, login = run.results, run.login
    assert login is not None
    stale = await run.connect("raw", "auth-stale")
    await stale.connection.send({"auth": f"{login.name}:{secrets.token_hex(32)}"})
    reply = await stale.connection.wait_type("reauthRequired", 3)
    await trio.sleep(0.5)
    problems = []
    if reply is None or reply.payload != {"reason": "stale"}:
        problems.append(
            f"no reauthRequired stale (got {analysis.short(reply.message) if reply else 'nothing'})"
        )
    if not stale.connection.open:
        problems.append(f"connection ended: {stale.connection.ended}")
    results.check("PUSH-AUTH-4", problems, "reauthRequired stale, connection open")

    malformed = await run.connect("raw", "auth-malformed")
    for value in ("nocolon", "a:b:c"):
        await malformed.connection.send({"auth": value})
    await trio.sleep(QUIET)
    replies = [i for i in malformed.connection.received if i.type in ("reauthRequired", "history")]
    results.check(
        "PUSH-AUTH-5",
        [f"reply to a malformed auth: {analysis.short(i.message, 120)}" for i in replies]
        + ([f"connection ended: {malformed.connection.ended}"] if not malformed.connection.open else []),
        "ignored",
    )

    again = await run.connect("raw", "auth-twice", auth=login)
    if await again.connection.wait_for(_is_history, HISTORY_TIMEOUT):
        await again.connection.send({"auth": login.auth})
        await trio.sleep(QUIET)
        count = len(again.connection.of_type("history"))
        results.check(
            "PUSH-AUTH-6", [] if count == 1 else [f"{count} history after a second auth"], "one history"
        )

    async with httpx.AsyncClient(timeout=10) as own_client:
        own = RestTarget(own_client, run.rest.url, run.config.api_key)
        outcome, second = await own.passive_login()
        if second is None:
            results.skipped("PUSH-AUTH-7", f"a second login failed: {outcome.description}")
        else:
            leaving = await run.connect("raw", "auth-logout", auth=second)
            await leaving.connection.wait_for(_is_history, HISTORY_TIMEOUT)
            logout = await own.logout(second)
            if not logout.ok:
                results.skipped("PUSH-AUTH-7", f"logout failed: {logout.description}")
            else:
                reply = await leaving.connection.wait_type("reauthRequired", 3)
                problems = []
                if reply is None or reply.payload != {"reason": "logout"}:
                    problems.append(
                        f"no reauthRequired logout after POST /api/logout "
                        f"(got {analysis.short(reply.message) if reply else 'nothing'})"
                    )
                else:
                    await trio.sleep(QUIET)
                    late = [i for i in leaving.connection.of_type("current") if i.at > reply.at + 0.6]
                    if late:
                        problems.append(f"{len(late)} current after reauthRequired logout")
                results.check("PUSH-AUTH-7", problems, "reauthRequired logout, then no current")
        _, third = await own.passive_login()
        if third is not None:
            fresh = await run.connect("raw", "auth-reconnect", auth=third)
            ok = await fresh.connection.wait_for(_is_history, HISTORY_TIMEOUT) is not None
            results.check(
                "PUSH-AUTH-8",
                [] if ok else ["no history on a new connection with a new session"],
                "new connection, new session: history",
            )


async def _subscribe_probes(run: Run) -> None:
    results, login = run.results, run.login
    assert login is not None
    silent = await run.connect("raw", "subscribe-state-false", subscribe={"state": False}, auth=login)
    await trio.sleep(2.0)
    states = [i.type for i in silent.connection.received if i.type in ("current", "history")]
    results.check(
        "PUSH-SUB-2",
        [f"{len(states)} current/history with state false"] if states else [],
        "no current or history in 2 s",
    )

    invalid = await run.connect("raw", "subscribe-invalid", subscribe={"events": 5}, auth=login)
    invalid.subscribed_state = invalid.subscribed_events = True
    got = await invalid.connection.wait_for(_is_history, HISTORY_TIMEOUT)
    current = await invalid.connection.wait_type("current", 3) if got else None
    results.check(
        "PUSH-SUB-6",
        [] if got and current else ["an invalid subscribe on a fresh connection stopped history/current"],
        "history and current still sent",
    )

    for value in (5, None, "x"):
        profile = await run.connect("raw", f"subscribe-{json.dumps(value)}", auth=login)
        await profile.connection.wait_for(_is_history, HISTORY_TIMEOUT)
        mark = len(profile.connection.received)
        await profile.connection.send({"subscribe": value})
        alive = await profile.connection.wait_type("current", 3, start=mark)
        results.check(
            "PUSH-SUB-7",
            []
            if profile.connection.open and alive
            else [f"subscribe {json.dumps(value)}: {profile.connection.ended or 'no current afterwards'}"],
            "connection open, current continues",
        )

    filtered = await run.connect("raw", "subscribe-filter", auth=login)
    if await filtered.connection.wait_for(_is_history, HISTORY_TIMEOUT) is None:
        return
    mark = len(filtered.connection.received)
    await filtered.connection.send({"subscribe": {"state": {"logs": "conformance-", "messages": False}}})
    filtered.resubscribed = True
    new_history = await filtered.connection.wait_type("history", 3, start=mark)
    results.check(
        "PUSH-SUB-4",
        [] if new_history else ["no new history after changing the state selection"],
        "new history",
    )
    if new_history is None:
        return
    after = filtered.connection.received.index(new_history)
    markers = await run.markers(3)
    await trio.sleep(2.0)
    currents = [i for i in filtered.connection.received[after:] if i.type == "current"]
    problems = []
    for item in currents:
        for line in item.payload.get("logs") or []:
            if "conformance-" not in str(line):
                problems.append(f"log line not matching the filter: {line!r}")
        if item.payload.get("messages"):
            problems.append(f"messages with messages false: {analysis.short(item.payload['messages'], 200)}")
    if markers and not any(analysis.marker_counts(filtered.connection, markers, since=after).values()):
        problems.append("no marker line arrived through the filter")
    results.check("PUSH-SUB-3", problems[:5], f"{len(currents)} filtered current")

    if not run.commands_work:
        results.skipped("PUSH-ACC-4", "no markers could be sent (POST /api/printer/command)")
        return
    repeat = await run.connect("raw", "resubscribe", auth=login)
    await repeat.connection.wait_for(_is_history, HISTORY_TIMEOUT)
    await repeat.connection.send({"subscribe": {"state": False}})
    repeat.resubscribed = True
    await trio.sleep(0.3)
    markers = await run.markers(3)
    mark = len(repeat.connection.received)
    await repeat.connection.send({"subscribe": {"state": {"logs": True, "messages": True}}})
    history = await repeat.connection.wait_type("history", 3, start=mark)
    await trio.sleep(1.5)
    if history is None:
        results.skipped("PUSH-ACC-4", "no history after re-subscribing")
        return
    in_history = {
        m
        for m in markers
        if any(analysis.marker_pattern(m).match(str(line)) for line in history.payload.get("logs") or [])
    }
    counts = analysis.marker_counts(
        repeat.connection, markers, since=repeat.connection.received.index(history)
    )
    repeated = sorted(m for m in in_history if counts[m])
    results.check(
        "PUSH-ACC-4",
        [f"marker {m} in history and again in a later current" for m in repeated],
        f"{len(markers)} markers, none repeated",
    )


RESTRICTED_USERS = {"status-only": ["STATUS"], "terminal": ["STATUS", "MONITOR_TERMINAL"]}
"""Users without ADMIN created for PUSH-PERM-1/2/3: one that may only see state, one that may also see
the terminal (octoprint-push.md §5.1, §5.3, Q1)."""

RESTRICTED_WATCH = 3.0
"""Seconds the restricted connections are watched after the events they must not see in full: at
least four `current` at throttle 1."""

_PERM_IDS = ("PUSH-PERM-1", "PUSH-PERM-2", "PUSH-PERM-3")


async def _restricted_probes(run: Run) -> None:
    """The non-ADMIN side of PUSH-PERM-1/2/3: a STATUS-only user and a STATUS + MONITOR_TERMINAL user,
    created through POST /api/access/users and logged in with their passwords (CSRF as OctoPrint wants,
    each in its own HTTP client), watch another client open, authenticate and log in."""
    results = run.results
    logins: dict[str, Login] = {}
    async with (
        httpx.AsyncClient(timeout=10) as status_client,
        httpx.AsyncClient(timeout=10) as terminal_client,
    ):
        clients = {"status-only": status_client, "terminal": terminal_client}
        for label, permissions in RESTRICTED_USERS.items():
            created, (name, password) = await run.rest.create_user(permissions)
            if not created.ok:
                reason = (
                    f"the restricted-user side needs POST /api/access/users: {created.description} "
                    f"{analysis.short(created.body, 120)}"
                )
                run.notes.append(f"PUSH-PERM-1/2/3: {reason}; only the ADMIN side was checked")
                for requirement in _PERM_IDS:
                    results.skipped(requirement, reason)
                return
            outcome, login = await RestTarget(clients[label], run.rest.url, None).password_login(
                name, password
            )
            if login is None:
                results.failed(
                    "PUSH-AUTH-9",
                    f"password login of the created user {name}: {outcome.description} "
                    f"{analysis.short(outcome.body, 120)}",
                )
                for requirement in _PERM_IDS:
                    results.skipped(requirement, f"the created user {name} could not log in")
                return
            results.passed("PUSH-AUTH-9", f"password login of the created user {name} ({label})")
            logins[label] = login
    watchers = {
        label: await run.connect("raw", f"restricted-{label}", auth=login) for label, login in logins.items()
    }
    for profile in watchers.values():
        await profile.connection.wait_for(_is_history, HISTORY_TIMEOUT)
    marks = {label: len(profile.connection.received) for label, profile in watchers.items()}
    assert run.login is not None
    visitor = await run.connect("raw", "restricted-visitor", auth=run.login)
    await visitor.connection.wait_for(_is_history, HISTORY_TIMEOUT)
    async with httpx.AsyncClient(timeout=10) as own_client:
        visitor_login = await RestTarget(own_client, run.rest.url, run.config.api_key).passive_login()
    markers = await run.markers(2)
    await trio.sleep(RESTRICTED_WATCH)
    for label, profile in watchers.items():
        connection = profile.connection
        later = connection.received[marks[label] :]
        events = [(i.payload.get("type"), i.payload.get("payload")) for i in later if i.type == "event"]
        if visitor_login[1] is not None:
            leaked = [kind for kind, _ in events if kind in ("UserLoggedIn", "UserLoggedOut")]
            results.check(
                "PUSH-PERM-1",
                [f"{label} user (no ADMIN) got {kind}" for kind in leaked],
                f"{label} user: no UserLoggedIn after another login",
            )
        client_events = [
            (kind, payload) for kind, payload in events if kind in ("ClientOpened", "ClientAuthed")
        ]
        results.check(
            "PUSH-PERM-2",
            [
                f"{label} user (no ADMIN) got {kind} with payload {analysis.short(payload, 160)}"
                for kind, payload in client_events
                if payload != {}
            ],
            f"{label} user: {len(client_events)} ClientOpened/ClientAuthed, all with payload {{}}",
        )
        _judge_terminal(run, label, connection, markers)
    visitor.connection.close()
    for profile in watchers.values():
        profile.connection.close()


def _judge_terminal(run: Run, label: str, connection: Connection, markers: list[str]) -> None:
    """PUSH-PERM-3 for one restricted connection: terminal lines only with MONITOR_TERMINAL."""
    currents = connection.of_type("current")
    history = next(iter(connection.of_type("history")), None)
    if not currents or history is None:
        run.results.skipped("PUSH-PERM-3", f"the {label} connection got no history or current")
        return
    problems = []
    if label == "terminal":
        problems += [
            f"terminal user: current without logs/messages: {analysis.short(i.message, 160)}"
            for i in currents
            if not ("logs" in i.payload and "messages" in i.payload)
        ][:2]
        if markers and not any(analysis.marker_counts(connection, markers).values()):
            problems.append("terminal user: no marker line arrived in current logs")
    else:
        problems += [
            f"status-only user: current carries {key}: {analysis.short(i.payload[key], 160)}"
            for i in currents
            for key in ("logs", "messages")
            if key in i.payload
        ][:2]
        problems += [
            f"status-only user: history carries {len(history.payload.get(key) or [])} {key} lines"
            for key in ("logs", "messages")
            if history.payload.get(key)
        ]
    run.results.check("PUSH-PERM-3", problems, f"{label} user: {len(currents)} current checked")


async def _bad_input_probes(run: Run) -> None:
    results, login = run.results, run.login
    assert login is not None
    witness = await run.connect("raw", "witness", auth=login)
    await witness.connection.wait_for(_is_history, HISTORY_TIMEOUT)

    async def survives(name: str, transport: Transport, payloads: Iterable[tuple[str, bool]]) -> str | None:
        """Send each (text, raw) on a fresh authenticated connection; what went wrong, or None."""
        profile = await run.connect(transport, name, auth=login)
        await profile.connection.wait_for(_is_history, HISTORY_TIMEOUT)
        for text, raw in payloads:
            mark = len(profile.connection.received)
            await (profile.connection.send_raw(text) if raw else profile.connection.send_text(text))
            alive = await profile.connection.wait_type("current", 3, start=mark)
            if not profile.connection.open or alive is None:
                return f"after {text!r}: {profile.connection.ended or 'no current within 3 s'}"
        profile.connection.close()
        return None

    cases: list[tuple[str, Transport, list[tuple[str, bool]]]] = [
        ("PUSH-BAD-1", "raw", [("hello", False)]),
        ("PUSH-BAD-1", "websocket", [("{bad json", False)]),
        ("PUSH-BAD-2", "raw", [(json.dumps(v), False) for v in ("auth", ["auth"], 5, None)]),
        ("PUSH-BAD-3", "raw", [(json.dumps({"auth": v}), False) for v in (5, None, ["a:b"])]),
        ("PUSH-BAD-4", "raw", [("{}", False), ('{"foo": 1}', False)]),
        ("PUSH-RATE-4", "raw", [(json.dumps({"throttle": v}), False) for v in INVALID_THROTTLES]),
        ("SOCKJS-SEND-2", "websocket", [("[]", True), ("", True)]),
    ]
    cases = [case for case in cases if run.results.wanted(case[0])]
    if "websocket" not in run.offered:
        cases = [case for case in cases if case[1] != "websocket"]

    async def one(requirement: str, transport: Transport, payloads: list[tuple[str, bool]]) -> None:
        problem = await survives(f"{requirement}-{transport}", transport, payloads)
        results.check(requirement, [problem] if problem else [], f"{transport}: ignored, connection open")

    async with trio.open_nursery() as nursery:
        for case in cases:
            nursery.start_soon(one, *case)
        if run.results.wanted("PUSH-BAD-6"):
            nursery.start_soon(_broken_framing, run)
        if run.results.wanted("PUSH-RATE-3"):
            nursery.start_soon(_lenient_throttle, run)
    # PUSH-BAD-5: the witness kept receiving at its rate and a new connection still opens.
    times = [i.at for i in witness.connection.of_type("current")]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    problems = []
    if not witness.connection.open:
        problems.append(f"witness connection ended: {witness.connection.ended}")
    if gaps and max(gaps) > 3.0:
        problems.append(f"witness connection waited {max(gaps):.1f} s for a current")
    newcomer = await run.connect("raw", "after-bad-input")
    if not newcomer.connection.of_type("connected"):
        problems.append(f"a new connection got no connected ({newcomer.connection.ended})")
    results.check(
        "PUSH-BAD-5",
        problems,
        f"witness: {len(times)} current, largest gap "
        f"{max(gaps) if gaps else 0:.2f} s; new connections accepted",
    )
    witness.connection.close()
    newcomer.connection.close()


async def _broken_framing(run: Run) -> None:
    if "websocket" not in run.offered:
        run.results.skipped("PUSH-BAD-6", "the server does not offer the SockJS websocket")
        return
    profile = await run.connect("websocket", "broken-framing")
    await profile.connection.send_raw("hello")
    await trio.sleep(QUIET)
    ended = profile.connection.ended
    problems = (
        []
        if ended is None or ended.startswith("sockjs-close 3000")
        else [f"a frame that is not a JSON array ended the connection with {ended!r}"]
    )
    run.results.check("PUSH-BAD-6", problems, f"ended: {ended or 'no (ignored)'}")
    profile.connection.close()


async def _lenient_throttle(run: Run) -> None:
    assert run.login is not None
    profile = await run.connect("raw", "throttle-string", auth=run.login)
    await profile.connection.wait_for(_is_history, HISTORY_TIMEOUT)
    await run.throttle(profile, "3", 3)
    since = trio.current_time() + 1.6
    await _receive_currents(profile, since, LENIENT_THROTTLE_CURRENTS, LENIENT_THROTTLE_LIMIT)
    median = analysis.median_interval(profile, since)
    if median is None:
        run.results.skipped("PUSH-RATE-3", "too few current messages to measure")
    else:
        run.results.check(
            "PUSH-RATE-3",
            []
            if abs(median - 1.5) <= analysis.RATE_SLACK
            else [f'median interval {median:.3f} s after {{"throttle": "3"}} (expected 1.5 s)'],
            f"median {median:.3f} s",
        )
    profile.connection.close()


async def _receive_currents(profile: analysis.Profile, since: float, count: int, seconds: float) -> None:
    """Return once ``count`` `current` messages arrived from ``since`` on, after ``seconds``, or when
    the connection ends."""
    connection = profile.connection
    with trio.move_on_after(seconds):
        while connection.open and len([i for i in connection.of_type("current") if i.at >= since]) < count:
            await connection.wait_type("current", seconds, start=len(connection.received))


async def _heartbeat(run: Run, profile: analysis.Profile, opened: float) -> None:
    connection = profile.connection
    times = [opened] + [at for at, _ in connection.frames] + [trio.current_time()]
    watched = times[-1] - opened
    if watched < HEARTBEAT_WINDOW:
        run.results.skipped(
            "SOCKJS-HEARTBEAT-1", f"the run watched an idle connection for only {watched:.0f} s"
        )
        return
    gaps = [b - a for a, b in itertools.pairwise(times)]
    run.results.check(
        "SOCKJS-HEARTBEAT-1",
        [f"{max(gaps):.1f} s without a frame"] if max(gaps) > HEARTBEAT_LIMIT else [],
        f"largest gap {max(gaps):.1f} s over {watched:.0f} s",
    )


def _judge_connections(run: Run) -> None:
    results = run.results
    seen_transports = set()
    rate_checked = False
    for profile in run.profiles:
        connection = profile.connection
        for requirement, violations in analysis.message_violations(connection).items():
            results.check(requirement, violations)
        for requirement, violations in analysis.lifecycle_violations(profile).items():
            results.check(requirement, violations)
        violations, intervals = analysis.rate_violations(profile)
        if intervals:
            rate_checked = True
            results.check(
                "PUSH-RATE-1",
                violations,
                f"{connection.name}: {len(intervals)} intervals, shortest {min(intervals):.3f} s",
            )
        if connection.received:
            seen_transports.add(connection.transport)
            for requirement in ("PUSH-MSG-1", "PUSH-MSG-2", "PUSH-MSG-3", "PUSH-CONNECTED-1"):
                results.passed(requirement, f"{len(connection.received)} messages on {connection.name}")
        if profile.authed and profile.subscribed_state and connection.of_type("history"):
            results.passed("PUSH-HISTORY-1", connection.name)
            results.passed("PUSH-ORDER-1", connection.name)
            count = len(connection.of_type("history"))
            if not profile.resubscribed:
                results.check(
                    "PUSH-ACC-3",
                    [f"{connection.name}: {count} history"] if count != 1 else [],
                    f"{connection.name}: one history",
                )
        if len(connection.of_type("current")) >= 2:
            for requirement in ("PUSH-ORDER-3", "PUSH-CURRENT-1", "PUSH-STATE-1"):
                results.passed(requirement, connection.name)
        if connection.transport != "raw" and connection.frames:
            first = connection.frames[0][1]
            if (
                connection.transport == "xhr_streaming" and first == "o"
            ) or connection.transport != "xhr_streaming":
                results.check(
                    "SOCKJS-OPEN-1",
                    [] if first == "o" else [f"{connection.name}: first frame {first[:80]!r}"],
                    f"{connection.transport}: o first",
                )
            results.passed("SOCKJS-FRAME-1", connection.transport)
            results.passed("SOCKJS-FRAME-2", connection.transport)
            if profile.authed and connection.of_type("history"):
                results.passed("SOCKJS-SEND-1", f"auth over {connection.transport}")
            if connection.transport == "xhr":
                results.passed("SOCKJS-POLL-1", f"{len(connection.frames)} polls")
            if connection.transport == "xhr_streaming":
                results.passed("SOCKJS-STREAM-1", f"{len(connection.frames)} frames")
        if connection.transport == "raw" and connection.of_type("connected"):
            results.passed("SOCKJS-RAW-1", connection.name)
    if not rate_checked:
        results.skipped("PUSH-RATE-1", "no connection received two current messages")
    if "xhr" not in seen_transports:
        results.skipped("SOCKJS-POLL-1", "no xhr polling session received anything")
    if "xhr_streaming" not in seen_transports:
        results.skipped("SOCKJS-STREAM-1", "no xhr_streaming session received anything")


_PROBES: tuple[tuple[Callable[[Run], Awaitable[None]], tuple[str, ...]], ...] = (
    (_restricted_probes, _PERM_IDS),
    (_auth_probes, ("PUSH-AUTH-4", "PUSH-AUTH-5", "PUSH-AUTH-6", "PUSH-AUTH-7", "PUSH-AUTH-8")),
    (_subscribe_probes, ("PUSH-SUB-2", "PUSH-SUB-3", "PUSH-SUB-4", "PUSH-SUB-6", "PUSH-SUB-7", "PUSH-ACC-4")),
    (
        _bad_input_probes,
        (
            *("PUSH-BAD-1", "PUSH-BAD-2", "PUSH-BAD-3", "PUSH-BAD-4", "PUSH-BAD-5", "PUSH-BAD-6"),
            *("PUSH-RATE-3", "PUSH-RATE-4", "SOCKJS-SEND-2"),
        ),
    ),
)
"""Probes that run after the main scenario, concurrently, each only when one of its requirements is
selected (``--only``)."""

_PROPERTY_IDS = ("PUSH-RATE-1", "PUSH-ACC-1", "PUSH-BAD-5", "PUSH-MSG-2")


async def run_conformance(
    config: Config,
    *,
    properties: Callable[[Run], Awaitable[None]] | None = None,
) -> Report:
    """Run the suite against ``config.url`` and return the report (the caller prints or saves it)."""
    started = time.monotonic()
    results = Results(config.only)
    async with httpx.AsyncClient(timeout=40) as client, trio.open_nursery() as nursery:
        run = Run(config, client, RestTarget(client, config.url, config.api_key), results, nursery)
        await _http_basics(run)
        heartbeat = await run.connect("websocket", "idle-heartbeat")
        heartbeat_opened = heartbeat.connection.opened_at
        await _login(run)
        if run.login is not None:
            await _scenario(run)
            async with trio.open_nursery() as probes:
                for probe, requirement_ids in _PROBES:
                    if results.wanted(*requirement_ids):
                        probes.start_soon(probe, run)
            if properties is not None and config.properties and results.wanted(*_PROPERTY_IDS):
                await properties(run)
        else:
            for result in results.finish():
                if not result.checked and result.requirement.checkable:
                    results.skipped(result.requirement.id, "no login")
        remaining = HEARTBEAT_WINDOW - (trio.current_time() - heartbeat_opened)
        if 0 < remaining < 10:
            await trio.sleep(remaining + 0.2)
        await _heartbeat(run, heartbeat, heartbeat_opened)
        _judge_connections(run)
        for profile in run.profiles:
            profile.connection.close()
        nursery.cancel_scope.cancel()
    return Report(config.url, results.finish(), run.notes, time.monotonic() - started)
