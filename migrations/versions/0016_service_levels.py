"""service levels: opening hours, targets, holidays; catalogues that publish them

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06 01:50:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('service_levels',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('hours', sa.JSON(), nullable=False),
    sa.Column('targets', sa.JSON(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('id = 1', name=op.f('ck_service_levels_service_levels_single')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_service_levels'))
    )
    op.create_table('holidays',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_holidays')),
    sa.UniqueConstraint('day', name=op.f('uq_holidays_day'))
    )
    with op.batch_alter_table('catalogues', schema=None) as batch_op:
        batch_op.add_column(sa.Column('publishes_service_levels', sa.Boolean(), server_default=sa.false(),
                                      nullable=False))


def downgrade():
    with op.batch_alter_table('catalogues', schema=None) as batch_op:
        batch_op.drop_column('publishes_service_levels')
    op.drop_table('holidays')
    op.drop_table('service_levels')
