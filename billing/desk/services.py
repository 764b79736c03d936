"""The ticket desk's services: tickets, their thread and files, the time staff
log and what it costs, ratings, and the people of an account's pool.

Like billing.ledger, every write service receives the session, takes ``now``
(timezone-aware) and runs as one unit of work (billing.transaction.atomic):
it commits once on success; on an error it rolls back and raises, so nothing
is half-written. No Flask here: settings (attachment
limits and folder, invitation lifetime) come in as arguments. Errors a user
can cause raise DeskError (or billing.ledger's LedgerError from the ledger)
whose message is a gettext message id, marked with ``N_`` and filled with
its ``params``: a view shows ``_(error.message, **error.params)`` in the
user's language; ``field`` names the form field to blame.

Who may act is checked here too (a client only within their account, staff
anywhere) so that the command line and the views share one rule. Views still
load every object through one loader that aborts with 404.
"""

from __future__ import annotations

import hashlib
import mimetypes
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import nh3
from sqlalchemy import case, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from billing.accounts.models import Account, User
from billing.catalogue.models import Policy
from billing.clock import utc
from billing.desk.models import (
    CRITICALITIES,
    INVITATION_ROLES,
    TICKET_STATUSES,
    Attachment,
    Invitation,
    Ticket,
    TicketMessage,
    TimeEntry,
)
from billing.errors import N_, BillingError
from billing.ledger import services as ledger
from billing.ledger.models import Lot
from billing.ledger.rules import Charge, Gettext, Ngettext, english_plural, explain, unit_label, units
from billing.ledger.services import LedgerError, NotAllowed
from billing.notifications import outbox
from billing.orders import overage_bills
from billing.subscriptions import services as subscriptions
from billing.subscriptions.models import Subscription
from billing.text import single_line, without_bidi_controls, write_private
from billing.transaction import atomic, in_unit_of_work

MAX_SUBJECT = 200
MAX_BODY = 20_000
MAX_NOTE = 2_000
# One time entry is a day's work at most: a typo of 600 for 60 should not pass.
MAX_ENTRY_MINUTES = 24 * 60

# Statuses a ticket is worked in; the others are done.
ACTIVE_STATUSES = ("open", "in_progress", "waiting")
DONE_STATUSES = ("resolved", "closed")
# The staff queue's order: most critical first (then oldest).
CRITICALITY_RANK = case({c: i for i, c in enumerate(reversed(CRITICALITIES))}, value=Ticket.criticality)


class DeskError(BillingError):
    """The desk refused a request. ``message`` is a gettext message id with
    ``params`` (a view shows ``_(message, **params)``; ``str()`` is the
    English sentence); ``field`` names the form field to blame, if any."""



# --- Sanitising -------------------------------------------------------------

# What a message may keep: text formatting, lists, quotes, code and links.
ALLOWED_TAGS = {"a", "b", "blockquote", "br", "code", "em", "i", "li", "ol", "p", "pre", "strong", "u", "ul"}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}}


def sanitise(body: str) -> str:
    """HTML safe to show to anybody: nh3 keeps the tags above, drops scripts,
    event handlers, styles and ``javascript:`` links, and closes what is open.
    Plain text comes out as it went in (with ``<`` and ``&`` escaped); the
    thread shows line breaks as typed (white-space: pre-wrap)."""
    return nh3.clean(body, tags=ALLOWED_TAGS, attributes=ALLOWED_ATTRIBUTES,
                     url_schemes={"http", "https", "mailto"}, link_rel="noopener noreferrer nofollow").strip()


# --- Who may do what --------------------------------------------------------

def _active(user: User | None) -> User:
    if user is None or user.removed_at is not None:
        raise NotAllowed("this user has no access any more")
    return user


def opened_by_staff(session: Session, ticket: Ticket) -> User | None:
    """The staff member who opened the ticket on the client's behalf (its
    first message is theirs), or None when the client opened it."""
    author = session.scalar(select(User).join(TicketMessage, TicketMessage.author_id == User.id)
                            .where(TicketMessage.ticket_id == ticket.id).order_by(TicketMessage.id).limit(1))
    return author if author is not None and author.is_staff else None


def may_see(user: User, ticket: Ticket) -> bool:
    """Staff see every ticket; a client the tickets of their account."""
    return user.removed_at is None and (user.is_staff or user.account_id == ticket.account_id)


def _check_sees(user: User, ticket: Ticket) -> None:
    if not may_see(_active(user), ticket):
        raise NotAllowed("this ticket belongs to another account")


