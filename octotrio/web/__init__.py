"""The status page at ``/``: a small static page that watches the printer through SockJS.

The page (``static/index.html``, ``status.js``, ``status.css``) is a teaching example of a push
API client: it loads the real ``sockjs-client`` bundle, connects to ``/sockjs`` with the
transport chosen in its selector, and draws what the ``current`` and ``history`` messages say.

The bundle comes from the npm package declared in the repository's ``package.json`` and is
served straight out of ``node_modules`` (``npm ci`` installs it; ``make test`` does that): it is
never copied into the repository. Without it, ``/static/sockjs.min.js`` answers 503 saying so.
"""

from __future__ import annotations

from ._routes import SOCKJS_CLIENT_URL as SOCKJS_CLIENT_URL
from ._routes import add_routes as add_routes
from ._routes import default_node_modules as default_node_modules
