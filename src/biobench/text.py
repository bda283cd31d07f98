"""Showing strings that users or plugins named (preset and suite names, file paths, stored run
fields, plugin error texts) without letting them act on what shows them.

`printable` is for the terminal and for one-line messages: every character that is not
printable (ESC and the other C0/C1 controls, newlines, bidi overrides) is written as Python's
repr() writes it, e.g. \\x1b, so a name can neither drive the terminal nor break a line.
`xml_text` is for XML 1.0, which cannot hold most C0 controls even as character references:
those are written the same visible way, and the XML library escapes the rest (<, &, quotes).
"""

from __future__ import annotations

import re

# Everything XML 1.0 allows in a document (its `Char` production), negated.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _visible(character: str) -> str:
    return repr(character)[1:-1]


def printable(text: str) -> str:
    """`text` with control and other unprintable characters written as repr() writes them."""
    return "".join(c if c.isprintable() else _visible(c) for c in text)


def xml_text(text: str) -> str:
    """`text` with the characters XML 1.0 cannot hold written as repr() writes them."""
    return _NOT_XML.sub(lambda match: _visible(match.group(0)), text)
