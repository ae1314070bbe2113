"""octotrio: OctoPrint's push API on Trio, with a virtual Marlin printer and a conformance suite."""

__version__ = "0.1.0"
