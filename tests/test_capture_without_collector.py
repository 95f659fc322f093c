"""``capture_events()`` without the collector extra: events are decoded but not validated, so
``valid`` is None (never True) and a warning says why, naming the extra."""

from __future__ import annotations

import json
import subprocess
import sys

SCRIPT = """
import json, sys, warnings
sys.modules["jsonschema"] = None  # the collector extra, hidden from the import system
warnings.simplefilter("always")
from snowplow_tracker import Tracker, Emitter
from snowplow_tracker.testing import CapturingEmitter, capture_events
tracker = Tracker(Emitter("127.0.0.1:1"))
with warnings.catch_warnings(record=True) as caught:
    with capture_events() as events:
        tracker.track_unstruct_event({"schema": "iglu:com.acme/nothing/jsonschema/1-0-0",
                                      "data": {}})
    emitter = CapturingEmitter()
print(json.dumps({
    "valid": [e.valid for e in events],
    "warnings": [(w.category.__name__, str(w.message), w.filename) for w in caught],
    "unavailable": emitter.validation_unavailable,
    "good_bad": [len(emitter.good()), len(emitter.bad())],
}))
"""


def test_capture_events_without_the_collector_extra_says_validation_is_unavailable() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=True
    )
    report = json.loads(done.stdout)
    assert report["valid"] == [None]
    (category, message, _), second = report["warnings"]
    assert category == "ValidationUnavailableWarning"
    assert "captured events are not validated" in message
    assert "pip install 'snowplow-event-tracker[collector]'" in message
    assert second == [category, message, "<string>"]  # CapturingEmitter(): the caller's line
    assert report["unavailable"] == message
    assert report["good_bad"] == [0, 0]
