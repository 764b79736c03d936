"""indexes for the staff's client list

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06 01:40:00

An account's people (users.account_id) and its last activity (the last
ticket opened or changed, the last order) each read with one index seek, so
that sorting 10,000 accounts by last activity stays well under 200 ms
(bench/clients.py).
"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_users_account_id'), ['account_id'], unique=False)
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.create_index('ix_tickets_account_created', ['account_id', 'created_at'], unique=False)
        batch_op.create_index('ix_tickets_account_updated', ['account_id', 'updated_at'], unique=False)
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.create_index('ix_orders_account_created', ['account_id', 'created_at'], unique=False)


def downgrade():
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index('ix_orders_account_created')
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_index('ix_tickets_account_updated')
        batch_op.drop_index('ix_tickets_account_created')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_users_account_id'))
