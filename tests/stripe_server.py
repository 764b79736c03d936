"""A local server that answers like Stripe, for the few endpoints Forfait
calls, so that tests run the real ``stripe`` library (pointed here by
STRIPE_API_BASE) without the network and without mocks.

    POST /v1/checkout/sessions          create (the same Idempotency-Key gives the same session)
    GET  /v1/checkout/sessions/{id}     retrieve (expand: payment_intent)
    GET  /v1/checkout/sessions          list, by payment_intent
    GET  /v1/charges/{id}               retrieve (expand: refunds)
    POST /v1/refunds                    create (idempotent too)
    GET  /pay/{id}                      the hosted payment page the buyer is sent to;
    POST /pay/{id}                      its button: paid, then back to success_url

Every API request is recorded (``requests``) for tests to check what was
asked; ``pay``, ``complete_unpaid``, ``async_succeed``, ``async_fail``,
``expire`` and ``refund`` play what happens on Stripe's side, and ``event``
and ``sign`` make a webhook delivery signed with the real scheme.

Use it through the ``stripe_server`` fixture.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from html import escape
from typing import Any

import pytest
from werkzeug.routing import Map, Rule
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

SECRET_KEY = "sk_test_forfait"
WEBHOOK_SECRET = "whsec_test_forfait"


def sign(payload: str, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """The Stripe-Signature header: ``t=<unix time>,v1=<HMAC-SHA256 of "t.payload">``."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def decode_form(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's form encoding back to JSON: ``a[b][0][c]=1`` → ``{"a": {"b": [{"c": "1"}]}}``."""
    tree: dict[str, Any] = {}
    for key, value in pairs:
        parts = re.findall(r"[^\[\]]+", key)
        node = tree
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return _lists(tree)


