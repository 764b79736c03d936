"""What Forfait owes people to hear: the outbox of messages written in the
transaction of the event that causes them (``outbox``), and the low-balance
and expiry warnings (``alerts``). Nothing here sends anything."""