def _check_staff(user: User | None) -> User:
    active = _active(user)
    if not active.is_staff:
        raise NotAllowed("only staff do this")
    return active


def _check_owner(user: User | None, account: Account) -> User:
    user = _active(user)
    if not (user.is_owner and user.account_id == account.id):
        raise NotAllowed("only an owner of the account does this")
    return user


# --- Reading ----------------------------------------------------------------

def cost(ticket: Ticket) -> Charge:
    """What the ticket costs so far and every fact to explain it
    (rules.explain): nothing under a subscription, whatever the time."""
    return _cost(ticket, ticket.billable_minutes)


def _cost(ticket: Ticket, minutes: int) -> Charge:
    charge = units(ticket.policy.rule(), minutes, ticket.kind)
    return replace(charge, units=0) if ticket.subscription_id is not None else charge


def describe_cost(ticket: Ticket, gettext: Gettext = lambda s: s, ngettext: Ngettext = english_plural) -> str:
    """``27 min → 3 blocks of 10 min → 3 credits``, or ``95 min → covered by
    the subscription``."""
    if ticket.subscription_id is not None:
        return " → ".join([gettext("%(num)d min") % {"num": ticket.billable_minutes},
                           gettext("covered by the subscription")])
    return explain(cost(ticket), gettext, ngettext)


def tickets(session: Session, account_id: int | None, *, status: str | None = None,
            opened_by_id: int | None = None, limit: int = 200) -> list[Ticket]:
    """An account's tickets (every account's for None), most recently active first."""
    query = select(Ticket)
    if account_id is not None:
        query = query.where(Ticket.account_id == account_id)
    if status:
        query = query.where(Ticket.status == status)
    if opened_by_id:
        query = query.where(Ticket.opened_by_id == opened_by_id)
    order = func.coalesce(Ticket.updated_at, Ticket.created_at)
    return list(session.scalars(query.order_by(order.desc(), Ticket.id.desc()).limit(limit)))


def queue(session: Session, *, statuses: Sequence[str] = ACTIVE_STATUSES, account_id: int | None = None,
          assigned_to_id: int | None = None, unassigned: bool = False, recent: bool = False,
          limit: int = 200) -> list[Ticket]:
    """The staff queue: tickets being worked, most critical first, then
    oldest (``recent``: the latest activity first, for what was done);
    optionally one account's, one staff member's or nobody's."""
    query = select(Ticket).where(Ticket.status.in_(statuses))
    if account_id is not None:
        query = query.where(Ticket.account_id == account_id)
    if unassigned:
        query = query.where(Ticket.assigned_to_id.is_(None))
    elif assigned_to_id is not None:
        query = query.where(Ticket.assigned_to_id == assigned_to_id)
    if recent:
        latest = func.coalesce(Ticket.updated_at, Ticket.created_at)
        return list(session.scalars(query.order_by(latest.desc(), Ticket.id.desc()).limit(limit)))
    return list(session.scalars(query.order_by(CRITICALITY_RANK, Ticket.created_at, Ticket.id).limit(limit)))


def thread(session: Session, ticket: Ticket, *, internal: bool) -> list[TicketMessage]:
    """The ticket's messages, oldest first; staff notes only with ``internal``."""
    query = select(TicketMessage).where(TicketMessage.ticket_id == ticket.id)
    if not internal:
        query = query.where(TicketMessage.internal.is_(False))
    return list(session.scalars(query.order_by(TicketMessage.id)))


def time_entries(session: Session, ticket: Ticket) -> list[TimeEntry]:
    return list(session.scalars(select(TimeEntry).where(TimeEntry.ticket_id == ticket.id).order_by(TimeEntry.id)))


def pool(session: Session, account: Account) -> list[User]:
    """The account's users who still have access."""
    return list(session.scalars(
        select(User).where(User.account_id == account.id, User.removed_at.is_(None)).order_by(User.id)
    ))


def invitations(session: Session, account: Account, *, now: datetime) -> list[Invitation]:
    """The account's invitations still waiting for an answer."""
    now = utc(now)
    return list(session.scalars(
        select(Invitation).where(Invitation.account_id == account.id, Invitation.accepted_at.is_(None),
                                 Invitation.revoked_at.is_(None), Invitation.expires_at > now)
        .order_by(Invitation.id)
    ))


def drawable(session: Session, account: Account, user: User, *, now: datetime) -> list[ledger.Balance]:
    """The balances a new ticket of ``user`` may draw from, the one expiring first first."""
    return [b for b in ledger.balances(session, account.id, now=now, user_id=user.id) if b.units > 0]


