"""overage orders and debt changes

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 11:30:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade():
    # An order is for a pack or for the bill of an approved overage, never both.
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('overage_id', sa.Integer(), nullable=True))
        batch_op.alter_column('pack_id', existing_type=sa.Integer(), nullable=True)
        batch_op.create_foreign_key(op.f('fk_orders_overage_id_overages'), 'overages', ['overage_id'], ['id'])
        batch_op.create_check_constraint(op.f('ck_orders_order_item'), '(pack_id IS NULL) != (overage_id IS NULL)')
        batch_op.create_index('ix_orders_overage_pending', ['overage_id'], unique=True,
                              sqlite_where=sa.text("status = 'pending'"),
                              postgresql_where=sa.text("status = 'pending'"))


def downgrade():
    # Bills of overages have payments and invoices, which are never deleted:
    # an order without a pack cannot go back to a table that requires one.
    bills = op.get_bind().execute(sa.text("SELECT count(*) FROM orders WHERE overage_id IS NOT NULL")).scalar()
    if bills:
        raise RuntimeError(f"{bills} order(s) bill an overage: they cannot be kept without a pack")
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index('ix_orders_overage_pending', sqlite_where=sa.text("status = 'pending'"),
                            postgresql_where=sa.text("status = 'pending'"))
        batch_op.drop_constraint(op.f('ck_orders_order_item'), type_='check')
        batch_op.drop_constraint(op.f('fk_orders_overage_id_overages'), type_='foreignkey')
        batch_op.alter_column('pack_id', existing_type=sa.Integer(), nullable=False)
        batch_op.drop_column('overage_id')
