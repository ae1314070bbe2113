"""SockJS: sans-IO framing and sessions, and the contract with the application above it."""

from ._connection import ConnectionClosed as ConnectionClosed
from ._connection import SockJSApp as SockJSApp
from ._connection import SockJSConnection as SockJSConnection
