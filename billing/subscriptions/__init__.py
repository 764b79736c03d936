"""The unlimited-tickets subscription (seed 004): subscriptions and their
periods (``models``) and the rules of covering, cancelling and renewing
(``services``)."""
