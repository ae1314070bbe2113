"""Printer state: the model, the aggregator that owns it, and the hub sessions read from."""

from ._aggregator import TICK_INTERVAL as TICK_INTERVAL
from ._aggregator import Aggregator as Aggregator
from ._aggregator import AggregatorInput as AggregatorInput
from ._aggregator import StateFeed as StateFeed
from ._aggregator import run_aggregator as run_aggregator
from ._hub import Accumulated as Accumulated
from ._hub import History as History
from ._hub import SessionView as SessionView
from ._hub import StateHub as StateHub
from ._hub import Tick as Tick
from ._hub import encode_json as encode_json
from ._hub import encode_members as encode_members
from ._journal import Journal as Journal
from ._local import FileDeselected as FileDeselected
from ._local import FileRemoved as FileRemoved
from ._local import FileSelected as FileSelected
from ._local import FileUploaded as FileUploaded
from ._local import LocalEvent as LocalEvent
from ._local import OffsetsChanged as OffsetsChanged
from ._model import JSONObject as JSONObject
from ._model import PrinterModel as PrinterModel
from ._model import progress_payload as progress_payload
from ._model import state_flags as state_flags
