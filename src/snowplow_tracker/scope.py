"""A subject per request (or per task): who the events tracked in a block of code are about.

One :class:`~snowplow_tracker.Tracker` serves every request of a web server.
Its own subject holds what is true of the whole app (platform, app-wide
fields); what is true of one request (the user, the IP, the browser's ids)
goes in a scope::

    with tracker_scope(Subject().set_user_id("u-42").set_ip_address("203.0.113.9")):
        tracker.track_struct_event("shop", "checkout")  # carries uid=u-42, ip=203.0.113.9

Each event gets its tracker subject's fields, overridden by the scope's, overridden
by the event's own subject (precedence: tracker subject < scope subject < event
subject). A scope lives in a :mod:`contextvars` variable, so each thread and each
asyncio task sees only its own: nothing leaks between concurrent requests, which
``tracker.set_subject()`` per request (one tracker shared by every thread) does.

Scopes nest (an inner one overrides the outer one's fields, field by field). A
new thread does not inherit the scope of the thread that started it (run it in
``contextvars.copy_context().run`` to pass it on); an asyncio task does. To carry a
scope into a Celery task, pass :func:`current_fields` (a dict of strings) as a
task argument and open ``tracker_scope(fields=...)`` in the task.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar, Token
from typing import Any, Optional

from . import contracts
from .contracts import fail_type, fail_value
from .subject import DEFAULT_PLATFORM, Subject

__all__ = ["current_fields", "current_subject", "tracker_scope"]

#: The protocol names of every field a :class:`~snowplow_tracker.Subject` sets.
SUBJECT_FIELDS = frozenset(
    {"p", "uid", "res", "vp", "cd", "tz", "lang", "duid", "ip", "ua", "tnuid", "sid", "vid"}
)


class Scope:
    """One open :func:`tracker_scope`: its subject, over the scope it was opened in."""

    __slots__ = ("parent", "subject")

    def __init__(self, subject: Subject, parent: Optional[Scope]) -> None:
        self.subject = subject
        self.parent = parent

    def over(self, base: Mapping[str, Any]) -> dict[str, Any]:
        """``base`` (the tracker subject's pairs) with this scope's (and its parents') on top.

        A scope subject's platform left at the default (``pc``, what ``Subject()``
        starts with) does not replace the tracker's: only one set on purpose does.
        """
        merged = self.parent.over(base) if self.parent is not None else dict(base)
        pairs = self.subject.standard_nv_pairs
        if pairs.get("p") == DEFAULT_PLATFORM and "p" in merged:
            merged.update({name: value for name, value in pairs.items() if name != "p"})
        else:
            merged.update(pairs)
        return merged


_ACTIVE: ContextVar[Optional[Scope]] = ContextVar("snowplow_tracker_scope", default=None)

#: The open scope of this thread or task, or ``None``: what the Tracker asks once per event
#: (a bound C method, so no scope costs a single ``ContextVar.get``).
active_scope = _ACTIVE.get


class tracker_scope:  # lower case: it reads as a function, ``with tracker_scope(...)``
    """Attach ``subject``'s fields to every event tracked inside the ``with`` block.

    ``subject`` is a :class:`~snowplow_tracker.Subject`; ``fields`` instead gives
    its pairs by protocol name (``{"uid": "u-42", "ip": "203.0.113.9"}``), as
    :func:`current_fields` returns them. The block gets the scope's subject, which
    it may go on changing (``.set_user_id()`` once a user has logged in, say): later
    events in the scope carry the change. Works in threads, asyncio tasks and
    plain scripts alike. (A class, not a generator, as it runs once per request.)
    """

    __slots__ = ("_token", "subject")

    def __init__(
        self, subject: Subject | None = None, *, fields: Mapping[str, Any] | None = None
    ) -> None:
        if subject is not None and fields is not None:
            raise TypeError("tracker_scope() takes subject or fields, not both")
        if subject is None:
            subject = _subject_from_fields(fields or {})
        elif contracts._enabled and not isinstance(subject, Subject):
            fail_type("tracker_scope()", "subject", "a Subject or None", subject)
        self.subject = subject
        self._token: Token[Optional[Scope]] | None = None

    def __enter__(self) -> Subject:
        if self._token is not None:
            raise RuntimeError("this tracker_scope is already open: make a new one")
        self._token = _ACTIVE.set(Scope(self.subject, _ACTIVE.get()))
        return self.subject

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            _ACTIVE.reset(self._token)
            self._token = None


def current_subject() -> Subject | None:
    """The subject of the innermost open scope, or ``None`` outside any scope."""
    scope = _ACTIVE.get()
    return scope.subject if scope is not None else None


def current_fields() -> dict[str, str]:
    """Every open scope's fields, merged, as strings (JSON-safe: a Celery task argument).

    Empty outside any scope. ``tracker_scope(fields=current_fields())`` elsewhere
    (another thread, a task on a worker) tracks with the same fields.
    """
    scope = _ACTIVE.get()
    if scope is None:
        return {}
    merged = scope.over({})
    if merged.get("p") == DEFAULT_PLATFORM:
        del merged["p"]  # the default platform, not one set on purpose
    return {name: str(value) for name, value in merged.items()}


def _subject_from_fields(fields: Mapping[str, Any]) -> Subject:
    where = "tracker_scope()"
    if not isinstance(fields, Mapping):
        fail_type(where, "fields", "a mapping of subject fields", fields)
    for name, value in fields.items():
        if name not in SUBJECT_FIELDS:
            fail_value(where, f"fields[{name!r}]", f"one of {sorted(SUBJECT_FIELDS)}", name)
        if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
            fail_type(where, f"fields[{name!r}]", "a non-empty string or an int", value)
    subject = Subject()
    subject.standard_nv_pairs.update(fields)
    return subject
