"""subscriptions

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 11:30:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('subscriptions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('pack_id', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('paid_until', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('end_reason', sa.String(length=10), nullable=True),
    sa.Column('cancelled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cancelled_by_id', sa.Integer(), nullable=True),
    sa.Column('renewal_order_id', sa.Integer(), nullable=True),
    sa.CheckConstraint('paid_until > started_at', name=op.f('ck_subscriptions_subscription_period')),
    sa.CheckConstraint('ends_at IS NULL OR (ends_at >= started_at AND end_reason IS NOT NULL)', name=op.f('ck_subscriptions_subscription_end')),
    sa.CheckConstraint("end_reason IS NULL OR end_reason IN ('cancelled', 'lapsed', 'refunded')", name=op.f('ck_subscriptions_subscription_reason')),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_subscriptions_account_id_accounts')),
    sa.ForeignKeyConstraint(['cancelled_by_id'], ['users.id'], name=op.f('fk_subscriptions_cancelled_by_id_users')),
    sa.ForeignKeyConstraint(['pack_id'], ['packs.id'], name=op.f('fk_subscriptions_pack_id_packs')),
    sa.ForeignKeyConstraint(['renewal_order_id'], ['orders.id'], name=op.f('fk_subscriptions_renewal_order_id_orders')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_subscriptions')),
    sa.UniqueConstraint('renewal_order_id', name=op.f('uq_subscriptions_renewal_order_id'))
    )
    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_subscriptions_account_id'), ['account_id'], unique=False)

    op.create_table('subscription_periods',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('subscription_id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('ends_at > starts_at', name=op.f('ck_subscription_periods_subscription_period_dates')),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_subscription_periods_order_id_orders')),
    sa.ForeignKeyConstraint(['subscription_id'], ['subscriptions.id'], name=op.f('fk_subscription_periods_subscription_id_subscriptions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_subscription_periods')),
    sa.UniqueConstraint('order_id', name=op.f('uq_subscription_periods_order_id'))
    )
    with op.batch_alter_table('subscription_periods', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_subscription_periods_subscription_id'), ['subscription_id'], unique=False)

    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('subscription_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_tickets_subscription_id_subscriptions'), 'subscriptions', ['subscription_id'], ['id'])


def downgrade():
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_tickets_subscription_id_subscriptions'), type_='foreignkey')
        batch_op.drop_column('subscription_id')

    with op.batch_alter_table('subscription_periods', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_subscription_periods_subscription_id'))
    op.drop_table('subscription_periods')
    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_subscriptions_account_id'))
    op.drop_table('subscriptions')
