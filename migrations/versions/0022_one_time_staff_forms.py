"""the one-time token of the staff form that opened a ticket for a client
(unique) and of the form that last sent a quote: a form sent twice is one
ticket, one sending

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06 04:30:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('opening_key', sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_tickets_opening_key'), ['opening_key'])
    with op.batch_alter_table('quotes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('send_key', sa.String(length=64), nullable=True))


def downgrade():
    with op.batch_alter_table('quotes', schema=None) as batch_op:
        batch_op.drop_column('send_key')
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_tickets_opening_key'), type_='unique')
        batch_op.drop_column('opening_key')
