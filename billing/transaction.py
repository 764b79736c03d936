"""One unit of work, however deep the services that share it.

Every write service runs its work in ``with atomic(session):``. The outermost
block owns the transaction: it commits when the block ends and rolls
everything back if it raises, so nothing is ever half-written. A block inside
another joins it (as pretix's ``transaction.atomic`` nests, without the
savepoint: a service that fails leaves nothing worth keeping): its work
commits or rolls back with the outermost. Checkout signs a buyer up, places
the order, grants and invoices in one unit; a service called alone is its own.

An inner block that raised dooms the unit even if a caller catches the error:
the outermost block then rolls back and raises instead of committing the half
that was left."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session

_DEPTH = "forfait.atomic.depth"
_DOOMED = "forfait.atomic.doomed"


class UnitOfWorkFailed(RuntimeError):
    """A block inside the unit raised and a caller carried on: the unit was rolled back."""


def in_unit_of_work(session: Session) -> bool:
    """Whether a caller's unit of work is open on this session."""
    depth: int = session.info.get(_DEPTH, 0)
    return depth > 0


@contextmanager
def atomic(session: Session) -> Iterator[None]:
    depth = session.info.get(_DEPTH, 0)
    session.info[_DEPTH] = depth + 1
    try:
        yield
        if not depth:
            if session.info.get(_DOOMED):
                raise UnitOfWorkFailed("a service inside this unit of work failed; nothing was written")
            # Inside the try: a commit the database refuses is rolled back too.
            session.commit()
    except BaseException:
        if depth:
            session.info[_DOOMED] = True
        else:
            session.rollback()
        raise
    finally:
        session.info[_DEPTH] = depth
        if not depth:
            session.info.pop(_DOOMED, None)
