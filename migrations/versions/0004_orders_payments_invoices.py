"""orders: payments, events, invoices, trial claims

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 18:54:29.882794

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('document_counters',
    sa.Column('series', sa.String(length=20), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('last', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('series', 'year', name=op.f('pk_document_counters'))
    )
    op.create_table('invoices',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=12), nullable=False),
    sa.Column('series', sa.String(length=20), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('sequence', sa.Integer(), nullable=False),
    sa.Column('number', sa.String(length=40), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('corrects_id', sa.Integer(), nullable=True),
    sa.Column('issued_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('language', sa.String(length=5), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('net', sa.Integer(), nullable=False),
    sa.Column('vat', sa.Integer(), nullable=False),
    sa.Column('gross', sa.Integer(), nullable=False),
    sa.Column('seller_name', sa.String(length=200), nullable=False),
    sa.Column('seller_address', sa.Text(), nullable=False),
    sa.Column('seller_email', sa.String(length=254), nullable=False),
    sa.Column('seller_vat_id', sa.String(length=40), nullable=False),
    sa.Column('buyer_name', sa.String(length=200), nullable=False),
    sa.Column('buyer_country', sa.String(length=2), nullable=False),
    sa.Column('buyer_email', sa.String(length=254), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.CheckConstraint("kind = 'invoice' OR corrects_id IS NOT NULL", name=op.f('ck_invoices_invoice_credit_corrects')),
    sa.CheckConstraint("kind IN ('invoice', 'credit_note')", name=op.f('ck_invoices_invoice_kind')),
    sa.CheckConstraint('net >= 0 AND vat >= 0 AND gross = net + vat', name=op.f('ck_invoices_invoice_amounts')),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_invoices_account_id_accounts')),
    sa.ForeignKeyConstraint(['corrects_id'], ['invoices.id'], name=op.f('fk_invoices_corrects_id_invoices')),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_invoices_order_id_orders')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_invoices')),
    sa.UniqueConstraint('key', name=op.f('uq_invoices_key')),
    sa.UniqueConstraint('number', name=op.f('uq_invoices_number')),
    sa.UniqueConstraint('series', 'year', 'sequence', name=op.f('uq_invoices_series'))
    )
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.create_index('ix_invoices_account_issued', ['account_id', 'issued_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_invoices_order_id'), ['order_id'], unique=False)

    op.create_table('payments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=False),
    sa.Column('provider', sa.String(length=20), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('amount', sa.Integer(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('external_id', sa.String(length=255), nullable=True),
    sa.Column('info', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('confirmed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('confirmed_by_id', sa.Integer(), nullable=True),
    sa.CheckConstraint("status IN ('created', 'pending', 'confirmed', 'failed', 'cancelled')", name=op.f('ck_payments_payment_status')),
    sa.CheckConstraint('amount >= 0', name=op.f('ck_payments_payment_amount')),
    sa.ForeignKeyConstraint(['confirmed_by_id'], ['users.id'], name=op.f('fk_payments_confirmed_by_id_users')),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_payments_order_id_orders')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payments')),
    sa.UniqueConstraint('external_id', name=op.f('uq_payments_external_id'))
    )
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payments_order_id'), ['order_id'], unique=False)
        batch_op.create_index('ix_payments_status_provider', ['status', 'provider'], unique=False)

    op.create_table('trial_claims',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('catalogue_id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_trial_claims_account_id_accounts')),
    sa.ForeignKeyConstraint(['catalogue_id'], ['catalogues.id'], name=op.f('fk_trial_claims_catalogue_id_catalogues')),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_trial_claims_order_id_orders')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_trial_claims')),
    sa.UniqueConstraint('catalogue_id', 'account_id', name='uq_trial_claims_account'),
    sa.UniqueConstraint('catalogue_id', 'email', name='uq_trial_claims_email')
    )
    op.create_table('invoice_lines',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('invoice_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('unit_price', sa.Integer(), nullable=False),
    sa.Column('vat_rate_bp', sa.Integer(), nullable=False),
    sa.Column('net', sa.Integer(), nullable=False),
    sa.Column('vat', sa.Integer(), nullable=False),
    sa.Column('gross', sa.Integer(), nullable=False),
    sa.CheckConstraint('quantity >= 1 AND net >= 0 AND vat >= 0 AND gross = net + vat', name=op.f('ck_invoice_lines_invoice_line_amounts')),
    sa.ForeignKeyConstraint(['invoice_id'], ['invoices.id'], name=op.f('fk_invoice_lines_invoice_id_invoices')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_invoice_lines')),
    sa.UniqueConstraint('invoice_id', 'position', name=op.f('uq_invoice_lines_invoice_id'))
    )
    op.create_table('order_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=False),
    sa.Column('payment_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('amount', sa.Integer(), nullable=True),
    sa.Column('by_id', sa.Integer(), nullable=True),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('placed', 'payment', 'paid', 'overpaid', 'reminded', 'cancelled', 'credit_note')", name=op.f('ck_order_events_order_event_kind')),
    sa.ForeignKeyConstraint(['by_id'], ['users.id'], name=op.f('fk_order_events_by_id_users')),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_order_events_order_id_orders')),
    sa.ForeignKeyConstraint(['payment_id'], ['payments.id'], name=op.f('fk_order_events_payment_id_payments')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_order_events'))
    )
    with op.batch_alter_table('order_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_order_events_order_id'), ['order_id'], unique=False)

    # Orders placed before checkout existed get the defaults a pack sold
    # net of VAT at 0 % would have: net = total.
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('placed_by_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('method', sa.String(length=20), nullable=False, server_default='transfer'))
        batch_op.add_column(sa.Column('unit_price', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('price_includes_vat', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('vat_rate_bp', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('net', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('vat', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('reference', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('language', sa.String(length=5), nullable=False, server_default='en'))
        batch_op.add_column(sa.Column('paid_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('reminded_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('cancelled_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('cancel_reason', sa.Text(), nullable=False, server_default=''))
    op.execute("UPDATE orders SET net = total, unit_price = total / quantity")
    with op.batch_alter_table('orders', schema=None) as batch_op:
        for column in ('method', 'unit_price', 'price_includes_vat', 'vat_rate_bp', 'net', 'vat', 'language',
                       'cancel_reason'):
            batch_op.alter_column(column, server_default=None)
        batch_op.create_index(batch_op.f('ix_orders_account_id'), ['account_id'], unique=False)
        batch_op.create_unique_constraint(batch_op.f('uq_orders_reference'), ['reference'])
        batch_op.create_foreign_key(batch_op.f('fk_orders_placed_by_id_users'), 'users', ['placed_by_id'], ['id'])
        batch_op.create_check_constraint(
            op.f('ck_orders_order_status'), "status IN ('pending', 'paid', 'cancelled', 'refunded')")
        batch_op.create_check_constraint(op.f('ck_orders_order_method'), "method IN ('card', 'transfer', 'cheque', 'free')")
        batch_op.create_check_constraint(op.f('ck_orders_order_amounts'), 'net >= 0 AND vat >= 0 AND total = net + vat')



def downgrade():
    with op.batch_alter_table('orders', schema=None) as batch_op:
        for name in ('order_amounts', 'order_method', 'order_status'):
            batch_op.drop_constraint(batch_op.f(f'ck_orders_{name}'), type_='check')
        batch_op.drop_constraint(batch_op.f('fk_orders_placed_by_id_users'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('uq_orders_reference'), type_='unique')
        batch_op.drop_index(batch_op.f('ix_orders_account_id'))
        batch_op.drop_column('cancel_reason')
        batch_op.drop_column('cancelled_at')
        batch_op.drop_column('reminded_at')
        batch_op.drop_column('paid_at')
        batch_op.drop_column('language')
        batch_op.drop_column('reference')
        batch_op.drop_column('vat')
        batch_op.drop_column('net')
        batch_op.drop_column('vat_rate_bp')
        batch_op.drop_column('price_includes_vat')
        batch_op.drop_column('unit_price')
        batch_op.drop_column('method')
        batch_op.drop_column('placed_by_id')

    with op.batch_alter_table('order_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_order_events_order_id'))

    op.drop_table('order_events')
    op.drop_table('invoice_lines')
    op.drop_table('trial_claims')
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.drop_index('ix_payments_status_provider')
        batch_op.drop_index(batch_op.f('ix_payments_order_id'))

    op.drop_table('payments')
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_invoices_order_id'))
        batch_op.drop_index('ix_invoices_account_issued')

    op.drop_table('invoices')
    op.drop_table('document_counters')
