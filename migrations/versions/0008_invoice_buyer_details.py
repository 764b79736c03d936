"""invoice buyer details

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 11:30:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    # Accounts and invoices stored before have no address or VAT ID: empty,
    # as the invoices were issued without them.
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('address', sa.Text(), server_default='', nullable=False))
        batch_op.add_column(sa.Column('vat_id', sa.String(length=40), server_default='', nullable=False))
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('buyer_address', sa.Text(), server_default='', nullable=False))
        batch_op.add_column(sa.Column('buyer_vat_id', sa.String(length=40), server_default='', nullable=False))


def downgrade():
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.drop_column('buyer_vat_id')
        batch_op.drop_column('buyer_address')
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_column('vat_id')
        batch_op.drop_column('address')
