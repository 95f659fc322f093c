"""Our distribution name, and the warning when another one provides ``snowplow_tracker`` too.

Snowplow's ``snowplow-tracker`` and dbt's ``minimal-snowplow-tracker`` install the same import
package; next to ours, pip lets their files overwrite each other and user code imports a mix.
"""

from __future__ import annotations

import importlib.metadata
import warnings

from .exceptions import DistributionConflictWarning

DISTRIBUTION = "snowplow-event-tracker"
CONFLICTING = {
    "snowplow-tracker": "Snowplow's own tracker",
    "minimal-snowplow-tracker": "dbt's copy of Snowplow's tracker",
}


def installed_conflicts() -> list[str]:
    """The conflicting distributions installed, as ``"name version"``."""
    # Two lookups by name only: scanning every installed distribution would slow the import.
    found = []
    for name in CONFLICTING:
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def warn_on_conflicts() -> None:
    for found in installed_conflicts():
        name = found.split(" ", 1)[0]
        warnings.warn(
            f"{found} ({CONFLICTING[name]}) is installed in this environment next to "
            f"{DISTRIBUTION}, and both provide the import package snowplow_tracker: the code "
            f"imported may be a mix of the two. Keep one: pip uninstall {name}",
            DistributionConflictWarning,
            stacklevel=2,
        )
