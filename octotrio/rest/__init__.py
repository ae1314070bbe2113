"""The REST API under ``/api``: OctoPrint's paths, bodies, status codes and error bodies."""

from octotrio.http import Router

from . import _server_info
from ._auth import AccessAuthenticator as AccessAuthenticator
from ._common import ApiError as ApiError
from ._common import Authenticator as Authenticator
from ._common import Call as Call
from ._common import GlobalApiKey as GlobalApiKey
from ._common import Principal as Principal
from ._common import endpoint as endpoint
from ._common import request_api_key as request_api_key
from ._common import send_json as send_json
from ._login import LoginEndpoints as LoginEndpoints


def add_rest_routes(router: Router, authenticator: Authenticator) -> None:
    """Every REST endpoint under ``/api``, each checking permissions through ``authenticator``."""
    _server_info.add_routes(router, authenticator)
