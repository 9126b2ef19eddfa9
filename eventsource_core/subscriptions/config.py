"""How one subscription starts, reads and checkpoints."""

from __future__ import annotations

from typing import Any, Literal

import attrs

from ..errors import ConfigurationError
from .strategies import CheckpointStrategy

__all__ = ["START_OPTIONS", "StartFrom", "SubscriptionConfig"]

START_OPTIONS = ("beginning", "end", "checkpoint")
StartFrom = Literal["beginning", "end", "checkpoint"] | int


def _check_start(_: Any, __: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ConfigurationError(
            f"start_from must be 'beginning', 'end', 'checkpoint' or a position (int), "
            f"not {value!r}"
        )
    if isinstance(value, str) and value not in START_OPTIONS:
        raise ConfigurationError(
            f"start_from={value!r} is not a start option; use 'beginning', 'end', "
            "'checkpoint' (resume, the default) or a global position such as 1000"
        )
    if isinstance(value, int) and value < 0:
        raise ConfigurationError(
            f"start_from={value} is negative; positions start at 0 (0 means the beginning)"
        )


def _positive(kind: type) -> Any:
    def check(_: Any, attribute: attrs.Attribute[Any], value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, kind | int) or value <= 0:  # type: ignore[operator]
            raise ConfigurationError(f"{attribute.name} must be a positive number, got {value!r}")

    return check


def _strategy_name(value: CheckpointStrategy | str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(
            f"checkpoint_strategy must be a CheckpointStrategy or a registered name, not {value!r}"
        )
    try:
        return CheckpointStrategy(value.lower())
    except ValueError:
        return value.lower()


@attrs.frozen(kw_only=True)
class SubscriptionConfig:
    """Settings for one subscription; invalid values raise :class:`ConfigurationError`.

    ``start_from=N`` behaves like a checkpoint at ``N``: the first event handled is ``N + 1``.
    A start before the saved checkpoint rewinds (resets) the checkpoint, since a checkpoint
    otherwise never moves backwards.
    """

    start_from: StartFrom = attrs.field(default="checkpoint", validator=_check_start)
    batch_size: int = attrs.field(default=100, validator=_positive(int))
    checkpoint_strategy: CheckpointStrategy | str = attrs.field(
        default=CheckpointStrategy.AFTER_EACH_EVENT, converter=_strategy_name
    )
    #: Seconds between saves with the PERIODIC strategy.
    checkpoint_interval: float = attrs.field(default=5.0, validator=_positive(float))
    #: Seconds between store polls when no wake-up arrives (other processes, late commits).
    poll_interval: float = attrs.field(default=0.5, validator=_positive(float))
    #: Seconds ``stop()`` waits for the current batch before cancelling the handler.
    stop_timeout: float = attrs.field(default=10.0, validator=_positive(float))
