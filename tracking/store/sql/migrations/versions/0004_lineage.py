"""lineage: which run used which artifact of which other run

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 23:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('lineage',
    sa.Column('consumer_run_uuid', sa.String(length=32), nullable=False),
    sa.Column('producer_run_uuid', sa.String(length=32), nullable=False),
    sa.Column('artifact_path', sa.String(length=500), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('timestamp', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['consumer_run_uuid'], ['runs.run_uuid'], name=op.f('fk_lineage_consumer_run_uuid_runs'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['producer_run_uuid'], ['runs.run_uuid'], name=op.f('fk_lineage_producer_run_uuid_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('consumer_run_uuid', 'producer_run_uuid', 'artifact_path', name=op.f('pk_lineage')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_bin'
    )
    op.create_index('ix_lineage_producer_run_uuid', 'lineage', ['producer_run_uuid'], unique=False)


def downgrade() -> None:
    op.drop_table('lineage')
