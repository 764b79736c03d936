"""The credit ledger: lots, entries, operations, overages (``models``), the
charge rule (``rules``, pure), the services that move units (``services``),
the statement read from the entries (``statement``) and the invariants
checked across the database (``verify``). It records what happened; what
follows is started by the service that called it."""
