"""HTTP on trio and h11: the server, its router, websocket upgrades and the SockJS endpoint."""

from ._body import RequestBody as RequestBody
from ._body import RequestBodyError as RequestBodyError
from ._exchange import ClientGone as ClientGone
from ._exchange import HttpExchange as HttpExchange
from ._request import Request as Request
from ._router import BodyRules as BodyRules
from ._router import Handler as Handler
from ._router import Router as Router
from ._server import WRITE_TIMEOUT as WRITE_TIMEOUT
from ._server import HttpServer as HttpServer
from ._server import serve_http as serve_http
from ._sessions import SessionRegistry as SessionRegistry
from ._sessions import SockJSSession as SockJSSession
from ._sockjs import SockJSEndpoint as SockJSEndpoint
from ._websocket import WebSocket as WebSocket
from ._websocket import WebSocketClosed as WebSocketClosed
