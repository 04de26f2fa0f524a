"""Record real calls from your code: ``from core.tracking import track``.

The public path users import; the implementation lives in ``core.recording.track``. Importing
it also registers budget detection on recording, so calls tracked from your code mark the
budget periods they touch as calls sent to the server do.
"""

from __future__ import annotations

import core.limits  # noqa: F401 - registers budget detection and enforced-budget counters on recording
from core.limits.enforce import SpendLimitExceeded
from core.recording.track import TrackedCall, TrackingError, Usage, read_usage, track, track_completion

__all__ = ["SpendLimitExceeded", "TrackedCall", "TrackingError", "Usage", "read_usage", "track", "track_completion"]
