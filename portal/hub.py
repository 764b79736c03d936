"""The staff home (``/staff/``): where staff land after logging in and from
the navigation, one card per back-office area their role opens.

An area joins the hub with one line in ``AREAS`` (and its link in the staff
navigation of templates/base.html); ``admin=True`` shows it to admins only.
The view of the area still checks who may open it: the hub only hides
links, it grants nothing."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, render_template
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from common.identity.access import staff_required

bp = Blueprint("staff", __name__, url_prefix="/staff")


@dataclass(frozen=True)
class Area:
    endpoint: str
    title: object        # a lazy string
    description: object  # a lazy string
    admin: bool = False


AREAS = [
    Area("desk.queue", _l("Ticket desk"), _l("Work the tickets, reply, log time and see the charge before saving it.")),
    Area("orders.staff", _l("Payments to confirm"),
         _l("Confirm the bank transfers and cheques that arrived, or cancel what never will.")),
    Area("bank.index", _l("Bank statements"),
         _l("Import the bank's statement: transfers that carry an order's reference are confirmed; assign or set "
            "aside the rest.")),
    Area("clients.index", _l("Clients"), _l("Find an account: its people, balances, orders, invoices and tickets.")),
    Area("quotes.staff", _l("Quotes"),
         _l("Requests for packs priced on request: price them and send the quote; the client accepts it online.")),
    Area("service_levels.show", _l("Service levels"),
         _l("Opening hours, holidays and the first-response target of each criticality."), admin=True),
    Area("catalogue_editor.index", _l("Catalogue editor"),
         _l("Catalogues, billing policies and packs in three languages: edit, publish, retire, import, export."),
         admin=True),
    Area("reports.index", _l("Reports"),
         _l("Sales, unused credit owed and when it expires, time logged, overage and ratings, month by month."),
         admin=True),
    Area("team.index", _l("Team"), _l("Invite staff, change their role, deactivate or reactivate them."),
         admin=True),
    Area("team.audit", _l("Audit log"), _l("Every admin action: who did what, to what, before and after."),
         admin=True),
    Area("notifications.staff", _l("Outgoing mail"), _l("Messages that could not be delivered, to send again.")),
    Area("auth.staff_logins", _l("Staff logins"), _l("Every staff login and failed login, with where from."),
         admin=True),
    Area("notifications.preferences", _l("Email preferences"), _l("Choose which messages you receive.")),
    Area("shop.catalogue", _l("See the public catalogue"), _l("The packs as visitors and clients see them.")),
]


def areas_for(user) -> list[Area]:
    """The areas ``user``'s role opens, in the hub's order."""
    return [area for area in AREAS if user.is_admin or not area.admin]


@bp.get("/")
@staff_required
def hub():
    return render_template("staff/hub.html", areas=areas_for(current_user))
