"""One identity rule: how the registry compares the names of people (registrants, reviewers, proposers).

Names are self-declared text. Compared raw, ``Dana``, `` DANA ``, ``dana`` followed by a zero-width space and a
fullwidth ``ｄａｎａ`` are four different people, so four-eyes and reviewer lists could be walked around by
spelling one's own name differently. Every comparison goes through :func:`identity_key` instead: Unicode NFKC,
format characters (category ``Cf``: zero-width spaces and joiners, bidi controls, soft hyphens), control characters
and every separator other than a plain space (``Zs``/``Zl``/``Zp``: what NFKC leaves of them) removed, runs of
spaces collapsed, the ends trimmed, and case folded. A name with nothing left is refused (:class:`InvalidIdentity`).

This makes spellings of one name equal; it does not make a name authenticated (see the README's security section).
"""

from __future__ import annotations

import getpass
import socket
import unicodedata

from prefect_model_registry.registry.core.checks import check_text
from prefect_model_registry.registry.errors import InvalidIdentity
from prefect_model_registry.registry.settings import settings

#: Characters a reason must show, at least, to count as one (break-glass): after :func:`visible`.
MIN_VISIBLE_REASON = 3


def _strip_invisible(text: str) -> str:
    kept = []
    for char in text:
        category = unicodedata.category(char)
        if char != " " and (category[0] == "C" or category in ("Zs", "Zl", "Zp")):
            continue  # format, control, unassigned or an unusual separator: nothing a reader can tell apart
        kept.append(char)
    return " ".join(part for part in "".join(kept).split(" ") if part)


def visible(text: str) -> str:
    """``text`` as a reader sees it: NFKC, invisible and control characters removed, spaces collapsed, trimmed."""
    return _strip_invisible(unicodedata.normalize("NFKC", text))


def identity_key(name: str) -> str:
    """The form under which two names are the same person: :func:`visible`, case folded (and NFKC again)."""
    # Case folding can leave text that NFKC would change (e.g. ``ß`` -> ``ss`` is fine, some ligatures are not).
    return _strip_invisible(unicodedata.normalize("NFKC", visible(name).casefold()))


def check_identity(name: str, what: str) -> str:
    """Return ``name`` if it names someone once normalised; refuse a name that normalises to nothing.

    Raises:
        InvalidIdentity: ``name`` is empty, blank or only invisible characters.

    """
    if not identity_key(name):
        raise InvalidIdentity(f"{what} {name!r} names nobody once invisible characters and spaces are removed")
    return name


def same_person(a: str, b: str) -> bool:
    """Whether two names are one identity under the registry's rule (see :func:`identity_key`)."""
    return identity_key(a) == identity_key(b)


def listed(name: str, names: list[str] | set[str] | frozenset[str]) -> bool:
    """Whether ``name`` is one of ``names`` under the registry's identity rule."""
    key = identity_key(name)
    return any(identity_key(n) == key for n in names)


def visible_length(text: str) -> int:
    """How many printable, non-space characters a reader sees in ``text``."""
    return sum(1 for char in visible(text) if char.isprintable() and not char.isspace())


def default_actor() -> str:
    """Who is acting: ``PMR_ACTOR`` if set, else ``user@host``."""
    env = settings().actor
    if env:
        return env
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def resolve_actor(actor: str | None) -> str:
    """``actor``, or :func:`default_actor` when None, checked as text (refused with a typed error if unusable).

    A name that normalises to nothing (blank, only invisible characters) is refused: see ``identity``.
    """
    # The default comes from the environment, which can hold undecodable bytes (as surrogates): check it too.
    return check_identity(check_text(actor if actor is not None else default_actor(), "actor", max_len=256), "actor")
