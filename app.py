"""The Forfait application factory: wires billing, shop and portal together."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from dotenv import load_dotenv
from flask import Flask, has_request_context
from werkzeug.middleware.proxy_fix import ProxyFix

from common import config as settings


class Forfait(Flask):
    """Flask whose absolute links come from the configured public address.

    Inside a request, Flask builds ``url_for(..., _external=True)`` from the
    request's Host header, which whoever sends the request chooses: a reset
    link mailed from ``Host: evil.example`` would point there. Here every
    absolute link (mail, PDF, Stripe's return address) is SERVER_NAME with
    PREFERRED_URL_SCHEME, whatever the request says; only without a
    SERVER_NAME (development and tests) does the request's host serve."""

    def url_for(self, /, endpoint: str, *, _anchor: str | None = None, _method: str | None = None,
                _scheme: str | None = None, _external: bool | None = None, **values: Any) -> str:
        server = self.config.get("SERVER_NAME")
        if server and has_request_context() and (_external or _scheme):
            path = super().url_for(endpoint, _anchor=_anchor, _method=_method, **values)
            return f"{_scheme or self.config['PREFERRED_URL_SCHEME']}://{server}{path}"
        return super().url_for(endpoint, _anchor=_anchor, _method=_method, _scheme=_scheme, _external=_external,
                               **values)


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    # FORFAIT_INSTANCE_PATH lets one checkout serve several instances (and tests
    # run without touching the developer's instance/).
    app = Forfait(__name__, instance_relative_config=True, instance_path=os.environ.get("FORFAIT_INSTANCE_PATH"))
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    # Before any route: every <int:id> takes ASCII digits up to 2^31-1 only.
    from common import safety

    safety.install_converters(app)

    # Defaults, then an optional .env, then the environment, then the test mapping.
    app.config.from_mapping(settings.defaults(app.instance_path))
    if test_config is None:
        load_dotenv(Path(app.root_path) / ".env", override=False)
        names = set(app.config) | {"SECRET_KEY", "DATABASE_URL"}
        app.config.update({name: os.environ[name] for name in names if name in os.environ})
        app.config.from_prefixed_env("FORFAIT")
    else:
        app.config.update(test_config)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = settings.secret_key(app.instance_path)
    try:
        settings.normalise(app.config)
        settings.public_address(app.config, development=app.debug or app.testing)
    except settings.ConfigError as error:
        # One clear line instead of a traceback: the operator knows what to fix.
        raise SystemExit(f"forfait: configuration error: {error}") from None

    if app.config["PROXY_COUNT"]:
        # Behind that many reverse proxies, X-Forwarded-For/-Proto/-Host/-Prefix
        # are theirs; without the setting they are whatever the client wrote.
        count = app.config["PROXY_COUNT"]
        # Flask's documented way to wrap the WSGI app; mypy sees wsgi_app as a
        # method and refuses the assignment, hence the one ignore of the code.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=count, x_proto=count, x_host=count, x_port=count,  # type: ignore[method-assign]
                                x_prefix=count)

    from commands import cli
    from common import errors, i18n, tickets
    from common.extensions import babel, csrf, db, htmx, limiter, login_manager, migrate

    db.init_app(app)
    # Batch mode lets SQLite, which cannot ALTER most things, follow later migrations.
    migrate.init_app(app, db, directory=str(Path(app.root_path) / "migrations"), render_as_batch=True)
    csrf.init_app(app)
    babel.init_app(app, locale_selector=i18n.select_locale, timezone_selector=i18n.select_timezone)
    htmx.init_app(app)
    limiter.init_app(app)
    from common.identity import throttle

    throttle.init_app(app)
    if app.config["RATELIMIT_STORAGE_URI"].startswith("memory://") and settings.several_processes():
        app.logger.warning(
            "RATELIMIT_STORAGE_URI is memory://, and several processes serve: each keeps its own count of failed "
            "logins, so each lets the whole limit through. Point RATELIMIT_STORAGE_URI at Redis "
            "(redis://127.0.0.1:6379) for one count.")
    login_manager.init_app(app)
    i18n.init_app(app)
    errors.init_app(app)
    safety.init_app(app)
    tickets.init_app(app)
    cli.init_app(app)
    from common.mail import delivery

    delivery.init_app(app)

    from commands import demo
    from portal.account_actions import bp as account_actions_bp
    from portal.auth import bp as auth_bp
    from portal.bank import bp as bank_bp
    from portal.catalogue_editor import bp as catalogue_editor_bp
    from portal.clients import bp as clients_bp
    from portal.desk import bp as desk_bp
    from portal.hub import bp as hub_bp
    from portal.notifications import bp as notifications_bp
    from portal.orders import bp as orders_bp
    from portal.overages import bp as overages_bp
    from portal.pool import bp as pool_bp
    from portal.quotes import bp as quotes_bp
    from portal.reports import bp as reports_bp
    from portal.service_levels import bp as service_levels_bp
    from portal.staff_orders import bp as staff_orders_bp
    from portal.statement import bp as statement_bp
    from portal.subscription import bp as subscription_bp
    from portal.team import bp as team_bp
    from portal.tickets import bp as tickets_bp
    from portal.views import bp as portal_bp
    from shop.checkout import bp as checkout_bp
    from shop.quotes import bp as quote_request_bp
    from shop.service import bp as service_bp
    from shop.stripe_webhook import bp as stripe_bp
    from shop.views import bp as shop_bp

    demo.init_app(app)
    app.register_blueprint(shop_bp)
    app.register_blueprint(service_bp)
    app.register_blueprint(auth_bp)
    app.register_blueprint(portal_bp)
    app.register_blueprint(statement_bp)
    app.register_blueprint(checkout_bp)
    app.register_blueprint(stripe_bp)
    app.register_blueprint(orders_bp)
    app.register_blueprint(tickets_bp)
    app.register_blueprint(pool_bp)
    app.register_blueprint(desk_bp)
    app.register_blueprint(hub_bp)
    app.register_blueprint(team_bp)
    app.register_blueprint(service_levels_bp)
    app.register_blueprint(overages_bp)
    app.register_blueprint(notifications_bp)
    app.register_blueprint(subscription_bp)
    app.register_blueprint(quotes_bp)
    app.register_blueprint(staff_orders_bp)
    app.register_blueprint(quote_request_bp)
    app.register_blueprint(bank_bp)
    app.register_blueprint(clients_bp)
    app.register_blueprint(catalogue_editor_bp)
    app.register_blueprint(account_actions_bp)
    app.register_blueprint(reports_bp)
    return app
