"""Applies ``KLUIS_BENCH_ABLATE`` in every Python process started with this directory on its path
(the ablated server of ``python -m benchmarks --baseline-ablate``; see ``benchmarks/ablate.py``)."""

import os

if os.environ.get("KLUIS_BENCH_ABLATE"):
    from benchmarks.ablate import apply_from_env

    apply_from_env()
