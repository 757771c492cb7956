"""kluis benchmarks: throughput and latency of a real ``kluis serve`` against its ceilings.

``python -m benchmarks`` (or ``benchmarks.main(argv)``) starts kluis on a fresh data dir, drives it
over HTTPS keep-alive from a separate load-generator process, measures in the same run the raw
``cryptography`` ceiling and a bare endpoint of the same HTTP stack, runs moto's KMS as a peer,
and a scaling run with up to 1,000,000 stored keys. Results: ``benchmarks/results/``.
"""

from __future__ import annotations

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run the suite with command-line style ``argv`` (None: ``sys.argv[1:]``); returns the exit code."""
    from benchmarks.runner import main as run_main

    return run_main(argv)
