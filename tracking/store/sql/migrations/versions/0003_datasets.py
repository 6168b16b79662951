"""datasets and run inputs: what data sets a run used (MLflow's log-inputs)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 22:50:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

LONG_TEXT = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table('datasets',
    sa.Column('dataset_uuid', sa.String(length=36), nullable=False),
    sa.Column('experiment_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=500), nullable=False),
    sa.Column('digest', sa.String(length=36), nullable=False),
    sa.Column('source_type', sa.String(length=36), nullable=False),
    sa.Column('source', LONG_TEXT, nullable=False),
    sa.Column('schema', LONG_TEXT, nullable=True),
    sa.Column('profile', LONG_TEXT, nullable=True),
    sa.ForeignKeyConstraint(['experiment_id'], ['experiments.experiment_id'], name=op.f('fk_datasets_experiment_id_experiments'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('dataset_uuid', name=op.f('pk_datasets')),
    sa.UniqueConstraint('experiment_id', 'name', 'digest', name=op.f('uq_datasets_experiment_id_name_digest')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_bin'
    )
    op.create_table('run_inputs',
    sa.Column('run_uuid', sa.String(length=32), nullable=False),
    sa.Column('dataset_uuid', sa.String(length=36), nullable=False),
    sa.Column('tags', sa.Text(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['dataset_uuid'], ['datasets.dataset_uuid'], name=op.f('fk_run_inputs_dataset_uuid_datasets'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['run_uuid'], ['runs.run_uuid'], name=op.f('fk_run_inputs_run_uuid_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_uuid', 'dataset_uuid', name=op.f('pk_run_inputs')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_bin'
    )
    op.create_index('ix_run_inputs_dataset_uuid', 'run_inputs', ['dataset_uuid'], unique=False)


def downgrade() -> None:
    op.drop_table('run_inputs')
    op.drop_table('datasets')
