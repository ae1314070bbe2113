"""The virtual printer: a Marlin-like firmware simulator speaking on a real pty.

``VirtualMarlin`` is the firmware as a sans-IO state machine; ``run_virtual_printer`` runs it on a
pty for hosts to open like a serial port. It is separate firmware and never imports the host side
(``octotrio.printer``), so a bug in shared line handling cannot cancel out.
"""

from ._cli import add_arguments as add_arguments
from ._cli import main_from_args as main_from_args
from ._cli import serve_virtual_printer_forever as serve_virtual_printer_forever
from ._firmware import FirmwareOptions as FirmwareOptions
from ._firmware import VirtualMarlin as VirtualMarlin
from ._pty import run_virtual_printer as run_virtual_printer
