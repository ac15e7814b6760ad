"""Helpers that the tests and the benchmarks share: data sets, service processes, servers.

A top-level package rather than ``forestops.testing``: it starts servers and
generates data for development only, so it stays out of the installed
package (and its images), yet ``benchmarks/`` can import it without reaching
into ``tests/``.  Both run from the repository root, which is on ``sys.path``
(pytest's rootdir, ``python -m benchmarks``).  ``tests.support`` keeps the
helpers only tests use and names these modules under its own path too.
"""
