"""SockJS: sans-IO framing and sessions, and the contract with the application above it."""

from ._connection import ConnectionClosed as ConnectionClosed
from ._connection import SockJSApp as SockJSApp
from ._connection import SockJSConnection as SockJSConnection
from ._frames import HEARTBEAT_FRAME as HEARTBEAT_FRAME
from ._frames import MAX_CLIENT_FRAME_BYTES as MAX_CLIENT_FRAME_BYTES
from ._frames import MAX_CLIENT_FRAME_DEPTH as MAX_CLIENT_FRAME_DEPTH
from ._frames import OPEN_FRAME as OPEN_FRAME
from ._frames import BrokenFraming as BrokenFraming
from ._frames import decode_client_frame as decode_client_frame
from ._frames import encode_close as encode_close
from ._frames import encode_messages as encode_messages
from ._frames import encode_string as encode_string
from ._frames import escape_json as escape_json
