"""Quotes for packs priced on request: asked for by a visitor or a client,
priced and sent by staff, accepted by the client as an order (models,
services)."""
