"""versions of policies and packs, and draft packs

Terms already sold never change: editing a policy or a pack that lots,
tickets or orders point at makes a new version under the same slug, and the
old row keeps serving what was sold under it. A slug is therefore unique per
version, and once among the current rows. A pack the editor creates starts as
a draft (published_at empty); every pack that exists was published.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06 01:45:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade():
    for table in ('policies', 'packs'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('version', sa.Integer(), server_default='1', nullable=False))
            batch_op.add_column(sa.Column('superseded_at', sa.DateTime(timezone=True), nullable=True))
            if table == 'packs':
                batch_op.add_column(sa.Column('published_at', sa.DateTime(timezone=True), nullable=True))
            batch_op.drop_constraint(f'uq_{table}_slug', type_='unique')
            batch_op.create_unique_constraint(f'uq_{table}_slug_version', ['slug', 'version'])
            batch_op.create_check_constraint(f'{table[:-1] if table == "packs" else "policy"}_version',
                                             'version >= 1')
            if table == 'packs':
                batch_op.create_check_constraint('pack_superseded_retired',
                                                 'superseded_at IS NULL OR retired_at IS NOT NULL')
        op.create_index(f'uq_{table}_current_slug', table, ['slug'], unique=True,
                        sqlite_where=sa.text('superseded_at IS NULL'),
                        postgresql_where=sa.text('superseded_at IS NULL'))
    # Every pack loaded so far was on sale (or retired after being on sale).
    op.execute("UPDATE packs SET published_at = CURRENT_TIMESTAMP")


def downgrade():
    for table in ('packs', 'policies'):
        # Older versions cannot share a slug without these columns: they go
        # only when nothing was versioned (the downgrade fails otherwise).
        op.drop_index(f'uq_{table}_current_slug', table_name=table)
        with op.batch_alter_table(table, schema=None) as batch_op:
            if table == 'packs':
                batch_op.drop_constraint('pack_superseded_retired', type_='check')
                batch_op.drop_column('published_at')
            batch_op.drop_constraint(f'{table[:-1] if table == "packs" else "policy"}_version',
                                     type_='check')
            batch_op.drop_constraint(f'uq_{table}_slug_version', type_='unique')
            batch_op.create_unique_constraint(f'uq_{table}_slug', ['slug'])
            batch_op.drop_column('superseded_at')
            batch_op.drop_column('version')
