"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
"""

from alembic import op

revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}


def upgrade() -> None:
    op.execute("""${message}""")


def downgrade() -> None:
    raise NotImplementedError("the ledger is append-only: restore a backup instead")