def _lists(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    if node and all(key.isdigit() for key in node):
        return [_lists(node[key]) for key in sorted(node, key=int)]
    return {key: _lists(value) for key, value in node.items()}


@dataclass
class Recorded:
    method: str
    path: str
    params: dict[str, Any]
    idempotency_key: str | None
    api_key: str | None


@dataclass
class StripeServer:
    url: str = ""
    requests: list[Recorded] = field(default_factory=list)
    sessions: dict[str, dict] = field(default_factory=dict)
    payment_intents: dict[str, dict] = field(default_factory=dict)
    charges: dict[str, dict] = field(default_factory=dict)
    refunds: dict[str, dict] = field(default_factory=dict)
    # Answer every API request with this status (a Stripe outage), when set.
    failing: int | None = None

    def __post_init__(self) -> None:
        self._serial = itertools.count(1)
        self._lock = threading.Lock()
        self._replies: dict[str, tuple[dict, int, dict]] = {}  # idempotency key → (params, status, body)
        self._routes = Map([
            Rule("/v1/checkout/sessions", methods=["POST"], endpoint="create_session"),
            Rule("/v1/checkout/sessions", methods=["GET"], endpoint="list_sessions"),
            Rule("/v1/checkout/sessions/<id>", methods=["GET"], endpoint="get_session"),
            Rule("/v1/charges/<id>", methods=["GET"], endpoint="get_charge"),
            Rule("/v1/refunds", methods=["POST"], endpoint="create_refund"),
            Rule("/pay/<id>", methods=["GET", "POST"], endpoint="page"),
        ])

    # --- WSGI -------------------------------------------------------------

    def __call__(self, environ, start_response):
        request = Request(environ)
        adapter = self._routes.bind_to_environ(environ)
        try:
            endpoint, args = adapter.match()
        except Exception:
            return self._error(404, f"Unrecognized request URL ({request.method}: {request.path})")(environ,
                                                                                                   start_response)
        if endpoint == "page":
            return self.page(request, args["id"])(environ, start_response)
        pairs = list(request.form.items(multi=True)) + list(request.args.items(multi=True))
        params = decode_form(pairs)
        auth = request.headers.get("Authorization", "")
        record = Recorded(request.method, request.path, params, request.headers.get("Idempotency-Key"),
                          auth.removeprefix("Bearer ") or None)
        with self._lock:
            self.requests.append(record)
            if self.failing:
                return self._error(self.failing, "Stripe is having a bad day")(environ, start_response)
            if record.api_key != SECRET_KEY:
                return self._error(401, "Invalid API Key provided")(environ, start_response)
            key = record.idempotency_key
            if request.method == "POST" and key in self._replies:
                first_params, status, body = self._replies[key]
                if first_params != params:
                    return self._error(400, "Keys for idempotent requests can only be used with the same "
                                            "parameters they were first used with.")(environ, start_response)
                return self._json(body, status)(environ, start_response)
            status, body = getattr(self, endpoint)(params, **args)
            if request.method == "POST" and key:
                self._replies[key] = (params, status, body)
        return self._json(body, status)(environ, start_response)

    @staticmethod
    def _json(body: dict, status: int = 200) -> Response:
        return Response(json.dumps(body), status=status, content_type="application/json",
                        headers={"Request-Id": "req_local"})

    def _error(self, status: int, message: str) -> Response:
        return self._json({"error": {"type": "invalid_request_error", "message": message}}, status)

    def _id(self, prefix: str) -> str:
        return f"{prefix}_test_{next(self._serial)}"

    # --- API --------------------------------------------------------------

    def create_session(self, params: dict) -> tuple[int, dict]:
        items = params.get("line_items", [])
        session_id = self._id("cs")
        session = {
            "id": session_id, "object": "checkout.session", "livemode": False, "mode": params.get("mode"),
            "status": "open", "payment_status": "unpaid", "payment_intent": None,
            "amount_total": sum(int(item["price_data"]["unit_amount"]) * int(item["quantity"]) for item in items),
            "currency": items[0]["price_data"]["currency"] if items else None,
            "client_reference_id": params.get("client_reference_id"), "metadata": params.get("metadata", {}),
            "customer_email": params.get("customer_email"), "locale": params.get("locale"),
            "success_url": params.get("success_url"), "cancel_url": params.get("cancel_url"),
            "expires_at": int(time.time()) + 24 * 3600, "url": f"{self.url}/pay/{session_id}",
        }
        self.sessions[session_id] = session
        self.sessions[session_id]["_params"] = params
        return 200, self._session(session_id, [])

    def get_session(self, params: dict, id: str) -> tuple[int, dict]:
        if id not in self.sessions:
            return 404, {"error": {"type": "invalid_request_error", "message": f"No such checkout.session: '{id}'"}}
        return 200, self._session(id, params.get("expand", []))

    def list_sessions(self, params: dict) -> tuple[int, dict]:
        found = [self._session(id, []) for id, session in self.sessions.items()
                 if session["payment_intent"] == params.get("payment_intent")]
        return 200, {"object": "list", "data": found, "has_more": False, "url": "/v1/checkout/sessions"}

    def _session(self, id: str, expand: list[str]) -> dict:
        session = {key: value for key, value in self.sessions[id].items() if not key.startswith("_")}
        if "payment_intent" in expand and session["payment_intent"]:
            session["payment_intent"] = dict(self.payment_intents[session["payment_intent"]])
        return session

    def get_charge(self, params: dict, id: str) -> tuple[int, dict]:
        if id not in self.charges:
            return 404, {"error": {"type": "invalid_request_error", "message": f"No such charge: '{id}'"}}
        charge = dict(self.charges[id])
        if "refunds" in params.get("expand", []):
            charge["refunds"] = {"object": "list", "has_more": False, "url": f"/v1/charges/{id}/refunds",
                                 # Newest first, as Stripe lists them.
                                 "data": [r for r in reversed(self.refunds.values()) if r["charge"] == id]}
        return 200, charge

    def create_refund(self, params: dict) -> tuple[int, dict]:
        intent = self.payment_intents.get(params.get("payment_intent", ""))
        if intent is None or not intent["latest_charge"]:
            return 400, {"error": {"type": "invalid_request_error", "message": "This PaymentIntent has no charge"}}
        charge = self.charges[intent["latest_charge"]]
        amount = int(params.get("amount", charge["amount"] - charge["amount_refunded"]))
        if amount > charge["amount"] - charge["amount_refunded"]:
            return 400, {"error": {"type": "invalid_request_error",
                                   "message": f"Refund amount ({amount}) is greater than unrefunded amount"}}
        return 200, self.refund(charge["id"], amount, metadata=params.get("metadata", {}))

    # --- The hosted page ------------------------------------------------------

    def page(self, request: Request, id: str) -> Response:
        session = self.sessions.get(id)
        if session is None:
            return Response("No such session", status=404)
        if request.method == "POST":
            self.pay(id)
            return Response(status=303, headers={"Location": session["success_url"].replace("{CHECKOUT_SESSION_ID}",
                                                                                            id)})
        total = session["amount_total"]
        amount = f"{total // 100}.{total % 100:02d} {session['currency'].upper()}"
        body = f"""<!doctype html><html lang="en"><head><title>Stripe test checkout</title></head><body>
<h1>Test checkout</h1><p id="amount">{escape(amount)}</p><p id="reference">{escape(session['client_reference_id'])}</p>
<form method="post"><button type="submit">Pay</button></form>
<a href="{escape(session['cancel_url'])}">Back</a></body></html>"""
        return Response(body, content_type="text/html; charset=utf-8")

    # --- What happens on Stripe's side ------------------------------------------

    def _intent(self, session: dict, status: str) -> dict:
        if session["payment_intent"] is None:
            intent_id = self._id("pi")
            session["payment_intent"] = intent_id
            self.payment_intents[intent_id] = {
                "id": intent_id, "object": "payment_intent", "amount": session["amount_total"],
                "currency": session["currency"], "latest_charge": None,
                "metadata": session["_params"].get("payment_intent_data", {}).get("metadata", {}),
            }
        intent = self.payment_intents[session["payment_intent"]]
        intent["status"] = status
        if status == "succeeded":
            charge_id = self._id("ch")
            intent["latest_charge"] = charge_id
            self.charges[charge_id] = {
                "id": charge_id, "object": "charge", "amount": intent["amount"], "currency": intent["currency"],
                "amount_refunded": 0, "refunded": False, "paid": True, "payment_intent": intent["id"],
            }
        return intent

    def pay(self, session_id: str, *, amount: int | None = None, currency: str | None = None) -> dict:
        """The buyer paid by card; ``amount``/``currency`` make the session disagree with the order."""
        session = self.sessions[session_id]
        session["amount_total"] = session["amount_total"] if amount is None else amount
        session["currency"] = currency or session["currency"]
        session.update(status="complete", payment_status="paid")
        self._intent(session, "succeeded")
        return session

    def complete_unpaid(self, session_id: str) -> dict:
        """The buyer chose a delayed method (a bank debit): complete, the money not there yet."""
        session = self.sessions[session_id]
        session.update(status="complete", payment_status="unpaid")
        self._intent(session, "processing")
        return session

    def async_succeed(self, session_id: str) -> dict:
        session = self.sessions[session_id]
        session["payment_status"] = "paid"
        self._intent(session, "succeeded")
        return session

    def async_fail(self, session_id: str) -> dict:
        session = self.sessions[session_id]
        self._intent(session, "requires_payment_method")
        return session

    def expire(self, session_id: str) -> dict:
        session = self.sessions[session_id]
        session["status"] = "expired"
        return session

    def refund(self, charge_id: str, amount: int, *, status: str = "succeeded", metadata: dict | None = None) -> dict:
        """A refund, as staff make one in Stripe's dashboard (or Forfait through the API)."""
        charge = self.charges[charge_id]
        refund_id = self._id("re")
        refund = {"id": refund_id, "object": "refund", "amount": amount, "currency": charge["currency"],
                  "charge": charge_id, "payment_intent": charge["payment_intent"], "status": status,
                  "metadata": metadata or {}, "created": int(time.time())}
        self.refunds[refund_id] = refund
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] == charge["amount"]
        return refund

    # --- Webhooks ---------------------------------------------------------------

    def event(self, type: str, object_id: str, *, created: int | None = None) -> str:
        """The JSON of an event about ``object_id`` as it is now (a session or a charge)."""
        if object_id in self.charges:
            snapshot = dict(self.charges[object_id])
        else:
            snapshot = self._session(object_id, [])
        return json.dumps({
            "id": self._id("evt"), "object": "event", "api_version": "2026-02-25.clover",
            "created": created or int(time.time()), "livemode": False, "type": type,
            "data": {"object": snapshot}, "pending_webhooks": 1, "request": {"id": None},
        })

    def created_sessions(self) -> list[Recorded]:
        return [r for r in self.requests if (r.method, r.path) == ("POST", "/v1/checkout/sessions")]


class _Quiet(WSGIRequestHandler):
    def log_request(self, *args, **kwargs) -> None:
        pass


@pytest.fixture
def stripe_server() -> Iterator[StripeServer]:
    """The server on a free loopback port, for one test."""
    server = StripeServer()
    http = make_server("127.0.0.1", 0, server, threaded=True, request_handler=_Quiet)
    server.url = f"http://127.0.0.1:{http.server_port}"
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        http.shutdown()
        thread.join(timeout=5)
