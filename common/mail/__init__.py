"""Mail: the delivery of the outbox's messages, rendered in the reader's
language (``delivery``), and the SMTP or file transport (``transport``)."""
