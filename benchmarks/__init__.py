"""Benchmarks of fleetwatch against the real broker and stores (not part of the test suite).

Run ``python -m benchmarks.ingest_bench --help``; see ``benchmarks/README.md``.
"""
