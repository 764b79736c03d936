"""Stub: replaced by the mail module (SMTP or instance/mail/)."""


def init_app(app) -> None:
    pass
