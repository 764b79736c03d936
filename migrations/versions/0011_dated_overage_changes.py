"""dated overage changes

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 11:30:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('overage_changes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('overage_id', sa.Integer(), nullable=False),
    sa.Column('operation_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('units', sa.Integer(), nullable=False),
    sa.Column('settled', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('pending', 'approved', 'declined', 'purchased', 'debt', 'paid', 'withdrawn')",
                       name=op.f('ck_overage_changes_overage_change_status')),
    sa.CheckConstraint('units != 0 OR settled != 0', name=op.f('ck_overage_changes_overage_change_moves')),
    sa.ForeignKeyConstraint(['operation_id'], ['ledger_operations.id'],
                            name=op.f('fk_overage_changes_operation_id_ledger_operations')),
    sa.ForeignKeyConstraint(['overage_id'], ['overages.id'], name=op.f('fk_overage_changes_overage_id_overages')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_overage_changes'))
    )
    with op.batch_alter_table('overage_changes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_overage_changes_overage_id'), ['overage_id'], unique=False)
    # What the overages hold today, as if it had all happened when each was
    # opened: their history before this migration was never written down.
    # A withdrawn request or debt (nothing owed, nothing settled) gets no row.
    op.execute("INSERT INTO overage_changes (overage_id, operation_id, status, units, settled, created_at) "
               "SELECT id, NULL, status, units, settled, created_at FROM overages "
               "WHERE units != 0 OR settled != 0 ORDER BY id")


def downgrade():
    with op.batch_alter_table('overage_changes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_overage_changes_overage_id'))

    op.drop_table('overage_changes')
