#!/usr/bin/env python3
"""Proves the rule for error causes: a message carries its cause or exposes it as `source()`,
never both.

An error that prints its cause in its own message and also returns it from `source()` repeats
the cause whenever the whole chain is shown (`{:#}` of anyhow, `error_text::error_chain`):
"reading x: file not found: file not found". The rule the tree follows: the message says what
failed; the cause is only `source()`; every place that shows an error to a person prints the
chain.

This reads every `#[derive(... Error ...)]` enum and struct (thiserror) in the workspace's Rust
files and fails for each variant whose `#[error("...")]` names its source field: a field that
is `#[source]`, `#[from]` or named `source` (thiserror makes that one the source by itself),
used as `{source}`, `{0}`, `{0:?}` or passed as an argument (`source`, `.0`, `.source`, or its
chain by hand: `chain(source)`).
`#[error(transparent)]` forwards both message and source to the inner error, which is fine.

Each violation is reported as `file:line: Type::Variant prints its source field `x``; the exit
status is 1 if there is any. Run from anywhere: `scripts/error-causes.py [FILE...]` (with files,
only those are checked); `scripts/error-causes.py --self-test` checks the checker on samples.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

from rust_source import blank_comments, raw_string_end, string_end

SKIPPED_DIRS = {"target", ".git", ".cache", "out", "node_modules"}


@dataclass
class Violation:
    path: Path
    line: int
    item: str
    field: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.item} prints its source field `{self.field}`"


def matching(source: str, i: int) -> int:
    """The index of the bracket closing the one at `i` (strings skipped)."""
    pairs = {"(": ")", "[": "]", "{": "}", "<": ">"}
    stack = [pairs[source[i]]]
    k = i + 1
    while k < len(source) and stack:
        c = source[k]
        if c == '"':
            k = string_end(source, k)
            continue
        if c in "([{":
            stack.append(pairs[c])
        elif c in ")]}":
            stack.pop()
        elif stack[0] == ">" and c == "<":
            stack.append(">")
        elif stack[0] == ">" and c == ">" and source[k - 1] != "-":
            stack.pop()
        k += 1
    return k - 1


def split_top(text: str) -> list[tuple[int, str]]:
    """`text` split at its top-level commas, with each part's offset."""
    parts, depth, start, k = [], 0, 0, 0
    while k < len(text):
        c = text[k]
        if c == '"':
            k = string_end(text, k)
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == "<" and depth >= 0:
            # Generic arguments in field types: `Box<dyn Error + Send, ..>` has commas inside.
            close = matching(text, k)
            if close > k:
                k = close + 1
                continue
        elif c == "," and depth == 0:
            parts.append((start, text[start:k]))
            start = k + 1
        k += 1
    if text[start:].strip():
        parts.append((start, text[start:]))
    return parts


ATTRIBUTE = re.compile(r"\s*#\s*\[")


def attributes(text: str) -> tuple[list[tuple[int, str]], int]:
    """The leading `#[...]` attributes of `text` (offset, inner text) and where the rest starts."""
    found, k = [], 0
    while True:
        m = ATTRIBUTE.match(text, k)
        if not m:
            return found, k
        open_at = m.end() - 1
        close = matching(text, open_at)
        found.append((open_at, text[open_at + 1:close]))
        k = close + 1


@dataclass
class Field:
    name: str  # the field's name, or its index for a tuple field
    is_source: bool


def fields(body: str, tuple_fields: bool) -> list[Field]:
    result = []
    for index, (_, part) in enumerate(split_top(body)):
        attrs, rest = attributes(part)
        marked = any(re.fullmatch(r"\s*(source|from)\s*", a) for _, a in attrs)
        if tuple_fields:
            result.append(Field(str(index), marked))
        else:
            m = re.match(r"\s*(?:pub(?:\([^)]*\))?\s+)?(r#)?([A-Za-z_][A-Za-z0-9_]*)\s*:", part[rest:])
            if m:
                name = m.group(2)
                result.append(Field(name, marked or name == "source"))
    return result


FORMAT_STRING = re.compile(r'\s*(r#*)?"')
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*|[0-9]+)(?::[^{}]*)?\}")


def printed_fields(error_attr: str) -> set[str] | None:
    """The fields an `error(...)` attribute's message prints, or None for `transparent`."""
    inner = error_attr[error_attr.index("(") + 1:error_attr.rindex(")")]
    if inner.strip() == "transparent":
        return None
    m = FORMAT_STRING.match(inner)
    if not m:
        return set()
    start = m.end() - 1 - len(m.group(1) or "")
    end = raw_string_end(inner, start) if m.group(1) else string_end(inner, start)
    template = inner[start:end].replace("{{", "").replace("}}", "")
    printed = {p.group(1) for p in PLACEHOLDER.finditer(template)}
    for _, arg in split_top(inner[end:].lstrip(",")):
        arg = arg.strip()
        named = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)", arg, re.S)
        value = named.group(2).strip() if named else arg
        bare = re.fullmatch(r"\.?([A-Za-z_][A-Za-z0-9_]*|[0-9]+)", value)
        if bare:
            printed.add(bare.group(1))
        # A field's own chain printed by hand (`chain(source)`, `error_chain(&.0)`) repeats it too.
        chained = re.fullmatch(r"[A-Za-z0-9_:]*chain\(\s*&?\.?([A-Za-z_][A-Za-z0-9_]*|[0-9]+)\s*\)", value)
        if chained:
            printed.add(chained.group(1))
    return printed


