"""metric rollups: each series' extremes per block of 256 steps, for sampled history

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 08:40:00.000000
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

BLOCK = 256  # tracking.store.sql.models.ROLLUP_BLOCK when this revision was written
_BATCH = 1000
_PAGE = 50_000


def upgrade() -> None:
    rollups = op.create_table('metric_rollups',
    sa.Column('run_uuid', sa.String(length=32), nullable=False),
    sa.Column('key', sa.String(length=250), nullable=False),
    sa.Column('block', sa.BigInteger(), nullable=False),
    sa.Column('min_value', sa.Double(), nullable=False),
    sa.Column('min_special', sa.SmallInteger(), nullable=False),
    sa.Column('min_step', sa.BigInteger(), nullable=False),
    sa.Column('min_timestamp', sa.BigInteger(), nullable=False),
    sa.Column('max_value', sa.Double(), nullable=False),
    sa.Column('max_special', sa.SmallInteger(), nullable=False),
    sa.Column('max_step', sa.BigInteger(), nullable=False),
    sa.Column('max_timestamp', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['run_uuid'], ['runs.run_uuid'], name=op.f('fk_metric_rollups_run_uuid_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_uuid', 'key', 'block', name=op.f('pk_metric_rollups')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_bin'
    )
    _backfill(rollups)


def _backfill(rollups: sa.Table) -> None:
    """Roll up the points already stored: series by series, pages in key order.

    Pages are read whole (no server-side cursor: MySQL's cannot share the
    connection with the inserts) and continue after the last point read.
    """
    metrics = sa.table('metrics', sa.column('run_uuid'), sa.column('key'), sa.column('step'),
                       sa.column('timestamp'), sa.column('value'), sa.column('special'))
    latest = sa.table('latest_metrics', sa.column('run_uuid'), sa.column('key'))
    conn = op.get_bind()
    series = conn.execute(sa.select(latest.c.run_uuid, latest.c.key)).all()
    order = (metrics.c.step, metrics.c.timestamp, metrics.c.value, metrics.c.special)
    for run_uuid, key in series:
        after: tuple[Any, ...] | None = None
        rows: dict[int, dict[str, Any]] = {}
        while True:
            query = (sa.select(*order)
                     .where(metrics.c.run_uuid == run_uuid, metrics.c.key == key)
                     .order_by(*order).limit(_PAGE))
            if after is not None:
                query = query.where(sa.tuple_(*order) > sa.tuple_(*after))
            page = conn.execute(query).all()
            for step, timestamp, value, special in page:
                row = rows.get(step // BLOCK)
                if row is None:
                    rows[step // BLOCK] = {
                        'run_uuid': run_uuid, 'key': key, 'block': step // BLOCK,
                        'min_value': value, 'min_special': special, 'min_step': step,
                        'min_timestamp': timestamp, 'max_value': value,
                        'max_special': special, 'max_step': step, 'max_timestamp': timestamp,
                    }
                elif value < row['min_value']:
                    row.update(min_value=value, min_special=special, min_step=step,
                               min_timestamp=timestamp)
                elif value > row['max_value']:
                    row.update(max_value=value, max_special=special, max_step=step,
                               max_timestamp=timestamp)
            if len(page) < _PAGE:
                break
            after = tuple(page[-1])
        values = list(rows.values())
        for start in range(0, len(values), _BATCH):
            op.bulk_insert(rollups, values[start:start + _BATCH])


def downgrade() -> None:
    op.drop_table('metric_rollups')
