"""logged models and the model registry

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 07:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('model_version_tags',
    sa.Column('name', sa.String(length=256), nullable=False),
    sa.Column('version', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('key', sa.String(length=250), nullable=False),
    sa.Column('value', sa.String(length=5000), nullable=False),
    sa.PrimaryKeyConstraint('name', 'version', 'key', name=op.f('pk_model_version_tags')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_bin'
    )
    op.create_table('registered_models',
    sa.Column('name', sa.String(length=256), nullable=False),
    sa.Column('creation_time', sa.BigInteger(), nullable=False),
    sa.Column('last_updated_time', sa.BigInteger(), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_registered_models')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_bin'
    )
    op.create_table('logged_models',
    sa.Column('model_id', sa.String(length=40), nullable=False),
    sa.Column('experiment_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=500), nullable=False),
    sa.Column('artifact_location', sa.String(length=1000), nullable=False),
    sa.Column('creation_timestamp_ms', sa.BigInteger(), nullable=False),
    sa.Column('last_updated_timestamp_ms', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('status_message', sa.Text(), nullable=True),
    sa.Column('model_type', sa.String(length=500), nullable=True),
    sa.Column('source_run_id', sa.String(length=32), nullable=True),
    sa.Column('lifecycle_stage', sa.String(length=32), nullable=False),
    sa.ForeignKeyConstraint(['experiment_id'], ['experiments.experiment_id'], name=op.f('fk_logged_models_experiment_id_experiments'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('model_id', name=op.f('pk_logged_models')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_bin'
    )
    op.create_index('ix_logged_models_experiment_id_creation', 'logged_models', ['experiment_id', 'creation_timestamp_ms'], unique=False)
    op.create_index('ix_logged_models_source_run_id', 'logged_models', ['source_run_id'], unique=False)

    op.create_table('model_versions',
    sa.Column('name', sa.String(length=256), nullable=False),
    sa.Column('version', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('creation_time', sa.BigInteger(), nullable=False),
    sa.Column('last_updated_time', sa.BigInteger(), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('user_id', sa.String(length=256), nullable=True),
    sa.Column('current_stage', sa.String(length=20), nullable=False),
    sa.Column('source', sa.String(length=1000), nullable=False),
    sa.Column('storage_location', sa.String(length=1000), nullable=True),
    sa.Column('run_id', sa.String(length=32), nullable=True),
    sa.Column('run_link', sa.String(length=500), nullable=True),
    sa.Column('model_id', sa.String(length=40), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('status_message', sa.String(length=500), nullable=True),
    sa.ForeignKeyConstraint(['name'], ['registered_models.name'], name=op.f('fk_model_versions_name_registered_models'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('name', 'version', name=op.f('pk_model_versions')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_bin'
    )
    op.create_index('ix_model_versions_run_id', 'model_versions', ['run_id'], unique=False)

    op.create_table('registered_model_aliases',
    sa.Column('name', sa.String(length=256), nullable=False),
    sa.Column('alias', sa.String(length=256), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['name'], ['registered_models.name'], name=op.f('fk_registered_model_aliases_name_registered_models'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('name', 'alias', name=op.f('pk_registered_model_aliases')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_bin'
    )
    op.create_table('registered_model_tags',
    sa.Column('name', sa.String(length=256), nullable=False),
    sa.Column('key', sa.String(length=250), nullable=False),
    sa.Column('value', sa.String(length=5000), nullable=False),
    sa.ForeignKeyConstraint(['name'], ['registered_models.name'], name=op.f('fk_registered_model_tags_name_registered_models'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('name', 'key', name=op.f('pk_registered_model_tags')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_bin'
    )
    op.create_table('logged_model_metrics',
    sa.Column('model_id', sa.String(length=40), nullable=False),
    sa.Column('key', sa.String(length=250), nullable=False),
    sa.Column('step', sa.BigInteger(), nullable=False),
    sa.Column('timestamp', sa.BigInteger(), nullable=False),
    sa.Column('run_id', sa.String(length=32), nullable=False),
    sa.Column('dataset_name', sa.String(length=250), nullable=False),
    sa.Column('dataset_digest', sa.String(length=36), nullable=False),
    sa.Column('value', sa.Double(), nullable=False),
    sa.Column('special', sa.SmallInteger(), nullable=False),
    sa.ForeignKeyConstraint(['model_id'], ['logged_models.model_id'], name=op.f('fk_logged_model_metrics_model_id_logged_models'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('model_id', 'key', 'step', 'timestamp', 'run_id', 'dataset_name', 'dataset_digest', name=op.f('pk_logged_model_metrics')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_bin'
    )
    op.create_table('logged_model_params',
    sa.Column('model_id', sa.String(length=40), nullable=False),
    sa.Column('key', sa.String(length=250), nullable=False),
    sa.Column('value', sa.String(length=6000), nullable=False),
    sa.ForeignKeyConstraint(['model_id'], ['logged_models.model_id'], name=op.f('fk_logged_model_params_model_id_logged_models'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('model_id', 'key', name=op.f('pk_logged_model_params')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_bin'
    )
    op.create_table('logged_model_tags',
    sa.Column('model_id', sa.String(length=40), nullable=False),
    sa.Column('key', sa.String(length=250), nullable=False),
    sa.Column('value', sa.String(length=5000), nullable=False),
    sa.ForeignKeyConstraint(['model_id'], ['logged_models.model_id'], name=op.f('fk_logged_model_tags_model_id_logged_models'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('model_id', 'key', name=op.f('pk_logged_model_tags')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_bin'
    )
    op.create_table('run_model_io',
    sa.Column('run_uuid', sa.String(length=32), nullable=False),
    sa.Column('model_id', sa.String(length=40), nullable=False),
    sa.Column('direction', sa.String(length=8), nullable=False),
    sa.Column('step', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['model_id'], ['logged_models.model_id'], name=op.f('fk_run_model_io_model_id_logged_models'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['run_uuid'], ['runs.run_uuid'], name=op.f('fk_run_model_io_run_uuid_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_uuid', 'model_id', 'direction', name=op.f('pk_run_model_io')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_bin'
    )
    op.create_index('ix_run_model_io_model_id', 'run_model_io', ['model_id'], unique=False)



def downgrade() -> None:
    op.drop_table('run_model_io')
    op.drop_table('logged_model_tags')
    op.drop_table('logged_model_params')
    op.drop_table('logged_model_metrics')
    op.drop_table('registered_model_tags')
    op.drop_table('registered_model_aliases')
    op.drop_table('model_versions')
    op.drop_table('logged_models')
    op.drop_table('registered_models')
    op.drop_table('model_version_tags')
