"""bank statement lines, imports and CSV mappings; the partial-payment mail

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06 02:10:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None

KINDS_BEFORE = ('verify_email', 'reset_password', 'invitation', 'order_received', 'payment_confirmed',
                'order_reminder', 'order_cancelled', 'trial_started', 'low_balance', 'expiring', 'overage_request',
                'ticket_opened', 'staff_reply', 'ticket_resolved', 'ticket_opened_staff')
KINDS_AFTER = KINDS_BEFORE + ('payment_partial',)


def _kinds(kinds):
    return "kind IN (" + ", ".join(repr(kind) for kind in kinds) + ")"


def upgrade():
    op.create_table('bank_imports',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('filename', sa.String(length=200), nullable=False),
    sa.Column('format', sa.String(length=10), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('token', sa.String(length=64), nullable=True),
    sa.Column('imported_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('imported_by_id', sa.Integer(), nullable=True),
    sa.Column('results', sa.JSON(), nullable=False),
    sa.CheckConstraint("format IN ('camt053', 'camt054', 'mt940', 'csv')", name=op.f('ck_bank_imports_bank_import_format')),
    sa.ForeignKeyConstraint(['imported_by_id'], ['users.id'], name=op.f('fk_bank_imports_imported_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bank_imports')),
    sa.UniqueConstraint('token', name=op.f('uq_bank_imports_token'))
    )
    op.create_table('bank_mappings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=60), nullable=False),
    sa.Column('delimiter', sa.String(length=1), nullable=False),
    sa.Column('date_column', sa.String(length=60), nullable=False),
    sa.Column('date_format', sa.String(length=20), nullable=False),
    sa.Column('amount_column', sa.String(length=60), nullable=False),
    sa.Column('credit_column', sa.String(length=60), nullable=False),
    sa.Column('debit_column', sa.String(length=60), nullable=False),
    sa.Column('decimal_comma', sa.Boolean(), nullable=False),
    sa.Column('currency_column', sa.String(length=60), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('text_column', sa.String(length=60), nullable=False),
    sa.Column('payer_column', sa.String(length=60), nullable=False),
    sa.Column('reference_column', sa.String(length=60), nullable=False),
    sa.Column('bank_ref_column', sa.String(length=60), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bank_mappings')),
    sa.UniqueConstraint('name', name=op.f('uq_bank_mappings_name'))
    )
    op.create_table('bank_lines',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('identity', sa.String(length=64), nullable=False),
    sa.Column('import_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.String(length=40), nullable=False),
    sa.Column('account', sa.String(length=64), nullable=False),
    sa.Column('bank_ref', sa.String(length=120), nullable=False),
    sa.Column('booked_on', sa.Date(), nullable=False),
    sa.Column('amount', sa.Integer(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('credit', sa.Boolean(), nullable=False),
    sa.Column('reversal', sa.Boolean(), nullable=False),
    sa.Column('return_reason', sa.String(length=35), nullable=False),
    sa.Column('payer', sa.String(length=200), nullable=False),
    sa.Column('reference', sa.String(length=60), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('ignored_because', sa.String(length=12), nullable=True),
    sa.Column('matched_by', sa.String(length=12), nullable=True),
    sa.Column('order_id', sa.Integer(), nullable=True),
    sa.Column('payment_id', sa.Integer(), nullable=True),
    sa.Column('suggested_order_id', sa.Integer(), nullable=True),
    sa.Column('missing', sa.Integer(), nullable=False),
    sa.Column('excess', sa.Integer(), nullable=False),
    sa.Column('resolved_by_id', sa.Integer(), nullable=True),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('note', sa.Text(), nullable=False),
    sa.CheckConstraint("status IN ('confirmed', 'partial', 'overpaid', 'suggested', 'unmatched', 'ignored', 'discarded')", name=op.f('ck_bank_lines_bank_line_status')),
    sa.CheckConstraint('amount >= 0', name=op.f('ck_bank_lines_bank_line_amount')),
    sa.CheckConstraint("ignored_because IS NULL OR ignored_because IN ('debit', 'reversal', 'currency', 'pending')", name=op.f('ck_bank_lines_bank_line_ignored')),
    sa.CheckConstraint("matched_by IS NULL OR matched_by IN ('reference', 'text', 'invoice', 'staff', 'by_hand')", name=op.f('ck_bank_lines_bank_line_matched_by')),
    sa.ForeignKeyConstraint(['import_id'], ['bank_imports.id'], name=op.f('fk_bank_lines_import_id_bank_imports')),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_bank_lines_order_id_orders')),
    sa.ForeignKeyConstraint(['payment_id'], ['payments.id'], name=op.f('fk_bank_lines_payment_id_payments')),
    sa.ForeignKeyConstraint(['suggested_order_id'], ['orders.id'], name=op.f('fk_bank_lines_suggested_order_id_orders')),
    sa.ForeignKeyConstraint(['resolved_by_id'], ['users.id'], name=op.f('fk_bank_lines_resolved_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bank_lines')),
    sa.UniqueConstraint('identity', name=op.f('uq_bank_lines_identity'))
    )
    with op.batch_alter_table('bank_lines', schema=None) as batch_op:
        batch_op.create_index('ix_bank_lines_status', ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_bank_lines_import_id'), ['import_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_bank_lines_order_id'), ['order_id'], unique=False)
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_outbox_outbox_kind'), type_='check')
        batch_op.create_check_constraint('outbox_kind', _kinds(KINDS_AFTER))


def downgrade():
    op.execute("DELETE FROM outbox WHERE kind = 'payment_partial'")
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_outbox_outbox_kind'), type_='check')
        batch_op.create_check_constraint('outbox_kind', _kinds(KINDS_BEFORE))
    with op.batch_alter_table('bank_lines', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_bank_lines_order_id'))
        batch_op.drop_index(batch_op.f('ix_bank_lines_import_id'))
        batch_op.drop_index('ix_bank_lines_status')
    op.drop_table('bank_lines')
    op.drop_table('bank_mappings')
    op.drop_table('bank_imports')
