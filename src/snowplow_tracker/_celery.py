"""CeleryEmitter: hands batches of events to a Celery task that sends them."""

from __future__ import annotations

from typing import Any

from ._extras import require
from .emitters import Emitter


class CeleryEmitter(Emitter):
    """Buffers like :class:`Emitter`; ``flush`` hands the batch to a Celery worker.

    The batch travels as JSON (a list of event dicts), and the local buffer is
    cleared when it is handed over. Callbacks cannot cross to the worker.
    """

    def __init__(
        self,
        endpoint: str,
        protocol: str = "http",
        port: int | None = None,
        method: str = "get",
        buffer_size: int | None = None,
        *,
        byte_limit: int | None = None,
        app: Any = None,
    ) -> None:
        require("celery", "celery")
        super().__init__(endpoint, protocol, port, method, buffer_size, byte_limit=byte_limit)
        self.app = app

    def flush(self) -> None:
        """Hand everything buffered to the Celery task and return."""
        batch = self._take()
        if batch:
            from ._celery_app import send_task

            send_task(self.app).delay(self.endpoint, self.method, batch, self.byte_limit)
