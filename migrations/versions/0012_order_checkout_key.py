"""order checkout key: the checkout form's one-time token, so that the same
form sent twice places one order

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 23:15:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('checkout_key', sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_orders_checkout_key'), ['checkout_key'])


def downgrade():
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_orders_checkout_key'), type_='unique')
        batch_op.drop_column('checkout_key')
