"""Client organisations and the people who log in (``models``), and an
account's invoicing details (``invoicing``)."""
