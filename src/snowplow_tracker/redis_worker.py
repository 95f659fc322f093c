"""RedisWorker: sends the events a RedisEmitter stored in Redis (needs the ``redis`` extra).

Importing this module never imports redis; constructing a worker does.
"""

from __future__ import annotations
