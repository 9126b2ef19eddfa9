"""pytest plugin: makes the conformance suite's sample events importable and registered."""

from __future__ import annotations

from . import events as _events  # noqa: F401  (registers the sample event types)
