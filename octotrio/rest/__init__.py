"""The REST API under ``/api``: OctoPrint's paths, bodies, status codes and error bodies."""

from octotrio.http import Router

from . import _connection, _files, _job, _printer, _sdcard, _server_info
from ._access import AccessEndpoints as AccessEndpoints
from ._auth import AccessAuthenticator as AccessAuthenticator
from ._common import ApiError as ApiError
from ._common import Authenticator as Authenticator
from ._common import Call as Call
from ._common import Created as Created
from ._common import GlobalApiKey as GlobalApiKey
from ._common import Principal as Principal
from ._common import endpoint as endpoint
from ._common import request_api_key as request_api_key
from ._common import send_json as send_json
from ._login import LoginEndpoints as LoginEndpoints
from ._services import PrinterControl as PrinterControl
from ._services import RestServices as RestServices


def add_rest_routes(
    router: Router, authenticator: Authenticator, services: RestServices | None = None
) -> None:
    """Every REST endpoint under ``/api``, each checking permissions through ``authenticator``.

    The connection, printer, job and file endpoints need ``services``; without it only the
    server information endpoints are added."""
    _server_info.add_routes(router, authenticator)
    if services is not None:
        for module in (_connection, _printer, _job, _files, _sdcard):
            module.add_routes(router, authenticator, services)
