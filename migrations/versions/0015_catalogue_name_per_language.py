"""a catalogue's name in each language

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 00:55:00

"""
import json

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None

LANGUAGES = ("en", "fr", "es")


def upgrade():
    # A name typed once (a brand) reads the same in every language until the
    # preset is loaded again with its translations.
    with op.batch_alter_table('catalogues', schema=None) as batch_op:
        batch_op.add_column(sa.Column('name_text', sa.JSON(), nullable=True))
    connection = op.get_bind()
    catalogues = sa.table('catalogues', sa.column('id', sa.Integer), sa.column('name', sa.String),
                          sa.column('name_text', sa.JSON))
    for row in connection.execute(sa.select(catalogues.c.id, catalogues.c.name)).all():
        connection.execute(catalogues.update().where(catalogues.c.id == row.id)
                           .values(name_text={lang: row.name for lang in LANGUAGES}))
    with op.batch_alter_table('catalogues', schema=None) as batch_op:
        batch_op.drop_column('name')
        batch_op.alter_column('name_text', new_column_name='name', nullable=False)


def downgrade():
    with op.batch_alter_table('catalogues', schema=None) as batch_op:
        batch_op.add_column(sa.Column('name_plain', sa.String(length=120), nullable=True))
    connection = op.get_bind()
    catalogues = sa.table('catalogues', sa.column('id', sa.Integer), sa.column('name', sa.JSON),
                          sa.column('name_plain', sa.String), sa.column('language', sa.String))
    for row in connection.execute(sa.select(catalogues.c.id, catalogues.c.name, catalogues.c.language)).all():
        names = row.name if isinstance(row.name, dict) else json.loads(row.name)
        connection.execute(catalogues.update().where(catalogues.c.id == row.id)
                           .values(name_plain=names.get(row.language) or next(iter(names.values()))))
    with op.batch_alter_table('catalogues', schema=None) as batch_op:
        batch_op.drop_column('name')
        batch_op.alter_column('name_plain', new_column_name='name', nullable=False)
