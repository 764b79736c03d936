"""staff are mailed each quote asked for (outbox kind quote_requested_staff),
a topic they may switch off (quote_requests)

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-06 04:50:00.000000

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0023'
down_revision = '0022'
branch_labels = None
depends_on = None

OUTBOX_KINDS = ("kind IN ('verify_email', 'reset_password', 'invitation', 'order_received', 'payment_confirmed', "
                "'order_reminder', 'order_cancelled', 'trial_started', 'low_balance', 'expiring', 'overage_request', "
                "'ticket_opened', 'staff_reply', 'ticket_resolved', 'ticket_opened_staff', 'payment_partial', "
                "'quote_sent'")
TOPICS = ("topic IN ('orders', 'low_balance', 'expiring', 'overage', 'ticket_opened', 'replies', 'resolved', "
          "'new_tickets'")


def upgrade():
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_outbox_outbox_kind'), type_='check')
        batch_op.create_check_constraint(op.f('ck_outbox_outbox_kind'), OUTBOX_KINDS + ", 'quote_requested_staff')")
    with op.batch_alter_table('notification_preferences', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_notification_preferences_preference_topic'), type_='check')
        batch_op.create_check_constraint(op.f('ck_notification_preferences_preference_topic'),
                                         TOPICS + ", 'quote_requests')")


def downgrade():
    op.execute("DELETE FROM outbox WHERE kind = 'quote_requested_staff'")
    op.execute("DELETE FROM notification_preferences WHERE topic = 'quote_requests'")
    with op.batch_alter_table('notification_preferences', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_notification_preferences_preference_topic'), type_='check')
        batch_op.create_check_constraint(op.f('ck_notification_preferences_preference_topic'), TOPICS + ")")
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_outbox_outbox_kind'), type_='check')
        batch_op.create_check_constraint(op.f('ck_outbox_outbox_kind'), OUTBOX_KINDS + ")")
