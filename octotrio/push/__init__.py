"""The push API: messages, rate limiting and the per-client session."""

from ._client_messages import parse_client_message as parse_client_message
from ._messages import API_VERSION as API_VERSION
from ._messages import ServerInfo as ServerInfo
from ._messages import encode_current as encode_current
from ._messages import encode_message as encode_message
from ._ratelimit import BASE_INTERVAL as BASE_INTERVAL
from ._ratelimit import PushRateLimiter as PushRateLimiter
from ._session import CLOSE_EVENTS_LOST as CLOSE_EVENTS_LOST
from ._session import serve_push_session as serve_push_session
