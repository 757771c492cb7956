"""Secrets: what a secret adds to the shared object lifecycle (``kluis.domain.lifecycle``)."""
