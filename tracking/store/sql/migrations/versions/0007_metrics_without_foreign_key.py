"""metrics without a foreign key on PostgreSQL and MySQL

The database checked each point's run: a lookup of ``runs`` per inserted row
(on PostgreSQL a trigger's query each), half of PostgreSQL's work for a batch
of 1,000 points. A batch now locks its run once (``HotPath.log_batch``), and
purging a run deletes its points itself (``tracking.store.sql.purge``).
SQLite keeps the key: its check is a cheap in-process lookup, and dropping it
would mean copying the whole table.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 19:10:00.000000
"""

from __future__ import annotations

from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

_NAME = 'fk_metrics_run_uuid_runs'


def upgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        return
    op.drop_constraint(op.f(_NAME), 'metrics', type_='foreignkey')


def downgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        return
    # Points whose run is gone (none, unless written by hand) would fail the key.
    op.execute(
        'DELETE FROM metrics WHERE NOT EXISTS '
        '(SELECT 1 FROM runs WHERE runs.run_uuid = metrics.run_uuid)'
    )
    op.create_foreign_key(
        op.f(_NAME), 'metrics', 'runs', ['run_uuid'], ['run_uuid'], ondelete='CASCADE'
    )
