"""No page opens inside another page (issue 12.1).

The body boosts every link and form: htmx loads the next page with AJAX and
swaps it into the body. A boosted element that inherited ``hx-target`` from a
component around it (a desk row, the live balance, the estimator) would swap
a whole page into that component instead. This test reads every page a
visitor, a client and a staff member can reach by following links, and
computes for each boosted link and form where htmx 2 would put the page, by
htmx's own inheritance rules and the config the page declares. Every one must
land in the body."""

from __future__ import annotations

import json
from collections import deque
from datetime import UTC, datetime
from urllib.parse import urljoin, urlsplit
from xml.etree.ElementTree import Element

import pytest
import tinyhtml5
from sqlalchemy import select

from billing.accounts.models import User
from billing.catalogue.models import Pack
from billing.catalogue.offers import load_preset
from billing.desk import services as desk
from billing.desk.models import Ticket
from billing.ledger import services as ledger
from commands.demo import CLIENT, STAFF
from common.extensions import db
from tests.conftest import login

VERBS = ("hx-get", "hx-post", "hx-put", "hx-patch", "hx-delete")
MAX_PAGES = 400


def local(tag) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


class HtmxPage:
    """A parsed page and the htmx 2 rules (htmx.js 2.0: getClosestAttributeValue,
    getTarget, boostElement, getValuesForElement) applied to its elements."""

    def __init__(self, html: str) -> None:
        self.root = tinyhtml5.parse(html)
        self.parent: dict[Element, Element] = {child: el for el in self.root.iter() for child in el}
        self.body = next(el for el in self.root.iter() if local(el.tag) == "body")
        config = next((el.get("content") for el in self.root.iter()
                       if local(el.tag) == "meta" and el.get("name") == "htmx-config"), None)
        self.disable_inheritance = bool(json.loads(config).get("disableInheritance")) if config else False

    def ancestors(self, el: Element):
        while el is not None:
            yield el
            el = self.parent.get(el)

    @staticmethod
    def attr(el: Element, name: str) -> str | None:
        return el.get(name) or el.get("data-" + name)

    def closest(self, el: Element, name: str) -> str | None:
        """htmx's getClosestAttributeValue."""
        for ancestor in self.ancestors(el):
            value = self.attr(ancestor, name)
            if ancestor is not el:
                inherit = self.attr(ancestor, "hx-inherit")
                if self.disable_inheritance:
                    if not (inherit and (inherit == "*" or name in inherit.split())):
                        continue
                else:
                    disinherit = self.attr(ancestor, "hx-disinherit")
                    if disinherit and (disinherit == "*" or name in disinherit.split()):
                        return None
            if value:
                return value
        return None

    def boosted(self):
        """The links and forms htmx boosts: no verb of their own, hx-boost true
        where they stand, a same-page link or a form that is not a dialog."""
        for el in self.body.iter():
            tag = local(el.tag)
            if tag not in ("a", "form") or any(self.attr(el, verb) for verb in VERBS):
                continue
            if self.closest(el, "hx-boost") != "true":
                continue
            if tag == "a":
                href = el.get("href")
                if not href or href.startswith("#") or urlsplit(href).netloc or el.get("target", "_self") != "_self":
                    continue
                if href.startswith(("mailto:", "tel:", "javascript:")):
                    continue
            elif (el.get("method") or "").lower() == "dialog":
                continue
            yield el

    def where_it_swaps(self, el: Element) -> str | None:
        """None when htmx swaps the answer into the body, else what it swaps into."""
        target = self.closest(el, "hx-target")
        if target == "this":
            holder = next(a for a in self.ancestors(el) if self.attr(a, "hx-target") is not None)
            if holder is not self.body:
                return f"hx-target=this of <{local(holder.tag)} id={holder.get('id')!r} class={holder.get('class')!r}>"
        elif target and target != "body":
            return f"hx-target={target!r}"
        select_ = self.closest(el, "hx-select")
        if select_:
            return f"hx-select={select_!r}"
        # hx-headers merge from every ancestor whatever the inheritance rules:
        # a component's headers (the balance's If-None-Match) must not ride on its links.
        for ancestor in self.ancestors(self.parent.get(el)):
            if ancestor is not self.body and self.attr(ancestor, "hx-headers"):
                return f"hx-headers of <{local(ancestor.tag)} id={ancestor.get('id')!r}>"
        return None


def describe(el: Element) -> str:
    what = el.get("href") or el.get("action")
    return f"<{local(el.tag)} {what!r}> {''.join(el.itertext()).split()[:8]}"


