"""Benchmarks for octotrio, side by side with a real OctoPrint 1.11.8: ``python -m bench --help``.

Everything here talks to servers over the wire (HTTP, websockets) and to printers over ptys, so the
benchmarks do not depend on octotrio's internals; the one exception is the serial benchmark's
in-process link driver, used only while octotrio has no job API to stream a file over REST.
Nothing in this package runs as part of the test suite: tests never assert on wall-clock time.
"""
