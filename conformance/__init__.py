"""The push API conformance suite: ``octotrio conform URL`` (or ``python -m conformance URL``).

It judges any server only over the wire (HTTP, websocket, SockJS) against spec/requirements.toml and
spec/schemas/, and never imports octotrio's server code.
"""

from ._report import Report as Report
from ._report import Result as Result
from ._runner import Config as Config
from ._runner import run_conformance as run_conformance
from ._spec import Requirement as Requirement
from ._spec import load_requirements as load_requirements
from ._spec import message_errors as message_errors