@pytest.fixture
def world(app, runner):
    """Every catalogue; the demo's staff member and client, with their history;
    an overage awaiting the demo client's answer on a Digitale Artiste ticket."""
    for args in (["catalogue", "load", "demo"], ["demo", "users"]):
        result = runner.invoke(args=args)
        assert result.exit_code == 0, result.output
    now = datetime.now(UTC)
    with app.app_context():
        for preset in ("toopixel", "webservice", "digitale", "innova", "itsupport"):
            load_preset(db.session, preset)
        owner = db.session.scalar(select(User).where(User.email == CLIENT["email"]))
        staff = db.session.scalar(select(User).where(User.email == STAFF["email"]))
        pack = db.session.scalar(select(Pack).where(Pack.slug == "digitale-3h"))
        ledger.grant(db.session, owner.account, pack, key="digitale-3h", now=now)
        ticket = desk.open_ticket(db.session, owner.account, owner, "New page", "Please.", now=now,
                                  policy=pack.policy, kind="production")
        desk.log_time(db.session, db.session.get(Ticket, ticket.id), staff, 200, True, "work", "ask-200", now)


def crawl(client, start: list[str]) -> dict[str, HtmxPage]:
    """Every HTML page reachable from ``start`` by following links, by URL,
    parsed (once: parsing takes as long as serving the page)."""
    pages: dict[str, HtmxPage] = {}
    queue = deque(start)
    seen = set(start)
    while queue and len(pages) < MAX_PAGES:
        url = queue.popleft()
        response = client.get(url)
        if response.status_code != 200 or response.mimetype != "text/html":
            continue
        page = pages[url] = HtmxPage(response.get_data(as_text=True))
        for a in page.body.iter():
            href = a.get("href") if local(a.tag) == "a" else None
            if not href or href.startswith(("#", "mailto:", "tel:")) or urlsplit(href).netloc:
                continue
            found = urlsplit(urljoin(url, href))
            target = found.path + (f"?{found.query}" if found.query else "")
            if found.path.startswith("/static/") or target in seen:
                continue
            seen.add(target)
            queue.append(target)
    return pages


@pytest.mark.parametrize("who", ["anonymous", "client", "staff"])
def test_every_boosted_link_and_form_swaps_into_the_body(client, world, who):
    if who != "anonymous":
        person = CLIENT if who == "client" else STAFF
        assert login(client, person["email"], person["password"]).status_code == 302
    pages = crawl(client, ["/", "/portal/" if who == "client" else "/desk/" if who == "staff" else "/login"])
    assert len(pages) > {"anonymous": 10, "client": 20, "staff": 20}[who], sorted(pages)
    wrong = []
    checked = 0
    for url, page in pages.items():
        for el in page.boosted():
            checked += 1
            where = page.where_it_swaps(el)
            if where:
                wrong.append(f"{url}: {describe(el)} swaps into {where}")
    assert checked > len(pages)
    assert not wrong, "\n".join(sorted(set(wrong)))


@pytest.mark.parametrize("who", ["client", "staff"])
def test_no_attribute_is_written_with_an_underscore(client, world, who):
    """htmx reads hx-get, never hx_get (issue 12.2: a keyword argument of a
    form field reached the page as typed, and the kinds never followed the
    balance chosen)."""
    person = CLIENT if who == "client" else STAFF
    assert login(client, person["email"], person["password"]).status_code == 302
    pages = crawl(client, ["/portal/tickets/new" if who == "client" else "/desk/", "/"])
    assert "/portal/tickets/new" in pages or who == "staff"
    wrong = {f"{url}: <{local(el.tag)} {name}=...>" for url, page in pages.items()
             for el in page.root.iter() for name in el.keys()
             if name.startswith(("hx_", "data_", "aria_"))}
    assert not wrong, "\n".join(sorted(wrong))


def test_the_rules_of_this_test_are_htmx_s():
    """The reading above on the two cases that nested pages: a link in a
    self-swapping row, with and without inheritance disabled."""
    row = ('<tr id="row" hx-target="this" hx-swap="outerHTML"><td><a href="/desk/tickets/1">#1</a>'
           '<form action="/assign" hx-post="/assign"></form></td></tr>')
    html = '<html><head>{meta}</head><body hx-boost="true"{inherit}><table>{row}</table></body></html>'
    inheriting = HtmxPage(html.format(meta="", inherit="", row=row))
    [link] = inheriting.boosted()  # the form has its own verb: not boosted
    assert inheriting.where_it_swaps(link) == "hx-target=this of <tr id='row' class=None>"
    meta = '<meta name="htmx-config" content=\'{"disableInheritance": true}\'>'
    explicit = HtmxPage(html.format(meta=meta, inherit=' hx-inherit="hx-boost"', row=row))
    [link] = explicit.boosted()
    assert explicit.where_it_swaps(link) is None
    # Inheritance off without the body handing hx-boost down: nothing is boosted.
    assert list(HtmxPage(html.format(meta=meta, inherit="", row=row)).boosted()) == []