# --- Tickets ----------------------------------------------------------------

@dataclass(frozen=True)
class Upload:
    """A file as the view received it."""

    filename: str
    content: bytes
    content_type: str = ""


@dataclass(frozen=True)
class AttachmentRules:
    """Settings ATTACHMENT_FOLDER, ATTACHMENT_MAX_BYTES, ATTACHMENT_TYPES,
    ATTACHMENT_MAX_FILES, ATTACHMENT_QUOTA_BYTES (what all the files of one
    account may take together; None: no limit)."""

    folder: Path
    max_bytes: int
    types: frozenset[str]
    max_files: int = 5
    quota: int | None = None

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> AttachmentRules:
        return cls(folder=Path(settings["ATTACHMENT_FOLDER"]), max_bytes=settings["ATTACHMENT_MAX_BYTES"],
                   types=frozenset(settings["ATTACHMENT_TYPES"]), max_files=settings["ATTACHMENT_MAX_FILES"],
                   quota=settings.get("ATTACHMENT_QUOTA_BYTES"))


def open_ticket(
    session: Session,
    account: Account,
    user: User,
    subject: str,
    description: str,
    *,
    now: datetime,
    policy: Policy | None = None,
    unit: str | None = None,
    kind: str | None = None,
    criticality: str = "normal",
    files: Sequence[Upload] = (),
    rules: AttachmentRules | None = None,
    subscription: Subscription | None = None,
    by: User | None = None,
    key: str | None = None,
) -> Ticket:
    """Open a ticket with its first message (and files) in one transaction.

    ``key`` (the one-time token of the form it comes from) makes opening
    idempotent: the ticket opened already under it is returned instead of a
    second one, even when both arrive at once.

    ``by``: a staff member opening it on ``user``'s behalf (a phone call, a
    mail): the first message is theirs (``opened_by_staff`` reads it back),
    ``user`` is told by mail whatever their preferences, and the other staff
    hear of a new ticket as usual.

    ``policy``/``unit`` choose the balance, or ``subscription`` the account's
    running subscription (default: the subscription when one covers new
    tickets, since it costs nothing, else the balance of this user whose
    lots expire first); the user must hold units of a balance. ``kind`` is a
    request kind of that policy (default: the policy's).
    """
    now = utc(now)
    if key is not None:
        done = opened_under(session, account, key)
        if done is not None:
            return done
    _active(user)
    author = _check_staff(by) if by is not None else user
    if user.is_staff or user.account_id != account.id:
        raise NotAllowed("only a user of the account opens its tickets")
    subject = single_line(subject)
    if not 1 <= len(subject) <= MAX_SUBJECT:
        raise DeskError(N_("Write a subject of 1 to %(max)d characters."), "subject", max=MAX_SUBJECT)
    body = _body(description, "description")
    if criticality not in CRITICALITIES:
        raise DeskError(N_("Choose a criticality from the list."), "criticality")
    if subscription is not None:
        covering = subscriptions.covering(session, account.id, now=now)
        if covering is None or covering.id != subscription.id:
            raise DeskError(N_("Your subscription no longer covers new tickets."), "balance")
    elif policy is None:
        subscription = subscriptions.covering(session, account.id, now=now)
    if subscription is not None:
        policy = subscription.pack.policy
    elif policy is not None:
        unit = unit or policy.unit
        if not any((b.policy_id, b.unit) == (policy.id, unit) for b in drawable(session, account, user, now=now)):
            raise DeskError(N_("This balance has nothing left for you to draw from."), "balance")
    kind = kind or None
    if policy is not None and kind is not None and kind not in {k.slug for k in policy.kinds}:
        raise DeskError(N_("Choose a request kind of this balance."), "kind")
    saved: list[Path] = []
    try:
        with atomic(session):
            ticket = ledger.open_ticket(session, account, user, subject, now=now, kind=kind, policy=policy,
                                        unit=unit, subscription=subscription)
            ticket.criticality = criticality
            ticket.updated_at = now
            ticket.opening_key = key
            message = TicketMessage(ticket=ticket, author=author, body=body, internal=False, created_at=now)
            session.add(message)
            session.flush()
            saved = _attach(session, message, files, rules, now)
            event = f"ticket:{ticket.id}:opened"
            # Opened for them, the person hears of it even with confirmations switched off.
            outbox.enqueue(session, "ticket_opened", event, [user], now=now, payload={"ticket_id": ticket.id},
                           account_id=account.id, always=[user.id] if by is not None else [])
            outbox.enqueue(session, "ticket_opened_staff", event,
                           [s for s in outbox.staff(session) if s.id != author.id], now=now,
                           payload={"ticket_id": ticket.id}, account_id=account.id)
        return ticket
    except IntegrityError:
        _unlink(saved)
        # The same form sent at the same moment opened it first. A caller's
        # unit of work is lost with it: the caller looks.
        done = opened_under(session, account, key) if key is not None and not in_unit_of_work(session) else None
        if done is None:
            raise
        return done
    except BaseException:
        _unlink(saved)
        raise


