"""quotes for packs priced on request; an order keeps the validity its
quote agreed; complimentary lots; the quote's mail

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06 01:30:36.072769

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None

LOT_SOURCES = "source IN ('purchase', 'trial', 'rollover', 'adjustment', 'complimentary'"
OUTBOX_KINDS = ("kind IN ('verify_email', 'reset_password', 'invitation', 'order_received', 'payment_confirmed', "
                "'order_reminder', 'order_cancelled', 'trial_started', 'low_balance', 'expiring', 'overage_request', "
                "'ticket_opened', 'staff_reply', 'ticket_resolved', 'ticket_opened_staff', 'payment_partial'")


def upgrade():
    op.create_table('quotes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('pack_id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=True),
    sa.Column('requested_by_id', sa.Integer(), nullable=True),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('company', sa.String(length=200), nullable=False),
    sa.Column('country', sa.String(length=2), nullable=False),
    sa.Column('language', sa.String(length=5), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('requested_quantity', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=True),
    sa.Column('unit_price', sa.Integer(), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('vat_rate_bp', sa.Integer(), nullable=False),
    sa.Column('price_includes_vat', sa.Boolean(), nullable=False),
    sa.Column('validity_months', sa.Integer(), nullable=True),
    sa.Column('valid_until', sa.Date(), nullable=True),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('sent_by_id', sa.Integer(), nullable=True),
    sa.Column('accepted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('accepted_by_id', sa.Integer(), nullable=True),
    sa.Column('order_id', sa.Integer(), nullable=True),
    sa.CheckConstraint("(status = 'accepted') = (order_id IS NOT NULL)", name=op.f('ck_quotes_quote_order')),
    sa.CheckConstraint("status IN ('requested', 'sent', 'accepted', 'withdrawn')", name=op.f('ck_quotes_quote_status')),
    sa.CheckConstraint("status IN ('requested', 'withdrawn') OR (unit_price IS NOT NULL AND quantity IS NOT NULL AND valid_until IS NOT NULL)", name=op.f('ck_quotes_quote_priced')),
    sa.CheckConstraint('quantity IS NULL OR quantity >= 1', name=op.f('ck_quotes_quote_quantity')),
    sa.CheckConstraint('requested_quantity >= 1', name=op.f('ck_quotes_quote_requested_quantity')),
    sa.CheckConstraint('unit_price IS NULL OR unit_price >= 0', name=op.f('ck_quotes_quote_unit_price')),
    sa.CheckConstraint('validity_months IS NULL OR validity_months >= 1', name=op.f('ck_quotes_quote_validity')),
    sa.CheckConstraint('vat_rate_bp >= 0 AND vat_rate_bp < 10000', name=op.f('ck_quotes_quote_vat')),
    sa.ForeignKeyConstraint(['accepted_by_id'], ['users.id'], name=op.f('fk_quotes_accepted_by_id_users')),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_quotes_account_id_accounts')),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_quotes_order_id_orders')),
    sa.ForeignKeyConstraint(['pack_id'], ['packs.id'], name=op.f('fk_quotes_pack_id_packs')),
    sa.ForeignKeyConstraint(['requested_by_id'], ['users.id'], name=op.f('fk_quotes_requested_by_id_users')),
    sa.ForeignKeyConstraint(['sent_by_id'], ['users.id'], name=op.f('fk_quotes_sent_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_quotes')),
    sa.UniqueConstraint('order_id', name=op.f('uq_quotes_order_id')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_quotes_token_hash'))
    )
    with op.batch_alter_table('quotes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_quotes_account_id'), ['account_id'], unique=False)
        batch_op.create_index('ix_quotes_status_created', ['status', 'created_at'], unique=False)

    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('validity_months', sa.Integer(), nullable=True))
        batch_op.create_check_constraint(op.f('ck_orders_order_validity'),
                                         'validity_months IS NULL OR validity_months >= 1')
    with op.batch_alter_table('lots', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_lots_lot_source'), type_='check')
        batch_op.create_check_constraint(op.f('ck_lots_lot_source'), LOT_SOURCES + ")")
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_outbox_outbox_kind'), type_='check')
        batch_op.create_check_constraint(op.f('ck_outbox_outbox_kind'), OUTBOX_KINDS + ", 'quote_sent')")



def downgrade():
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_outbox_outbox_kind'), type_='check')
        batch_op.create_check_constraint(op.f('ck_outbox_outbox_kind'), OUTBOX_KINDS + ")")
    with op.batch_alter_table('lots', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_lots_lot_source'), type_='check')
        batch_op.create_check_constraint(op.f('ck_lots_lot_source'), "source IN ('purchase', 'trial', 'rollover', "
                                         "'adjustment')")
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_orders_order_validity'), type_='check')
        batch_op.drop_column('validity_months')

    with op.batch_alter_table('quotes', schema=None) as batch_op:
        batch_op.drop_index('ix_quotes_status_created')
        batch_op.drop_index(batch_op.f('ix_quotes_account_id'))

    op.drop_table('quotes')
