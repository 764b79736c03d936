"""The ``flask …`` commands, on the top floor beside app.py: catalogue and
billing (``cli``), jobs, ledger, orders, Stripe reconciliation, demo data.
Nothing the web layers import imports them."""
