"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-26 07:47:34.125657
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('experiments',
    sa.Column('experiment_id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=256), nullable=False),
    sa.Column('artifact_location', sa.String(length=1000), nullable=False),
    sa.Column('lifecycle_stage', sa.String(length=32), nullable=False),
    sa.Column('creation_time', sa.BigInteger(), nullable=False),
    sa.Column('last_update_time', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('experiment_id', name=op.f('pk_experiments')),
    sa.UniqueConstraint('name', name=op.f('uq_experiments_name')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_bin'
    )
    op.create_table('experiment_tags',
    sa.Column('experiment_id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=250), nullable=False),
    sa.Column('value', sa.String(length=5000), nullable=False),
    sa.ForeignKeyConstraint(['experiment_id'], ['experiments.experiment_id'], name=op.f('fk_experiment_tags_experiment_id_experiments'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('experiment_id', 'key', name=op.f('pk_experiment_tags')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_bin'
    )
    op.create_table('runs',
    sa.Column('run_uuid', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=250), nullable=False),
    sa.Column('experiment_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.String(length=256), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('start_time', sa.BigInteger(), nullable=False),
    sa.Column('end_time', sa.BigInteger(), nullable=True),
    sa.Column('artifact_uri', sa.String(length=1000), nullable=False),
    sa.Column('lifecycle_stage', sa.String(length=20), nullable=False),
    sa.Column('parent_run_uuid', sa.String(length=32), nullable=True),
    sa.Column('heartbeat_time', sa.BigInteger(), nullable=True),
    sa.Column('deleted_time', sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(['experiment_id'], ['experiments.experiment_id'], name=op.f('fk_runs_experiment_id_experiments'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_uuid', name=op.f('pk_runs')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_bin'
    )
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.create_index('ix_runs_experiment_lifecycle_start', ['experiment_id', 'lifecycle_stage', 'start_time'], unique=False)
        batch_op.create_index('ix_runs_parent_run_uuid', ['parent_run_uuid'], unique=False)
        batch_op.create_index('ix_runs_status_heartbeat', ['status', 'heartbeat_time'], unique=False)

    op.create_table('latest_metrics',
    sa.Column('run_uuid', sa.String(length=32), nullable=False),
    sa.Column('key', sa.String(length=250), nullable=False),
    sa.Column('value', sa.Double(), nullable=False),
    sa.Column('special', sa.SmallInteger(), nullable=False),
    sa.Column('timestamp', sa.BigInteger(), nullable=False),
    sa.Column('step', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['run_uuid'], ['runs.run_uuid'], name=op.f('fk_latest_metrics_run_uuid_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_uuid', 'key', name=op.f('pk_latest_metrics')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_bin'
    )
    with op.batch_alter_table('latest_metrics', schema=None) as batch_op:
        batch_op.create_index('ix_latest_metrics_key_value', ['key', 'value'], unique=False)

    op.create_table('metrics',
    sa.Column('run_uuid', sa.String(length=32), nullable=False),
    sa.Column('key', sa.String(length=250), nullable=False),
    sa.Column('step', sa.BigInteger(), nullable=False),
    sa.Column('timestamp', sa.BigInteger(), nullable=False),
    sa.Column('value', sa.Double(), nullable=False),
    sa.Column('special', sa.SmallInteger(), nullable=False),
    sa.ForeignKeyConstraint(['run_uuid'], ['runs.run_uuid'], name=op.f('fk_metrics_run_uuid_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_uuid', 'key', 'step', 'timestamp', 'value', 'special', name=op.f('pk_metrics')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_bin',
    sqlite_with_rowid=False
    )
    op.create_table('params',
    sa.Column('run_uuid', sa.String(length=32), nullable=False),
    sa.Column('key', sa.String(length=250), nullable=False),
    sa.Column('value', sa.String(length=6000), nullable=False),
    sa.ForeignKeyConstraint(['run_uuid'], ['runs.run_uuid'], name=op.f('fk_params_run_uuid_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_uuid', 'key', name=op.f('pk_params')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_bin'
    )
    op.create_table('tags',
    sa.Column('run_uuid', sa.String(length=32), nullable=False),
    sa.Column('key', sa.String(length=250), nullable=False),
    sa.Column('value', sa.String(length=5000), nullable=False),
    sa.ForeignKeyConstraint(['run_uuid'], ['runs.run_uuid'], name=op.f('fk_tags_run_uuid_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_uuid', 'key', name=op.f('pk_tags')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_bin'
    )


def downgrade() -> None:
    # Dropping a table drops its indexes; dropping them first fails on MySQL,
    # where an index may back a foreign key.
    for table in ("tags", "params", "metrics", "latest_metrics", "runs", "experiment_tags",
                  "experiments"):
        op.drop_table(table)
