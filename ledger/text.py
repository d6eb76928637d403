"""One rule for text that identifies or explains (ids, keys, actors, reasons), in and out.

In: ``printable_text`` refuses anything ``str.isprintable`` refuses — control
characters (NUL, ESC, CR, LF, tab), format characters (bidi overrides such as
U+202E, zero-width U+200B, U+FEFF), line and paragraph separators (U+2028/9),
other separators but the ASCII space, private-use, surrogate and unassigned
code points. ``identifier_text`` (user, place, mission and job ids, actors)
also refuses white space at either end; idempotency keys and reasons may keep
it (client keys such as ``" h "`` were always valid). A user id then cannot
hide, reorder or forge what an auditor sees, and no NUL reaches PostgreSQL.

Out: ``shown`` escapes whatever is not printable (``\\x1b``, ``\\u202e``), for
text written before the rule or coming from elsewhere (a handler's error).
"""

from __future__ import annotations

from ledger.errors import InvalidRequest

PRINTABLE_RULE = (
    "must be printable text: no control, format (bidi, zero-width), line-separator, "
    "private-use or unassigned characters"
)
EDGE_RULE = "must not start or end with white space"


def printable_text(value: str) -> str:
    """``value`` if it is printable, else ``ValueError`` (keys and reasons: the rule alone)."""
    if not value.isprintable():
        raise ValueError(PRINTABLE_RULE)
    return value


def identifier_text(value: str) -> str:
    """``value`` if printable with no white space at either end (user, place, job ids, actors)."""
    printable_text(value)
    if value != value.strip():
        raise ValueError(EDGE_RULE)
    return value


def check_text(value: str, field: str, *, max_length: int = 500, edges: bool = False) -> str:
    """``value`` under the rule (and, unless ``edges``, no edge white space), else
    ``InvalidRequest`` naming ``field``; for CLI options and other non-pydantic input."""
    if not 1 <= len(value) <= max_length:
        raise InvalidRequest(f"invalid {field}: must be 1 to {max_length} characters", field=field)
    try:
        return printable_text(value) if edges else identifier_text(value)
    except ValueError as exc:
        raise InvalidRequest(f"invalid {field}: {exc}", field=field) from None


def shown(text: str) -> str:
    """``text`` with every non-printable character escaped, for terminals and tables."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)
