"""the one-time token of the form a quote was asked with (unique): a form
sent twice is one request, one mail to staff

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-06 05:15:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0024'
down_revision = '0023'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('quotes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('request_key', sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_quotes_request_key'), ['request_key'])


def downgrade():
    with op.batch_alter_table('quotes', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_quotes_request_key'), type_='unique')
        batch_op.drop_column('request_key')
