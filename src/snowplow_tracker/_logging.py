"""The package logger, and the handler that prints it while the application logs nothing.

As in 0.4.0, what the emitters do is logged at INFO and above by default, and
``logger.setLevel(10)`` shows everything. 0.4.0 added a handler to the root logger at import,
which printed every library's messages in applications that had not asked for it; here the
package's own logger carries one handler, which writes to stderr only while no handler of the
application would receive the record (like :data:`logging.lastResort`, but for every level the
logger lets through). Once the application configures logging (``logging.basicConfig()``, a
handler on any ancestor logger, pytest's capture), only the application's handlers print.
"""

from __future__ import annotations

import logging
import sys

logger = logging.getLogger("snowplow_tracker")


class FallbackHandler(logging.Handler):
    """Writes records to the current ``sys.stderr`` when no other handler would get them."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        stream = sys.stderr  # looked up each time: tests and daemons replace it
        if stream is None or self._others_handle(record):
            return
        try:
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:
            self.handleError(record)

    def _others_handle(self, record: logging.LogRecord) -> bool:
        # The same walk Logger.callHandlers makes: every handler the record reaches.
        node: logging.Logger | None = logging.getLogger(record.name)
        while node is not None:
            if any(handler is not self for handler in node.handlers):
                return True
            if not node.propagate:
                return False
            node = node.parent
        return False


def configure() -> None:
    """Level INFO and the fallback handler on our own logger; nothing else is touched."""
    logger.setLevel(logging.INFO)
    if not any(isinstance(h, FallbackHandler) for h in logger.handlers):
        logger.addHandler(FallbackHandler())
