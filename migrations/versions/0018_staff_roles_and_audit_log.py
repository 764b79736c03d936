"""staff roles (admin, agent) and the audit log

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06 01:40:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None

CLIENT_ROLES = "role IS NULL OR role IN ('owner', 'member')"
ROLES = ("(is_staff AND role IS NOT NULL AND role IN ('admin', 'agent')) "
         "OR (NOT is_staff AND (role IS NULL OR role IN ('owner', 'member')))")


def upgrade():
    # Until now every staff member could do everything: they stay admins.
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_users_user_role'), type_='check')
    op.execute(sa.text("UPDATE users SET role = 'admin' WHERE is_staff"))
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.create_check_constraint('user_role', sa.text(ROLES))
    op.create_table('audit_entries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('action', sa.String(length=60), nullable=False),
    sa.Column('subject_kind', sa.String(length=40), nullable=False),
    sa.Column('subject_id', sa.Integer(), nullable=True),
    sa.Column('before', sa.JSON(), nullable=True),
    sa.Column('after', sa.JSON(), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['actor_id'], ['users.id'], name=op.f('fk_audit_entries_actor_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_entries'))
    )
    with op.batch_alter_table('audit_entries', schema=None) as batch_op:
        batch_op.create_index('ix_audit_entries_at', ['at'], unique=False)
        batch_op.create_index('ix_audit_entries_actor', ['actor_id', 'at'], unique=False)
        batch_op.create_index('ix_audit_entries_subject', ['subject_kind', 'subject_id', 'at'], unique=False)


def downgrade():
    with op.batch_alter_table('audit_entries', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_entries_subject')
        batch_op.drop_index('ix_audit_entries_actor')
        batch_op.drop_index('ix_audit_entries_at')
    op.drop_table('audit_entries')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_users_user_role'), type_='check')
    op.execute(sa.text("UPDATE users SET role = NULL WHERE is_staff"))
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.create_check_constraint('user_role', sa.text(CLIENT_ROLES))
