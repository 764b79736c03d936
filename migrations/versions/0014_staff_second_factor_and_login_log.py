"""staff second factor (TOTP) and login log

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 00:20:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('totp_secret', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('totp_last_step', sa.Integer(), nullable=True))
    op.create_table('login_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('address', sa.String(length=64), nullable=False),
    sa.Column('user_agent', sa.String(length=300), nullable=False),
    sa.Column('outcome', sa.String(length=20), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_login_events_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_login_events'))
    )
    with op.batch_alter_table('login_events', schema=None) as batch_op:
        batch_op.create_index('ix_login_events_at', ['at'], unique=False)


def downgrade():
    with op.batch_alter_table('login_events', schema=None) as batch_op:
        batch_op.drop_index('ix_login_events_at')
    op.drop_table('login_events')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('totp_last_step')
        batch_op.drop_column('totp_secret')
