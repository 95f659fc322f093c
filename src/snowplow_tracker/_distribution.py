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


def installed_conflicts() -> list[tuple[str, str, str]]:
    """The conflicting distributions installed: ``(name, version, where its metadata is)``."""
    # Two lookups by name only: scanning every installed distribution would slow the import.
    found = []
    for name in CONFLICTING:
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        found.append((name, dist.version, str(dist.locate_file(""))))
    return found


def warn_on_conflicts() -> None:
    for name, version, where in installed_conflicts():
        # The location tells a stale *.egg-info left in a source tree from a real install.
        warnings.warn(
            f"{name} {version} ({CONFLICTING[name]}, found in {where}) is installed in this "
            f"environment next to {DISTRIBUTION}, and both provide the import package "
            f"snowplow_tracker: the code imported may be a mix of the two. Keep one: "
            f"pip uninstall {name}",
            DistributionConflictWarning,
            stacklevel=2,
        )
