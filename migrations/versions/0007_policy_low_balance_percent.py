"""policy: low-balance percent

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 09:14:47

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    # Existing policies keep the threshold they had: 20 % of the last pack.
    with op.batch_alter_table('policies', schema=None) as batch_op:
        batch_op.add_column(sa.Column('low_balance_percent', sa.Integer(), server_default='20', nullable=False))
        batch_op.create_check_constraint(
            op.f('ck_policies_policy_low_balance'), 'low_balance_percent >= 0 AND low_balance_percent <= 100')


def downgrade():
    with op.batch_alter_table('policies', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_policies_policy_low_balance'), type_='check')
        batch_op.drop_column('low_balance_percent')