def opened_under(session: Session, account: Account, key: str) -> Ticket | None:
    """The ticket a form keyed ``key`` opened already for ``account``."""
    ticket = session.scalar(select(Ticket).where(Ticket.opening_key == key))
    if ticket is not None and ticket.account_id != account.id:
        raise DeskError(N_("This form has expired: check it and send it again."), "token")
    return ticket


def post_message(
    session: Session,
    ticket: Ticket,
    author: User,
    body: str,
    *,
    now: datetime,
    internal: bool = False,
    files: Sequence[Upload] = (),
    rules: AttachmentRules | None = None,
) -> TicketMessage:
    """Add a message to the thread. Staff may write an ``internal`` note;
    their first public reply sets ``first_response_at``. A client's reply to
    a ticket waiting for them puts it back to ``open``. Closed tickets take
    no more messages."""
    now = utc(now)
    _check_sees(author, ticket)
    if internal and not author.is_staff:
        raise NotAllowed("only staff write internal notes")
    if ticket.status == "closed":
        raise DeskError(N_("This ticket is closed: open a new one."), "body")
    text = _body(body, "body")
    saved: list[Path] = []
    try:
        with atomic(session):
            message = TicketMessage(ticket=ticket, author=author, body=text, internal=internal, created_at=now)
            session.add(message)
            session.flush()
            saved = _attach(session, message, files, rules, now)
            if author.is_staff and not internal and ticket.first_response_at is None:
                ticket.first_response_at = now
            if author.is_staff and not internal:
                outbox.enqueue(session, "staff_reply", f"message:{message.id}", [ticket.opened_by], now=now,
                               payload={"ticket_id": ticket.id, "message_id": message.id}, account_id=ticket.account_id)
            if not author.is_staff and ticket.status == "waiting":
                ticket.status = "open"
            ticket.updated_at = now
        return message
    except BaseException:
        _unlink(saved)
        raise


def _body(text: str, field: str) -> str:
    text = (text or "").strip()
    if len(text) > MAX_BODY:
        raise DeskError(N_("A message has at most %(max)d characters."), field, max=MAX_BODY)
    clean = sanitise(text)
    if not clean:
        raise DeskError(N_("Write a message."), field)
    return clean


# Files whose first bytes must match their type, so a renamed file is refused.
_MAGIC = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "application/pdf": (b"%PDF-",),
    "application/zip": (b"PK\x03\x04",),
}


def file_name(sent: str | None) -> str:
    """The name to keep for a file sent: its last path part, on one line,
    without bidirectional controls (which make "x<U+202E>fdp.exe" read as
    "xexe.pdf")."""
    return single_line(without_bidi_controls(Path((sent or "").replace("\\", "/")).name))[:255]


