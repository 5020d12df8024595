"""Rust source text as the tree checks read it: one scanner for comments, string, byte, C and
raw string literals, character literals and lifetimes, shared by `module-cycles.py` (which
lexes into tokens) and `error-causes.py` (which reads attributes as text with comments
blanked).

The scanner is deliberately small: it tells code from comments and literals, and splits code
into identifiers, `::` and single punctuation. That is all the two checks need, and it keeps
them free of a parser dependency (Debian's python3 has no Rust parser; the checks must run on
a fresh machine with nothing but python3).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

IDENT = re.compile(r"r#[A-Za-z_][A-Za-z0-9_]*|[A-Za-z_][A-Za-z0-9_]*|[0-9][A-Za-z0-9_.]*")
RAW_STRING = re.compile(r'(?:b|c|br|cr)?r(#*)"')
CHAR = re.compile(r"b?'(\\u\{[0-9a-fA-F]+\}|\\.|[^\\'])'")


@dataclass
class Span:
    """One piece of source: `kind` is `comment`, `string` (with its prefix and quotes),
    `raw_string`, `char`, `lifetime`, `ident`, `::` or `punct`; `start`..`end` are offsets."""

    kind: str
    start: int
    end: int


def string_end(source: str, i: int) -> int:
    """The offset after the (non-raw) string literal whose opening quote is at `i`."""
    k = i + 1
    while k < len(source):
        if source[k] == "\\":
            k += 2
        elif source[k] == '"':
            return k + 1
        else:
            k += 1
    return k


def raw_string_end(source: str, i: int) -> int | None:
    """The offset after the raw string literal (`r"..."`, `br#"..."#`, ...) starting at `i`,
    or None if none starts there."""
    raw = RAW_STRING.match(source, i)
    if not raw:
        return None
    end = source.find('"' + raw.group(1), raw.end())
    return len(source) if end < 0 else end + 1 + len(raw.group(1))


def comment_end(source: str, i: int) -> int:
    """The offset after the `//` or (nested) `/* */` comment starting at `i`."""
    if source.startswith("//", i):
        end = source.find("\n", i)
        return len(source) if end < 0 else end
    depth, k = 1, i + 2
    while k < len(source) and depth:
        if source.startswith("/*", k):
            depth, k = depth + 1, k + 2
        elif source.startswith("*/", k):
            depth, k = depth - 1, k + 2
        else:
            k += 1
    return k


def scan(source: str) -> Iterator[Span]:
    """Every comment, literal and code token of `source`, in order (whitespace left out)."""
    i, n = 0, len(source)
    while i < n:
        c = source[i]
        if c.isspace():
            i += 1
        elif source.startswith("//", i) or source.startswith("/*", i):
            end = comment_end(source, i)
            yield Span("comment", i, end)
            i = end
        elif (end := raw_string_end(source, i)) is not None:
            yield Span("raw_string", i, end)
            i = end
        elif c == '"' or (c in "bc" and source.startswith('"', i + 1)):
            end = string_end(source, source.index('"', i))
            yield Span("string", i, end)
            i = end
        elif c == "'" or (c == "b" and source.startswith("'", i + 1)):
            if literal := CHAR.match(source, i):
                yield Span("char", i, literal.end())
                i = literal.end()
            else:  # a lifetime or a label: 'a
                word = IDENT.match(source, i + 1)
                end = word.end() if word else i + 1
                yield Span("lifetime", i, end)
                i = end
        elif word := IDENT.match(source, i):
            yield Span("ident", i, word.end())
            i = word.end()
        elif source.startswith("::", i):
            yield Span("::", i, i + 2)
            i += 2
        else:
            yield Span("punct", i, i + 1)
            i += 1


def blank_comments(source: str) -> str:
    """`source` with every comment replaced by spaces (newlines kept, so offsets and line
    numbers stay); literals are kept as they are."""
    out = list(source)
    for span in scan(source):
        if span.kind == "comment":
            for k in range(span.start, span.end):
                if out[k] != "\n":
                    out[k] = " "
    return "".join(out)
