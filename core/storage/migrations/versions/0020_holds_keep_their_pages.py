"""PostgreSQL: ``limit_holds`` keeps its pages when a vacuum empties it (``vacuum_truncate = false``).

Holds come and go by the thousand (a reserve writes one per budget that applies; a recording or the
sweep deletes them). A vacuum that found the table empty truncated it to no pages, and a reserve's
statements, prepared by psycopg and planned once per connection, were then planned for an empty table:
a sequential scan of the holds for the request id and for each counter's expired holds, kept while a
burst filled the table again (a reserve's locked read 0.3 ms -> 7-10 ms at 40,000 holds, 2,000 reserves
after ``VACUUM`` at 1M calls). With its pages kept, the table is costed by its size on disk, and the
indexes win whatever its row count. Truncation also takes an ACCESS EXCLUSIVE lock that stalls every
reserve while it runs. SQLite: nothing to do.

Revision ID: 0020_holds_keep_their_pages
Revises: 0019_counter_key_by_period
"""

from __future__ import annotations

from alembic import op

revision = "0020_holds_keep_their_pages"
down_revision = "0019_counter_key_by_period"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE limit_holds SET (vacuum_truncate = false)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE limit_holds RESET (vacuum_truncate)")
