"""Exceptions raised by snowplow_tracker.

Every error derives from :class:`SnowplowError` and, where a builtin meaning
applies, from that builtin too, so ``except ValueError`` keeps working::

    SnowplowError
    +-- ContractError                     bad input at the call site
    |   +-- InvalidValueError  (ValueError)
    |   +-- InvalidTypeError   (TypeError)
    +-- MissingExtraError      (ImportError)   an optional dependency is absent
    +-- EmitterClosedError     (RuntimeError)  input after close()
    +-- EventStoreLockedError  (RuntimeError)  a second store on a spool file in use

    DistributionConflictWarning (RuntimeWarning)  another distribution provides snowplow_tracker

Network failures are never raised into ``track_*``: they are reported through
the emitter callbacks, the log and the emitter's counters.
"""

from __future__ import annotations


class SnowplowError(Exception):
    """Base class of every error this package raises."""


class ContractError(SnowplowError):
    """An argument broke the contract of a public call."""

    #: The call that was given the argument, e.g. ``"track_page_view()"``.
    where: str = ""
    #: The message without the call's name.
    text: str = ""


class InvalidValueError(ContractError, ValueError):
    """An argument has the right type but an unacceptable value."""


class InvalidTypeError(ContractError, TypeError):
    """An argument has the wrong type."""


class MissingExtraError(SnowplowError, ImportError):
    """An optional dependency is not installed; the message names the extra."""

    def __init__(self, extra: str, module: str) -> None:
        super().__init__(
            f"{module!r} is not installed; it comes with the {extra!r} extra: "
            f"pip install 'snowplow-event-tracker[{extra}]'"
        )
        self.extra = extra
        self.module = module

    def __reduce__(self) -> tuple[type[MissingExtraError], tuple[str, str]]:
        return (type(self), (self.extra, self.module))


class EmitterClosedError(SnowplowError, RuntimeError):
    """An event was given to an emitter that has been closed."""


class DistributionConflictWarning(RuntimeWarning):
    """Another installed distribution (``snowplow-tracker``, ``minimal-snowplow-tracker``)
    provides the ``snowplow_tracker`` import package too."""


class EventStoreLockedError(SnowplowError, RuntimeError):
    """A ``SQLiteEventStore`` was built on a file another store (here or elsewhere) uses."""
