"""The push API: messages, subscriptions, rate limiting and the per-client session."""

from ._client_messages import MAX_THROTTLE as MAX_THROTTLE
from ._client_messages import parse_client_message as parse_client_message
from ._messages import API_VERSION as API_VERSION
from ._messages import ServerInfo as ServerInfo
from ._messages import encode_current as encode_current
from ._messages import encode_message as encode_message
from ._messages import reauth_required as reauth_required
from ._messages import render_progress as render_progress
from ._messages import slicing_progress as slicing_progress
from ._origin import OriginCheckingRouter as OriginCheckingRouter
from ._ratelimit import BASE_INTERVAL as BASE_INTERVAL
from ._ratelimit import PushRateLimiter as PushRateLimiter
from ._session import BACKLOG_LIMIT as BACKLOG_LIMIT
from ._session import CLOSE_EVENTS_LOST as CLOSE_EVENTS_LOST
from ._session import serve_push_session as serve_push_session
from ._subscription import Subscription as Subscription
from ._subscription import parse_subscription as parse_subscription
