"""Who someone is and what they may see: accounts and signed links
(``accounts``), the session's user and the access decorators (``access``),
and the forms of sign-up, login and invoicing (``forms``)."""
