"""Forfait's rules and services, with no Flask: what a provider sells, the credit
ledger, orders and their money, the ticket desk, subscriptions, and the
messages owed. Grouped by what each sub-package holds; ``billing.clock``,
``billing.errors`` and ``billing.transaction`` are shared by all."""