def check_upload(upload: Upload, rules: AttachmentRules) -> str:
    """The file's type (from its name, checked against its first bytes) if
    the rules accept it; else DeskError naming the file."""
    name = file_name(upload.filename)
    if not name:
        raise DeskError(N_("A file without a name was sent: choose the file again."), "files")
    if not upload.content:
        raise DeskError(N_("The file %(name)s is empty."), "files", name=name)
    if len(upload.content) > rules.max_bytes:
        raise DeskError(N_("The file %(name)s is larger than %(max)d MB."), "files", name=name,
                        max=rules.max_bytes // 1_000_000)
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    if content_type not in rules.types:
        raise DeskError(N_("The file %(name)s is refused: files of this type are not accepted."), "files",
                        name=name)
    magic = _MAGIC.get(content_type)
    if magic and not upload.content.startswith(magic):
        raise DeskError(N_("The file %(name)s is not the kind of file its name says."), "files", name=name)
    return content_type


def _attach(session: Session, message: TicketMessage, files: Sequence[Upload], rules: AttachmentRules | None,
            now: datetime) -> list[Path]:
    """Check every file, then write them: none is written when one is refused.
    Returns the paths written, for the caller to remove if its commit fails."""
    files = [f for f in files if f.filename]
    if not files:
        return []
    if rules is None:
        raise DeskError(N_("Attachments are not accepted here."), "files")
    if len(files) > rules.max_files:
        raise DeskError(N_("Too many files: a message takes %(max)d at most."), "files", max=rules.max_files)
    checked = [(upload, check_upload(upload, rules)) for upload in files]
    if rules.quota is not None:
        account_id = session.scalar(select(Ticket.account_id).where(Ticket.id == message.ticket_id))
        stored = session.execute(select(func.coalesce(func.sum(Attachment.size), 0)).join(
            Ticket, Ticket.id == Attachment.ticket_id).where(Ticket.account_id == account_id)).scalar_one()
        if stored + sum(len(upload.content) for upload in files) > rules.quota:
            raise DeskError(N_("These files would take your account beyond its storage of %(max)d MB "
                               "(%(used)d MB used). Send smaller files, or ask us to remove old ones."), "files",
                            max=rules.quota // 1_000_000, used=-(-stored // 1_000_000))
    rules.folder.mkdir(parents=True, exist_ok=True)
    saved: list[Path] = []
    try:
        for upload, content_type in checked:
            stored_name = secrets.token_hex(16)
            path = rules.folder / stored_name
            write_private(path, upload.content)
            saved.append(path)
            session.add(Attachment(message=message, ticket_id=message.ticket_id,
                                   original_name=file_name(upload.filename),
                                   content_type=content_type, size=len(upload.content), stored_name=stored_name,
                                   created_at=now))
        session.flush()
    except BaseException:
        _unlink(saved)
        raise
    return saved


def _unlink(paths: Iterable[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def attachment_path(attachment: Attachment, folder: Path) -> Path:
    return folder / attachment.stored_name


# Who may move a ticket where: staff anywhere; a client may close a ticket,
# or reopen a resolved one.
CLIENT_MOVES = {("resolved", "open"), *((s, "closed") for s in TICKET_STATUSES if s != "closed")}


def set_status(session: Session, ticket: Ticket, status: str, *, by: User, now: datetime) -> Ticket:
    """Move the ticket: ``resolved`` stamps resolved_at (the report is then
    due), ``closed`` closed_at; reopening clears them."""
    now = utc(now)
    _check_sees(by, ticket)
    if status not in TICKET_STATUSES:
        raise DeskError(N_("Choose a status from the list."), "status")
    if status == ticket.status:
        return ticket
    if not by.is_staff and (ticket.status, status) not in CLIENT_MOVES:
        raise NotAllowed("only staff move a ticket there")
    with atomic(session):
        ticket.status = status
        if status == "resolved":
            ticket.resolved_at = now
        elif status == "closed":
            ticket.closed_at = now
            ticket.resolved_at = ticket.resolved_at or now
        else:
            ticket.resolved_at = None
            ticket.closed_at = None
        ticket.updated_at = now
    return ticket


def assign(session: Session, ticket: Ticket, staff: User | None, *, by: User, now: datetime) -> Ticket:
    """Give the ticket to a staff member (None: nobody)."""
    _check_staff(by)
    if staff is not None:
        _check_staff(staff)
    with atomic(session):
        ticket.assigned_to_id = staff.id if staff is not None else None
        ticket.updated_at = utc(now)
    return ticket


def set_criticality(session: Session, ticket: Ticket, criticality: str, *, by: User, now: datetime) -> Ticket:
    _check_sees(by, ticket)
    if criticality not in CRITICALITIES:
        raise DeskError(N_("Choose a criticality from the list."), "criticality")
    with atomic(session):
        ticket.criticality = criticality
        ticket.updated_at = utc(now)
    return ticket


def set_staff_note(session: Session, ticket: Ticket, note: str, *, by: User, now: datetime) -> Ticket:
    """The staff's note printed on the intervention report (plain text)."""
    _check_staff(by)
    note = (note or "").strip()
    if len(note) > MAX_BODY:
        raise DeskError(N_("A note has at most %(max)d characters."), "staff_note", max=MAX_BODY)
    with atomic(session):
        ticket.staff_note = note
        ticket.updated_at = utc(now)
    return ticket


def resolve(session: Session, ticket: Ticket, *, by: User, note: str | None = None, now: datetime) -> Ticket:
    """Staff mark the ticket resolved, with the note for the intervention
    report when one is given (None keeps the note there is), in one
    transaction: the report is then due."""
    now = utc(now)
    _check_staff(by)
    if ticket.status == "closed":
        raise DeskError(N_("This ticket is closed already."), "status")
    if note is not None:
        note = note.strip()
        if len(note) > MAX_BODY:
            raise DeskError(N_("A note has at most %(max)d characters."), "staff_note", max=MAX_BODY)
    with atomic(session):
        if note is not None:
            ticket.staff_note = note
        if ticket.status != "resolved":
            ticket.status = "resolved"
            ticket.resolved_at = now
            # The report, with the balance as the work left it, to whoever
            # opened the ticket and to the owners who pay for it.
            left = ledger.balance(session, ticket.account_id, ticket.policy_id, ticket.unit, now=now,
                                  user_id=ticket.opened_by_id)
            outbox.enqueue(session, "ticket_resolved", f"ticket:{ticket.id}:resolved:{now.isoformat()}",
                           [ticket.opened_by, *outbox.owners(session, ticket.account_id)], now=now,
                           payload={"ticket_id": ticket.id, "remaining": left.net, "unit": ticket.unit},
                           account_id=ticket.account_id)
        ticket.updated_at = now
    return ticket


def rate(session: Session, ticket: Ticket, user: User, rating: int, comment: str = "", *, now: datetime) -> Ticket:
    """The client's rating, 1 to 5 with an optional comment, once the ticket
    is resolved; rating again replaces it."""
    _check_sees(user, ticket)
    if user.is_staff:
        raise NotAllowed("clients rate their tickets, staff do not")
    if ticket.status not in DONE_STATUSES:
        raise DeskError(N_("A ticket is rated once it is resolved."), "rating")
    if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5:
        raise DeskError(N_("Choose a rating from 1 to 5."), "rating")
    comment = (comment or "").strip()
    if len(comment) > MAX_NOTE:
        raise DeskError(N_("A comment has at most %(max)d characters."), "comment", max=MAX_NOTE)
    with atomic(session):
        ticket.rating = rating
        ticket.rating_comment = comment
        ticket.rated_at = utc(now)
    return ticket


# --- Time and its charge ------------------------------------------------------

@dataclass(frozen=True)
class Preview:
    """What logging ``added`` more minutes would do to a ticket's charge."""

    added: int
    billable: bool
    before: Charge
    after: Charge

    @property
    def delta(self) -> int:
        return self.after.units - self.before.units


def preview(ticket: Ticket, minutes: int, billable: bool = True) -> Preview:
    """Pure: the charge now and after ``minutes`` more (billable or not); no
    database, so the desk's form can call it on every keystroke."""
    if isinstance(minutes, bool) or not isinstance(minutes, int) or minutes < 0:
        raise DeskError(N_("Enter whole minutes, 0 or more."), "minutes")
    before = _cost(ticket, ticket.billable_minutes)
    after = _cost(ticket, ticket.billable_minutes + (minutes if billable else 0))
    return Preview(added=minutes, billable=billable, before=before, after=after)


def describe_preview(found: Preview, gettext: Gettext = lambda s: s, ngettext: Ngettext = english_plural) -> str:
    """``+15 min → total 27 min → 3 credits, 1 more than now``."""
    added = gettext("+%(num)d min") % {"num": found.added}
    if not found.billable:
        return " → ".join([added, gettext("not billable"), gettext("no change")])
    total = gettext("total %(num)d min") % {"num": found.after.minutes}
    charged = unit_label(found.after.unit, found.after.units, ngettext)
    if found.delta == 0:
        change = gettext("no change")
    else:
        change = ngettext("%(num)d more than now", "%(num)d more than now", found.delta) % {"num": found.delta}
    return " → ".join([added, total, charged]) + ", " + change


def log_time(
    session: Session,
    ticket: Ticket,
    staff: User,
    minutes: int,
    billable: bool,
    note: str,
    key: str,
    now: datetime,
) -> TimeEntry:
    """Record staff time on a ticket and charge it, in one transaction.

    The ticket's billable total becomes the sum of its billable entries and
    billing.ledger.charge_ticket_to moves the balance under the key
    ``time:<key>``. Called again with the same key, returns the first entry
    and writes nothing. Beyond the balance, the policy decides (ledger):
    ``block`` raises InsufficientBalance and nothing is written at all.
    """
    now = utc(now)
    _check_staff(staff)
    if isinstance(minutes, bool) or not isinstance(minutes, int) or not 1 <= minutes <= MAX_ENTRY_MINUTES:
        raise DeskError(N_("Enter whole minutes, from 1 to %(max)d."), "minutes", max=MAX_ENTRY_MINUTES)
    note = (note or "").strip()
    if len(note) > MAX_NOTE:
        raise DeskError(N_("A note has at most %(max)d characters."), "note", max=MAX_NOTE)
    if not isinstance(key, str) or not key.strip() or len(key) > ledger.MAX_KEY_LENGTH - 5:
        raise DeskError(N_("The form was out of date: check the figures and save again."), "key")
    try:
        return _log_time(session, ticket, staff, minutes, billable, note, key, now)
    except ledger.InsufficientBalance as refused:
        # Nothing was written; the owners hear that work waits for credit.
        work_waits_for_credit(session, ticket, refused, now=now)
        raise


def work_waits_for_credit(session: Session, ticket: Ticket, refused: ledger.InsufficientBalance, *,
                          now: datetime) -> None:
    """Tell the account's owners that staff time on ``ticket`` was refused
    by its ``block`` policy: the units missing, with a link to buy (a
    low-balance message about the ticket). Once per ticket and amount
    missing, however often staff try again; in its own unit of work."""
    with atomic(session):
        current = session.get(Ticket, ticket.id)
        assert current is not None
        outbox.enqueue(session, "low_balance", f"ticket:{current.id}:blocked:{refused.missing}",
                       outbox.owners(session, current.account_id), now=now,
                       payload={"policy_id": current.policy_id, "unit": refused.unit, "units": refused.available,
                                "missing": refused.missing, "ticket_id": current.id},
                       account_id=current.account_id)


def _log_time(session: Session, ticket: Ticket, staff: User, minutes: int, billable: bool, note: str, key: str,
              now: datetime) -> TimeEntry:
    with atomic(session):
        # The ledger's lock, taken before anything is read: two entries
        # logged at once both count.
        ledger.lock_accounts(session, [ticket.account_id])
        done = session.scalar(select(TimeEntry).where(TimeEntry.key == key))
        if done is not None:
            if done.ticket_id != ticket.id:
                raise LedgerError(N_("The key %(key)s was already used on another ticket: check the figures and save "
                                      "again."), key=key)
            return done
        current = session.get(Ticket, ticket.id, populate_existing=True)
        assert current is not None
        if current.status == "closed":
            raise DeskError(N_("This ticket is closed: no more time can be logged on it."), "minutes")
        entry = TimeEntry(ticket=current, staff=staff, minutes=minutes, billable=bool(billable), note=note, key=key,
                          created_at=now)
        session.add(entry)
        session.flush()
        if billable:
            total = session.execute(
                select(func.coalesce(func.sum(TimeEntry.minutes), 0))
                .where(TimeEntry.ticket_id == current.id, TimeEntry.billable.is_(True))
            ).scalar_one()
            entry.operation = ledger.charge_ticket_to(session, current, int(total), by=staff, key=f"time:{key}",
                                                      now=now)
            overage_bills.follow_correction(session, entry.operation, now)
        current.updated_at = now
    return entry


def tickets_taken_note(ticket: Ticket) -> int | None:
    """For a ticket counted in tickets, how many it takes once its work
    passed one ticket's time (None while it fits in one)."""
    if ticket.unit != "ticket" or ticket.units_charged <= 1:
        return None
    return ticket.units_charged


# --- The pool: invitations and removal -------------------------------------------

def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def invite(session: Session, account: Account, by: User, email: str, role: str, *, now: datetime,
           max_age: timedelta) -> tuple[Invitation, str]:
    """An owner invites ``email`` to the pool with ``role``. Returns the
    invitation and its token (the only copy: put it in the link mailed).
    A pending invitation to the same address is replaced."""
    now = utc(now)
    _check_owner(by, account)
    email = (email or "").strip().lower()
    if "@" not in email or len(email) > 254 or any(c.isspace() for c in email):
        raise DeskError(N_("Enter a valid email address."), "email")
    if role not in INVITATION_ROLES:
        raise DeskError(N_("Choose a role from the list."), "role")
    existing = session.scalar(select(User).where(User.email == email))
    # Someone with access to another account is invited like anybody else:
    # telling the owner would tell them who uses Forfait. The link's page
    # explains to the invitee why they cannot join (accept).
    if existing is not None and existing.account_id == account.id and existing.removed_at is None:
        raise DeskError(N_("This person is already in your pool."), "email")
    token = secrets.token_urlsafe(32)
    with atomic(session):
            for old in session.scalars(select(Invitation).where(
                    Invitation.account_id == account.id, Invitation.email == email,
                    Invitation.accepted_at.is_(None), Invitation.revoked_at.is_(None))):
                old.revoked_at = now
            invitation = Invitation(account_id=account.id, email=email, role=role, token_hash=_token_hash(token),
                                    invited_by_id=by.id, created_at=now, expires_at=now + max_age)
            session.add(invitation)
            session.flush()
            # The token rides in the queued message until it is sent, then is forgotten.
            outbox.enqueue_address(session, "invitation", f"invitation:{invitation.id}", email, by.language, now=now,
                                   payload={"invitation_id": invitation.id, "token": token,
                                            "hours": int(max_age.total_seconds() // 3600)},
                                   account_id=account.id)
    return invitation, token


class InvitationInvalid(DeskError):
    """The link is unknown, used, revoked or expired (``reason``)."""

    MESSAGES = {
        "unknown": N_("This invitation link is not valid: it was not copied completely."),
        "accepted": N_("This invitation was already accepted. Log in with your email and password."),
        "revoked": N_("This invitation was withdrawn."),
        "expired": N_("This invitation has expired: ask for a new one."),
    }

    def __init__(self, reason: str) -> None:
        super().__init__(self.MESSAGES[reason])
        self.reason = reason


def invitation_for(session: Session, token: str, *, now: datetime) -> Invitation:
    """The pending invitation a token opens; else InvitationInvalid with a
    reason: unknown, accepted, revoked or expired."""
    invitation = session.scalar(select(Invitation).where(Invitation.token_hash == _token_hash(token or "")))
    if invitation is None:
        raise InvitationInvalid("unknown")
    if invitation.accepted_at is not None:
        raise InvitationInvalid("accepted")
    if invitation.revoked_at is not None:
        raise InvitationInvalid("revoked")
    if invitation.expires_at <= utc(now):
        raise InvitationInvalid("expired")
    return invitation


def accept(session: Session, token: str, *, now: datetime,
           new_user: Callable[[Invitation], User] | None = None) -> User:
    """Accept the invitation: its address joins the account with its role.

    Someone removed from this account before comes back (same row). Anybody
    else is a new user that ``new_user(invitation)`` builds (the portal
    hashes the password chosen on the form); the email must be the
    invitation's.
    """
    now = utc(now)
    invitation = invitation_for(session, token, now=now)
    with atomic(session):
        user = session.scalar(select(User).where(User.email == invitation.email))
        if user is not None:
            if user.account_id != invitation.account_id or user.removed_at is None:
                raise DeskError(N_("This address already has access to Forfait."), "email")
            user.removed_at = None
        else:
            if new_user is None:
                raise DeskError(N_("Choose your name and password."), "password")
            user = new_user(invitation)
            if user.email != invitation.email:
                raise DeskError(N_("This invitation is for another address."), "email")
            user.account_id = invitation.account_id
            session.add(user)
        user.role = invitation.role
        user.email_verified_at = user.email_verified_at or now  # the link proved the address
        session.flush()
        invitation.accepted_at = now
        invitation.accepted_by_id = user.id
    return user


def revoke(session: Session, invitation: Invitation, *, by: User, now: datetime) -> Invitation:
    _check_owner(by, invitation.account)
    with atomic(session):
        if invitation.accepted_at is None and invitation.revoked_at is None:
            invitation.revoked_at = utc(now)
    return invitation


def remove_user(session: Session, account: Account, user: User, *, by: User, now: datetime) -> User:
    """An owner removes someone from the pool: from their next request they
    are refused (common.identity.access's user loader returns nobody for them). Their
    tickets and history stay with the account. The last owner stays."""
    now = utc(now)
    _check_owner(by, account)
    if user.account_id != account.id or user.is_staff:
        raise NotAllowed("this person is not in your pool")
    if user.removed_at is not None:
        return user
    if user.is_owner:
        owners = session.execute(select(func.count()).where(
            User.account_id == account.id, User.role == "owner", User.removed_at.is_(None))).scalar_one()
        if owners <= 1:
            raise DeskError(N_("The account needs at least one owner: make someone else owner first."), "user")
    with atomic(session):
        user.removed_at = now
    return user


def lots_of(session: Session, account: Account, *, now: datetime) -> list[Lot]:
    """The account's usable lots, in the order tickets consume them."""
    return list(session.scalars(
        select(Lot).where(Lot.account_id == account.id, ledger.usable(utc(now)))
        .order_by(Lot.policy_id, Lot.unit, *ledger.CONSUMPTION_ORDER)
    ))
