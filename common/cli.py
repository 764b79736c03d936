"""Stub: replaced by the command-line groups."""


def init_app(app) -> None:
    pass
