"""Benchmarks: each module ``bench_*.py`` has ``main(argv)`` that prints its figures and the
command that reproduces them. ``make bench`` (``python -m benchmarks``) runs them all;
``python -m benchmarks NAME`` runs one (``NAME`` without the ``bench_`` prefix)."""
