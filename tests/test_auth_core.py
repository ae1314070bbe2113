"""The sans-IO access-control core: config files, passwords, sessions and staleness (explicit times),
origins, subscriptions; and push sessions under a fake clock, with a fuzz of client messages."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from octotrio.auth import (
    AccessConfig,
    AccessControl,
    ConfigError,
    UserRecord,
    hash_password,
    load_config,
    same_origin,
    save_config,
    verify_password,
)
from octotrio.push import ServerInfo, parse_client_message, parse_subscription, serve_push_session
from octotrio.push._client_messages import Ignored, SetThrottle
from octotrio.state import PrinterModel, StateHub

from .memory_connection import MemoryConnection

HASH = hash_password("pw")
USER = UserRecord("alice", HASH, groups=("users",), api_key="A" * 32)
MINUTE = 60.0


def test_password_hash_round_trip_and_salting() -> None:
    assert verify_password("pw", HASH)
    assert not verify_password("pW", HASH)
    assert hash_password("pw") != HASH
    assert not verify_password("pw", "scrypt$99999999999999999999$8$1$00$00")  # refused, no crash


def test_config_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "octotrio.toml"
    assert load_config(path) == AccessConfig()
    config = AccessConfig(allow_cross_origin=True).with_user(USER)
    save_config(path, config)
    assert load_config(path) == config
    assert path.stat().st_mode & 0o077 == 0  # hashes and keys are private


@pytest.mark.parametrize(
    "text",
    [
        "[[users]]\nname = 'a:b'\npassword = 'x'",
        "[groups.guests]\npermissions = ['ADMIN']",
        "[groups.admins]\npermissions = ['NOPE']",
        "[access]\nallow_cross_origin = 'yes'",
        "not toml [",
    ],
)
def test_bad_config_is_refused_with_a_message(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError):
        load_config(path)


def test_sessions_go_stale_unless_a_socket_holds_them() -> None:
    access = AccessControl(AccessConfig(users=(USER,)))
    principal = access.principal_for_api_key("A" * 32)
    assert principal is not None
    token = access.create_session(principal, now=0)
    assert token is not None
    assert access.session_principal(token, now=14 * MINUTE) == principal  # used: ages from here
    reasons: list[str] = []
    assert access.attach_socket(token, reasons.append, now=20 * MINUTE) == principal
    assert access.session_principal(token, now=120 * MINUTE) == principal  # kept alive by the socket
    access.detach_socket(token, reasons.append, now=120 * MINUTE)
    assert access.session_principal(token, now=136 * MINUTE) is None  # 16 min unused: stale
    assert reasons == []


def test_logout_tells_every_socket_on_the_session() -> None:
    access = AccessControl(AccessConfig(users=(USER,)))
    principal = access.principal_for_api_key("A" * 32)
    assert principal is not None
    token = access.create_session(principal, now=0)
    assert token is not None
    reasons: list[str] = []
    access.attach_socket(token, reasons.append, now=1)
    assert access.logout(token) == principal
    assert reasons == ["logout"]
    assert access.session_principal(token, now=2) is None


def test_origin_rules() -> None:
    assert same_origin(None, "127.0.0.1:5000")
    assert same_origin("http://127.0.0.1:5000", "127.0.0.1:5000")
    assert same_origin("http://LOCALHOST", "localhost")
    assert not same_origin("http://evil.example", "127.0.0.1:5000")
    assert not same_origin("http://127.0.0.1:5001", "127.0.0.1:5000")
    assert not same_origin("null", "127.0.0.1:5000")
    assert not same_origin("http://[bad", "127.0.0.1:5000")


def test_subscription_semantics() -> None:
    state_true = parse_subscription({"state": True})
    assert state_true.logs is True
    assert state_true.messages is False  # state: true turns messages off (§4.3)
    assert state_true.events is False  # missing → nothing, once active
    listed = parse_subscription({"events": ["Home"], "plugins": True})
    assert listed.wants_event("Home")
    assert not listed.wants_event("ZChange")
    assert not listed.state
    invalid_selections: list[dict[str, object]] = [
        {"state": "x"},
        {"events": 5},
        {"state": {"logs": "("}},
        {"state": {"logs": "x" * 300}},
    ]
    for invalid in invalid_selections:
        with pytest.raises(ValueError, match=r"must|invalid|longer"):
            parse_subscription(invalid)


def test_throttle_coercion() -> None:
    assert parse_client_message('{"throttle": "3"}') == SetThrottle(3)
    assert parse_client_message('{"throttle": 2.9}') == SetThrottle(2)
    assert parse_client_message('{"throttle": true}') == SetThrottle(1)
    assert parse_client_message('{"throttle": 1e300}') == SetThrottle(3600)
    assert parse_client_message('{"throttle": "' + "9" * 5000 + '"}') == Ignored("invalid throttle factor")
    assert isinstance(parse_client_message('{"throttle": null}'), Ignored)


OPEN_GUESTS = AccessConfig(users=(USER,))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
client_messages = st.one_of(
    st.text(max_size=50),
    st.builds(json.dumps, json_values),
    st.builds(
        lambda key, value: json.dumps({key: value}),
        st.sampled_from(["auth", "throttle", "subscribe"]),
        json_values,
    ),
)


@settings(deadline=None, max_examples=60)
@given(st.lists(client_messages, max_size=30))
def test_fuzzed_client_messages_leave_the_session_and_others_healthy(messages: list[str]) -> None:
    async def main() -> None:
        access = AccessControl(OPEN_GUESTS)
        hub = StateHub(PrinterModel(), wall_clock=trio.current_time)
        fuzzed, other = MemoryConnection(), MemoryConnection()
        principal = access.principal_for_api_key("A" * 32)
        assert principal is not None
        token = access.create_session(principal, trio.current_time())
        async with trio.open_nursery() as nursery:
            for connection in (fuzzed, other):
                nursery.start_soon(
                    partial(serve_push_session, connection, hub=hub, server=ServerInfo("t"), access=access)
                )
            await other.to_server.send(json.dumps({"auth": f"alice:{token}"}))
            for text in messages:
                await fuzzed.to_server.send(text)
            await fuzzed.to_server.send(json.dumps({"subscribe": {"state": True, "events": True}}))
            await fuzzed.to_server.send(json.dumps({"auth": f"alice:{token}"}))
            await trio.sleep(1)
            hub.publish_event("Home", None)
            await trio.sleep(1)
            assert fuzzed.closed_with is None
            for connection in (fuzzed, other):
                assert connection.of_type("history")
                assert {"type": "Home", "payload": None} in [
                    r.message["event"] for r in connection.of_type("event")
                ]
            nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


async def test_stale_session_under_a_fake_clock(autojump_clock: trio.testing.MockClock) -> None:
    access = AccessControl(OPEN_GUESTS)
    hub = StateHub(PrinterModel(), wall_clock=trio.current_time)
    principal = access.principal_for_api_key("A" * 32)
    assert principal is not None
    token = access.create_session(principal, trio.current_time())
    connection = MemoryConnection()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            lambda: serve_push_session(connection, hub=hub, server=ServerInfo("t"), access=access)
        )
        await connection.to_server.send(json.dumps({"auth": f"alice:{token}"}))
        await trio.sleep(30 * MINUTE)  # connected all along: the session stays alive
        assert connection.of_type("history")
        connection.to_server.close()
    await trio.sleep(16 * MINUTE)  # nobody on it for 16 minutes
    late = MemoryConnection()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: serve_push_session(late, hub=hub, server=ServerInfo("t"), access=access))
        await late.to_server.send(json.dumps({"auth": f"alice:{token}"}))
        await trio.sleep(1)
        assert [r.message for r in late.of_type("reauthRequired")] == [
            {"reauthRequired": {"reason": "stale"}}
        ]
        nursery.cancel_scope.cancel()