DERIVE = re.compile(r"#\s*\[\s*derive\s*\(([^)]*)\)\s*\]")
ITEM = re.compile(
    r"\s*(?:pub(?:\([^)]*\))?\s+)?(enum|struct)\s+([A-Za-z_][A-Za-z0-9_]*)\s*(<)?"
)


def check_file(path: Path) -> list[Violation]:
    try:
        raw = path.read_text()
    except (OSError, UnicodeDecodeError):
        return []
    source = blank_comments(raw)
    violations = []
    line_of = lambda offset: source.count("\n", 0, offset) + 1  # noqa: E731
    for derive in DERIVE.finditer(source):
        if not re.search(r"(^|[\s,:])Error\s*($|,)", derive.group(1)):
            continue
        # The item's own attributes: those before the derive and after it, up to the keyword.
        attr_start = derive.start()
        while True:
            prev = source.rfind("]", 0, attr_start)
            between = source[prev + 1:attr_start] if prev >= 0 else ""
            if prev < 0 or between.strip():
                break
            opening = source.rfind("#", 0, prev)
            if opening < 0:
                break
            attr_start = opening
        after, rest = attributes(source[derive.end():])
        item_at = derive.end() + rest
        m = ITEM.match(source, item_at)
        if not m:
            continue
        kind, name = m.group(1), m.group(2)
        k = m.end()
        if m.group(3):
            k = matching(source, k - 1) + 1
        while k < len(source) and source[k] not in "{(;":
            k += 1
        if k >= len(source) or source[k] == ";":
            continue
        close = matching(source, k)
        body = source[k + 1:close]
        item_attrs = [(attr_start + o, a) for o, a in attributes(source[attr_start:derive.start()])[0]]
        item_attrs += [(derive.end() + o, a) for o, a in after]
        if kind == "struct":
            variants = [(name, item_attrs, body, source[k] == "(")]
        else:
            variants = []
            for offset, part in split_top(body):
                attrs, rest = attributes(part)
                vm = re.match(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*", part[rest:])
                if not vm:
                    continue
                tail = part[rest + vm.end():]
                shape = tail[:1]
                inner = tail[1:matching(tail, 0)] if shape in "({" and tail else ""
                base = k + 1 + offset
                variants.append(
                    (f"{name}::{vm.group(1)}", [(base + o, a) for o, a in attrs], inner, shape == "(")
                )
        for item, attrs, inner, tuple_fields in variants:
            sources = [f.name for f in fields(inner, tuple_fields) if f.is_source]
            for offset, attr in attrs:
                if not re.match(r"\s*error\s*\(", attr):
                    continue
                printed = printed_fields(attr)
                for field in sources:
                    if printed is not None and field in printed:
                        violations.append(Violation(path, line_of(offset), item, field))
    return violations


def rust_files(root: Path):
    for path in sorted(root.rglob("*.rs")):
        if not SKIPPED_DIRS.intersection(path.relative_to(root).parts):
            yield path


# Samples for --self-test: each enum variant named `Bad*` must be reported, no `Good*` one.
SAMPLE = r"""
#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    #[error("cannot read {path}: {source}")]
    BadNamedSource { path: PathBuf, source: io::Error },
    #[error("cannot parse: {0}")]
    BadTupleFrom(#[from] toml::de::Error),
    #[error("{server}: {error:?}")]
    BadMarkedSource {
        tries: HashMap<String, u32>,
        server: String,
        #[source]
        error: Box<dyn Error + Send + Sync>,
    },
    #[error("the CA bundle {} {}", path.display(), .source)]
    BadArgument { path: PathBuf, source: CaError },
    #[error(
        "cannot mount {target}: \
         {source} (check rootflags=)"
    )]
    BadContinued { target: String, source: io::Error },
    #[error("the request for {url} failed: {}", chain(source))]
    BadChained { url: String, source: hyper::Error },
    #[error("cannot open the channel ({hint})", hint = channel_hint(.0))]
    GoodHintFromSource(#[from] ChannelError),
    #[error("cannot read {path}")]
    GoodNamedSource { path: PathBuf, source: io::Error },
    #[error(transparent)]
    GoodTransparent(#[from] io::Error),
    #[error("{0} is not a MAC address")] // a String, not a source
    GoodPlainTuple(String),
    #[error("{{source}} is literal here: {why}")]
    GoodEscaped { why: String, source: io::Error },
}

/// One struct, printing its cause.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {path}: {source}")]
pub struct BadStruct {
    path: PathBuf,
    source: io::Error,
}
"""


def self_test() -> int:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        sample = Path(tmp) / "sample.rs"
        sample.write_text(SAMPLE)
        found = {v.item.split("::")[-1] for v in check_file(sample)}
    expected = set(re.findall(r"\b(Bad\w+)", SAMPLE))
    if found != expected:
        print(f"error-causes self-test: reported {sorted(found)}, expected {sorted(expected)}")
        return 1
    print(f"error-causes self-test: the {len(expected)} bad samples are reported, no good one")
    return 0


def main(argv: list[str]) -> int:
    if argv == ["--self-test"]:
        return self_test()
    root = Path(__file__).resolve().parent.parent
    paths = [Path(a) for a in argv] if argv else list(rust_files(root))
    violations = [v for path in paths for v in check_file(path)]
    for violation in violations:
        path = violation.path.resolve()
        shown = path.relative_to(root) if path.is_relative_to(root) else violation.path
        print(f"{shown}:{violation.line}: {violation.item} prints its source field "
              f"`{violation.field}`: drop it from the message (the chain shows it)")
    if violations:
        print(f"error-causes: {len(violations)} message(s) repeat their cause", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
