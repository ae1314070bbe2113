"""How each HTTP transport wraps a SockJS frame, sans-IO (sockjs-protocol.md §8).

A frame's SockJS text (``o``, ``a[...]``, ...) is pure ASCII (J1), so every function here returns
ASCII bytes. The transports' own rules:

* xhr, xhr_streaming: the frame and ``\\n`` (F6); xhr_streaming starts with 2048 ``h`` (§8).
* eventsource: ``data: <frame>\\r\\n\\r\\n`` with ``%``, ``\\r``, ``\\n`` and NUL percent-escaped,
  because sockjs-client runs ``decodeURI`` on each event (J5).
* htmlfile and jsonp: the frame as a JavaScript string literal, i.e. JSON-encoded a second time
  (J4). ``<`` is written ``\\u003c`` as well, so a message holding ``</script>`` cannot end the
  htmlfile's script element early; a JavaScript string reads the same either way.
"""

from __future__ import annotations

import re

from ._frames import encode_string

XHR_STREAMING_PRELUDE = b"h" * 2048 + b"\n"
"""§8: the first chunk of an xhr_streaming response; old Internet Explorers deliver nothing of a
streaming XHR before 2 KiB. The client reads it as a heartbeat."""

EVENTSOURCE_PRELUDE = b"\r\n"
"""§8: the first chunk of an eventsource response (old Opera needed it)."""

HTMLFILE_MIN_PRELUDE_BYTES = 1024
"""§8: Safari renders (and so runs the scripts of) nothing of an HTML document before 1 KiB."""

MAX_CALLBACK_LENGTH = 32
"""T1: sockjs-node's limit on a jsonp/htmlfile callback name; the client's are ~15 characters."""

_CALLBACK = re.compile(r"[a-zA-Z0-9_.-]+")
# J5: the characters decodeURI would alter or that cannot stand inside a data: line.
_EVENTSOURCE_ESCAPES = str.maketrans({"%": "%25", "\r": "%0D", "\n": "%0A", "\0": "%00"})

# Unlike sockjs-node's page, this one does not set `document.domain = document.domain`: the
# parent page never sets it, and current Chromium then treats the two frames as cross-origin
# whenever the page was opened by host name (the transport failed on http://octopi.local/).
_HTMLFILE_HEAD = """<!doctype html>
<html><head>
  <meta http-equiv="X-UA-Compatible" content="IE=edge" />
  <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
</head><body><h2>Don't panic!</h2>
  <script>
    var c = parent.{callback};
    c.start();
    function p(d) {{c.message(d);}};
    window.onload = function() {{c.stop();}};
  </script>"""


def valid_callback(name: str) -> bool:
    """T1: whether ``name`` may be used as a jsonp/htmlfile callback: 1 to 32 characters of
    ``[a-zA-Z0-9-_.]`` (client names look like ``_jp.a1b2c3``), so it is safe to paste into
    JavaScript and HTML unquoted."""
    return len(name) <= MAX_CALLBACK_LENGTH and _CALLBACK.fullmatch(name) is not None


def javascript_string(frame: str) -> str:
    """``frame`` as an ASCII JavaScript string literal without ``<`` (J4)."""
    return encode_string(frame).replace("<", "\\u003c")


def xhr_chunk(frame: str) -> bytes:
    return f"{frame}\n".encode("ascii")


def eventsource_chunk(frame: str) -> bytes:
    return f"data: {frame.translate(_EVENTSOURCE_ESCAPES)}\r\n\r\n".encode("ascii")


def htmlfile_prelude(callback: str) -> bytes:
    """The first chunk of an htmlfile response: the page that hands each frame to
    ``parent.<callback>``, padded past :data:`HTMLFILE_MIN_PRELUDE_BYTES`. ``callback`` must
    pass :func:`valid_callback`."""
    head = _HTMLFILE_HEAD.format(callback=callback)
    padding = " " * max(0, HTMLFILE_MIN_PRELUDE_BYTES - len(head) + 13)
    return f"{head}{padding}\r\n\r\n".encode("ascii")


def htmlfile_chunk(frame: str) -> bytes:
    return f"<script>\np({javascript_string(frame)});\n</script>\r\n".encode("ascii")


def jsonp_body(callback: str, frame: str) -> bytes:
    """The body of a jsonp response; ``/**/`` first against Rosetta-Flash style attacks (§8).
    ``callback`` must pass :func:`valid_callback`."""
    return f"/**/{callback}({javascript_string(frame)});\r\n".encode("ascii")
