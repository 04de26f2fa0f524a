"""Open the Overview's breakdown tabs and its counts expander in an AppTest run (AppTest cannot click them).

Both track their state (``on_change="rerun"``, keys ``overview_breakdown`` and ``overview_counts``): only the
open tab's table, and the counts once opened, are computed and drawn, as in the browser after a click.
"""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

BREAKDOWN_TABS = ("Providers", "Models", "Users", "Projects", "Tags")


def open_tab(at: AppTest, label: str) -> AppTest:
    """Select the breakdown tab ``label`` and rerun the page."""
    assert label in BREAKDOWN_TABS, label
    at.session_state["overview_breakdown"] = label
    return at.run()


def open_counts(at: AppTest) -> AppTest:
    """Open the Overview's expander of token counts, cache writes, reasoning and web searches, and rerun."""
    at.session_state["overview_counts"] = True
    return at.run()
