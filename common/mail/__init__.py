"""Mail: the delivery of the outbox's messages, rendered in the reader's
language (``outbox``), and the SMTP or file transport (``transport``)."""
