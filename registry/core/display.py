r"""Showing stored text to a person: what each surface escapes, in one place.

Anyone who can write to the registry chooses the text it shows later (an actor, a reason, a description, tags,
a metric name, a scored file's stamps), and a reviewer decides on what they read. So text from the store is
never interpreted by the surface that shows it:

- **Terminal** (:func:`visible`, used by ``pmr``'s one output helper, ``cli``): control and format
  characters (ESC sequences that erase or rewrite a line, BEL, C1 controls, bidi overrides, zero-width
  characters, line separators) are shown as Python-style escapes (``\x1b``, ``\u202e``), and rich markup is
  printed as typed, never parsed.
- **JSON** (:func:`json_text`): exact values; the characters above are ``\u``-escaped, which JSON parsers read
  back as the same text.
- **Markdown** (:func:`markdown`, :func:`markdown_code`: Prefect artifacts and the approval dialog): every ASCII
  punctuation character is backslash-escaped, so stored text cannot open a link, an image, HTML, a heading,
  emphasis or a table cell; newlines cannot start a block.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

#: Unicode categories never shown raw: controls, format characters (bidi overrides, zero-width), surrogates,
#: line and paragraph separators, unassigned code points.
_HIDDEN = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp", "Cn"})
#: Everything but printable ASCII: looked at one by one (printable ASCII, the common case, is left alone).
_SUSPECT = re.compile(r"[^\x20-\x7e]")
_NON_ASCII = re.compile(r"[^\x00-\x7e]")
#: Characters that can start inline Markdown (emphasis, code, links and images, HTML and autolinks, entities,
#: strikethrough, table cells), escaped wherever they are. ``_`` between letters or digits cannot open or close
#: emphasis, so ``snake_case`` names stay as written.
_MD_INLINE = re.compile(r"[\\`*\[\]<>&|~]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")
#: What starts a block when it begins a line: a heading, a quote, a list item, a setext underline or rule.
_MD_BLOCK_START = re.compile(r"^( *)(?:([#>+=-])|(\d+)([.)]))")


_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _escape(char: str) -> str:
    if char in _NAMED:
        return _NAMED[char]
    point = ord(char)
    if point < 0x100:
        return f"\\x{point:02x}"
    return f"\\u{point:04x}" if point < 0x10000 else f"\\U{point:08x}"


def _hidden(char: str) -> bool:
    return unicodedata.category(char) in _HIDDEN


def visible(value: object) -> str:
    r"""``value`` as text a terminal shows as it is: control and format characters become escapes.

    Printable text (any script, emoji) is kept; ``\n`` and ``\t`` are escaped too, so stored text can never
    start a line of its own.
    """
    text = value if isinstance(value, str) else str(value)
    return _SUSPECT.sub(lambda m: _escape(m.group()) if _hidden(m.group()) else m.group(), text)


def json_text(data: Any) -> str:
    r"""Indented JSON of ``data`` with exact values and no character a terminal would act on.

    ``json.dumps`` escapes C0 controls itself; C1 controls, format characters and separators are escaped here
    as ``\uXXXX`` (surrogate pairs above the BMP), which parse back to the same string.
    """
    raw = json.dumps(data, indent=2, default=str, ensure_ascii=False)

    def escape(match: re.Match[str]) -> str:
        char = match.group()
        if not _hidden(char):
            return char
        return json.dumps(char)[1:-1]  # ensure_ascii: \\uXXXX, or its surrogate pair

    # Only non-ASCII: json.dumps escapes C0 controls inside strings, and the newlines left are its layout.
    return _NON_ASCII.sub(escape, raw)


def markdown(value: object) -> str:
    """``value`` as Markdown that renders as exactly this text, inline (in a sentence or a table cell).

    Control and format characters are shown as escapes (so a newline cannot start a heading or a row), the
    characters that open inline Markdown are backslash-escaped (links, images, HTML, autolinks, entities,
    emphasis, code, strikethrough, cell boundaries), and so is what would start a block at the start of a line.
    """
    text = _MD_INLINE.sub(lambda m: "\\" + m.group(), visible(value))
    return _MD_BLOCK_START.sub(_block_start, text, count=1)


def _block_start(match: re.Match[str]) -> str:
    indent, mark, number, dot = match.groups()
    return indent + (f"\\{mark}" if mark else f"{number}\\{dot}")


def markdown_code(value: object) -> str:
    """``value`` as an inline code span (monospace, nothing inside interpreted), safe in a table cell."""
    text = visible(value).replace("|", "\\|")  # GFM splits cells on | before it parses code spans
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    return (
        f"{fence} {text} {fence}" if longest or text.startswith(" ") or text.endswith(" ") else f"{fence}{text}{fence}"
    )
