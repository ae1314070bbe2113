"""The virtual printer: a Marlin-like firmware simulator speaking on a real pty.

``VirtualMarlin`` is the firmware as a sans-IO state machine; ``run_virtual_printer`` runs it on a
pty for hosts to open like a serial port. It is separate firmware and never imports the host side
(``octotrio.printer``), so a bug in shared line handling cannot cancel out.
"""

from ._cli import FAULTS_HELP as FAULTS_HELP
from ._cli import add_arguments as add_arguments
from ._cli import faults_argument as faults_argument
from ._cli import main_from_args as main_from_args
from ._cli import positive_int as positive_int
from ._cli import sd_file_argument as sd_file_argument
from ._cli import serve_virtual_printer_forever as serve_virtual_printer_forever
from ._firmware import RECOVERABLE_FAULTS as RECOVERABLE_FAULTS
from ._firmware import Fault as Fault
from ._firmware import FaultOptions as FaultOptions
from ._firmware import FirmwareOptions as FirmwareOptions
from ._firmware import VirtualMarlin as VirtualMarlin
from ._firmware import parse_faults as parse_faults
from ._pty import run_virtual_printer as run_virtual_printer
