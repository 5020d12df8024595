#!/usr/bin/env python3
"""Proves that each crate's module graph is a DAG: no module imports another that imports it back.

For every workspace member (read from the root Cargo.toml) and each of its targets (the library
and each binary, which are separate crates to rustc), this maps the source files to module paths
(`lib.rs`/`main.rs`, `mod.rs`, `foo.rs` with `foo/`, `#[path]`), collects the paths that name
the crate's own items (`use` trees, and `crate::`, `super::`, `self::`, child-module and
imported-name paths in code) and resolves each one to the module that defines the item.

The rule, one sentence each:
- A node is a source file's module; an inline `mod x { ... }` belongs to its file's module.
- Test code does not count: items under `#[cfg(test)]` (the `tests` modules, `tests.rs` files
  declared under it) are left out.
- An edge A -> B means code in A names an item defined in B. A re-export is followed to the
  module that defines the item (`super::Node`, re-exported by the parent from a sibling, is an
  edge to that sibling), so a facade's `pub use` never makes an edge to the facade itself.
- A module's edges into its own subtree do not count: a parent declares its children, and
  re-exporting or using them is the tree's normal shape. A child's edges to an ancestor do count
  (it uses an item defined in the ancestor's file), as do edges between siblings and across
  subtrees.
- An edge between two subtrees is also an edge between the two sibling modules that hold them
  (`metrics` naming `boot::syslog_sink` is `metrics` naming `boot`), so sibling subtrees that
  use each other are a cycle even when no two files do.

Each cycle is reported as `crate: a -> b -> a (file:line of each edge)`, one shortest cycle per
edge that lies on one; the exit status is 1 if there is any. Run from anywhere:
`scripts/module-cycles.py [--graph]` (`--graph` also prints every edge).
"""

from __future__ import annotations

import sys
import tomllib
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from rust_source import IDENT, scan

# ---------------------------------------------------------------------------------------------
# Lexing: identifiers, `::` and single punctuation, with line numbers; comments dropped, strings
# and character literals reduced to placeholders (they never name modules, and their text must
# not look like code). The scanner is shared with error-causes.py (rust_source.py).


@dataclass
class Token:
    text: str
    line: int


def lex(source: str) -> list[Token]:
    tokens: list[Token] = []
    line, counted_to = 1, 0
    for span in scan(source):
        line += source.count("\n", counted_to, span.start)
        counted_to = span.start
        text = source[span.start:span.end]
        if span.kind == "comment":
            continue
        if span.kind == "string":
            # The quotes stay, the prefix goes: a string's text is never an identifier, but
            # `#[path]` reads it.
            text = text[text.index('"'):]
        elif span.kind == "raw_string":
            text = '""'
        elif span.kind == "char":
            text = "''"
        elif span.kind == "lifetime":
            text = "'lifetime"
        tokens.append(Token(text, line))
    return tokens


OPEN = {"(": ")", "[": "]", "{": "}"}
CLOSE = {")", "]", "}"}


def matching(tokens: list[Token], i: int) -> int:
    """Index of the bracket closing the one at `i`."""
    depth = 0
    for j in range(i, len(tokens)):
        if tokens[j].text in OPEN:
            depth += 1
        elif tokens[j].text in CLOSE:
            depth -= 1
            if depth == 0:
                return j
    return len(tokens) - 1


# Items whose body is a block and which end there (no `;` after it).
BLOCK_ITEMS = {"fn", "mod", "impl", "trait", "struct", "enum", "union", "macro_rules", "extern"}
QUALIFIERS = {"pub", "async", "unsafe", "default", "auto", "safe"}


def item_end(tokens: list[Token], i: int) -> int:
    """Index of the last token of the item, statement, field or arm that starts at `i`."""
    j, kind = i, None
    while j < len(tokens) and kind is None:
        text = tokens[j].text
        if text == "pub" and j + 1 < len(tokens) and tokens[j + 1].text == "(":
            j = matching(tokens, j + 1) + 1
        elif text in QUALIFIERS or (text == "const" and tokens[j + 1].text in ("fn", "unsafe")):
            j += 1
        else:
            kind = text
    ends_at_block = kind in BLOCK_ITEMS or (j + 1 < len(tokens) and tokens[j + 1].text == "!")
    depth = 0
    for k in range(i, len(tokens)):
        text = tokens[k].text
        if text in OPEN:
            depth += 1
        elif text in CLOSE:
            depth -= 1
            if depth < 0:  # the enclosing block ended: the item was its last part
                return k - 1
            if depth == 0 and text == "}" and ends_at_block:
                return k
        elif depth == 0 and text in (";", ","):
            return k
    return len(tokens) - 1


def is_test_cfg(attribute: list[Token]) -> bool:
    """`cfg(test)` or `cfg(all(.., test, ..))`: code that exists only in test builds."""
    words = [t.text for t in attribute]
    if words[:2] != ["cfg", "("]:
        return False
    if words[2:] == ["test", ")"]:
        return True
    return words[2:4] == ["all", "("] and "test" in words and "not" not in words


# ---------------------------------------------------------------------------------------------
# Parsing one file: module declarations, use trees, and paths in code.


@dataclass
class Use:
    scope: tuple[str, ...]  # the module (inline ones included) the `use` is written in
    path: list[str]
    name: str | None  # the name it binds; None for a glob
    line: int
    module_level: bool  # visible to other modules (`super::name`), not inside a fn body


@dataclass
class Reference:
    scope: tuple[str, ...]
    path: list[str]
    line: int


@dataclass
class ModDecl:
    scope: tuple[str, ...]
    name: str
    path_attr: str | None
    inline: bool
    dir_parts: tuple[str, ...]  # inline modules between the file and the declaration


@dataclass
class ParsedFile:
    mods: list[ModDecl] = field(default_factory=list)
    uses: list[Use] = field(default_factory=list)
    references: list[Reference] = field(default_factory=list)
    test_only: bool = False


def parse_use_tree(tokens: list[Token], i: int, prefix: list[str], out: list) -> int:
    """Parses one use tree at `i`; appends (path, bound name or None, line); returns the end."""
    path = list(prefix)
    while i < len(tokens):
        text = tokens[i].text
        if text == "{":
            close = matching(tokens, i)
            j = i + 1
            while j < close:
                j = parse_use_tree(tokens, j, path, out)
                if tokens[j].text == ",":
                    j += 1
            return close + 1
        if text == "*":
            out.append((path, None, tokens[i].line))
            return i + 1
        if text == "::":
            i += 1
            continue
        if IDENT.fullmatch(text):
            line = tokens[i].line
            if text == "self" and path:  # `a::{self, b}`: `a` itself
                name = path[-1]
            else:
                path.append(text)
                name = text
            i += 1
            if i < len(tokens) and tokens[i].text == "as":
                name = tokens[i + 1].text
                i += 2
            if i < len(tokens) and tokens[i].text == "::":
                continue
            out.append((path, None if name == "_" else name, line))
            return i
        return i + 1
    return i


def parse_file(text: str) -> ParsedFile:
    tokens = lex(text)
    parsed = ParsedFile()
    # Scopes of inline modules: (index of the closing brace, module name).
    inline: list[tuple[int, str]] = []
    # Brace depth inside the current module scope: 0 means module level.
    depth_stack = [0]
    pending_test = False
    pending_path: str | None = None
    i = 0
    while i < len(tokens):
        while inline and i > inline[-1][0]:
            inline.pop()
            depth_stack.pop()
        scope = tuple(name for _, name in inline)
        text = tokens[i].text
        if text == "#" and i + 1 < len(tokens) and tokens[i + 1].text in ("[", "!"):
            inner = tokens[i + 1].text == "!"
            open_at = i + 2 if inner else i + 1
            close = matching(tokens, open_at)
            attribute = tokens[open_at + 1 : close]
            if is_test_cfg(attribute):
                if inner and not inline and depth_stack == [0]:
                    parsed.test_only = True
                    return parsed
                pending_test = not inner
            words = [t.text for t in attribute]
            if len(words) == 3 and words[:2] == ["path", "="] and words[2].startswith('"'):
                pending_path = words[2][1:-1]
            i = close + 1
            continue
        if pending_test:
            pending_test = False
            pending_path = None
            i = item_end(tokens, i) + 1
            continue
        if text == "pub" and i + 1 < len(tokens) and tokens[i + 1].text == "(":
            i = matching(tokens, i + 1) + 1  # `pub(crate)`, `pub(in path)`: not a path to us
            continue
        if text == "mod" and i + 2 < len(tokens) and IDENT.fullmatch(tokens[i + 1].text):
            name = tokens[i + 1].text
            after = tokens[i + 2].text
            if after == ";":
                parsed.mods.append(ModDecl(scope, name, pending_path, False, scope))
                pending_path = None
                i += 3
                continue
            if after == "{":
                parsed.mods.append(ModDecl(scope, name, None, True, scope))
                inline.append((matching(tokens, i + 2), name))
                depth_stack.append(0)
                pending_path = None
                i += 3
                continue
        pending_path = None
        if text == "use":
            found: list = []
            end = parse_use_tree(tokens, i + 1, [], found)
            for path, name, line in found:
                parsed.uses.append(Use(scope, path, name, line, depth_stack[-1] == 0))
            while end < len(tokens) and tokens[end].text != ";":
                end += 1
            i = end + 1
            continue
        if text == "{":
            depth_stack[-1] += 1
        elif text == "}":
            depth_stack[-1] -= 1
        elif IDENT.fullmatch(text) and i + 2 < len(tokens) and tokens[i + 1].text == "::":
            previous = tokens[i - 1].text if i else ""
            if previous not in ("::", ".", "$") and IDENT.fullmatch(tokens[i + 2].text):
                path, j = [text], i + 1
                while j + 1 < len(tokens) and tokens[j].text == "::":
                    if not IDENT.fullmatch(tokens[j + 1].text):
                        break
                    path.append(tokens[j + 1].text)
                    j += 2
                parsed.references.append(Reference(scope, path, tokens[i].line))
                i = j
                continue
        i += 1
    return parsed


# ---------------------------------------------------------------------------------------------
# A crate target: its module tree, then every reference resolved to the module defining it.


@dataclass
class Module:
    path: tuple[str, ...]
    node: tuple[str, ...]  # the file module it belongs to (itself unless inline)
    file: Path
    children: dict[str, "Module"] = field(default_factory=dict)


class Target:
    def __init__(self, label: str, root_file: Path, workspace: Path):
        self.label = label
        self.workspace = workspace
        self.root = Module((), (), root_file)
        self.modules: dict[tuple[str, ...], Module] = {(): self.root}
        self.files: dict[tuple[str, ...], ParsedFile] = {}
        self.problems: list[str] = []
        self.load(self.root, root_file, mod_rs=True)

    def load(self, module: Module, file: Path, mod_rs: bool) -> None:
        parsed = parse_file(file.read_text(encoding="utf-8"))
        if parsed.test_only:
            return
        self.files[module.path] = parsed
        base_dir = file.parent if mod_rs else file.parent / file.stem
        for decl in parsed.mods:
            parent = self.modules[module.path + decl.scope]
            path = parent.path + (decl.name,)
            if decl.inline:
                child = Module(path, module.path, file)
                parent.children[decl.name] = child
                self.modules[path] = child
                continue
            directory = base_dir.joinpath(*decl.dir_parts)
            if decl.path_attr is not None:
                candidates = [file.parent / decl.path_attr]
            else:
                candidates = [directory / f"{decl.name}.rs", directory / decl.name / "mod.rs"]
            found = next((c for c in candidates if c.is_file()), None)
            if found is None:
                self.problems.append(
                    f"{self.rel(file)}: `mod {decl.name};` has no file ({self.rel(candidates[0])})"
                )
                continue
            child = Module(path, path, found)
            parent.children[decl.name] = child
            self.modules[path] = child
            self.load(child, found, mod_rs=found.name == "mod.rs" or decl.path_attr is not None)
        # Test modules' files are not loaded, so their names resolve nowhere: drop them.

    def rel(self, file: Path) -> str:
        return str(file.relative_to(self.workspace))

    def absolute(
        self, file_module: tuple[str, ...], use: Use | Reference, seen: int = 0
    ) -> list[str] | None:
        """The path from the crate root, or None if it names something outside the crate."""
        scope = file_module + use.scope
        path = use.path
        first = path[0]
        if first == "crate":
            return path[1:]
        if first in ("self", "super"):
            current = list(scope)
            rest = path
            if rest[0] == "self":
                rest = rest[1:]
            while rest and rest[0] == "super":
                if not current:
                    return None
                current.pop()
                rest = rest[1:]
            return current + rest
        # `child::x`, or a name brought in by a `use` of this file (`use crate::store;`).
        module = self.modules.get(scope)
        if module is not None and first in module.children:
            return list(scope) + path
        if seen < 16:
            for binding in self.files.get(file_module, ParsedFile()).uses:
                if binding.name == first and binding is not use:
                    target = self.absolute(file_module, binding, seen + 1)
                    return None if target is None else target + path[1:]
        return None

    def defining_module(self, path: list[str], seen: int = 0) -> tuple[str, ...] | None:
        """The file module defining the item `path` names, following re-exports."""
        module = self.root
        index = 0
        while index < len(path) and path[index] in module.children:
            module = module.children[path[index]]
            index += 1
        if index < len(path) and seen < 16:
            name = path[index]
            for use in self.files.get(module.node, ParsedFile()).uses:
                if use.name == name and use.module_level and use.scope == module.path[len(module.node):]:
                    target = self.absolute(module.node, use)
                    if target is None:
                        return None  # an external item, re-exported
                    return self.defining_module(target + path[index + 1 :], seen + 1)
        return module.node

    def edges(self) -> dict[tuple[tuple[str, ...], tuple[str, ...]], list[str]]:
        """Every counted edge, with the file:line of each place that makes it."""
        edges: dict = {}
        for node, parsed in self.files.items():
            file = self.modules[node].file
            for item in [*parsed.uses, *parsed.references]:
                target_path = self.absolute(node, item)
                if target_path is None:
                    continue
                target = self.defining_module(target_path)
                if target is None or target == node or target[: len(node)] == node:
                    continue  # itself, or its own subtree
                place = f"{self.rel(file)}:{item.line}"
                edges.setdefault((node, target), []).append(place)
                # Between two subtrees, the edge also joins the two siblings that hold them:
                # `metrics` naming `boot::syslog_sink` is `metrics` naming `boot`.
                shared = 0
                while shared < min(len(node), len(target)) and node[shared] == target[shared]:
                    shared += 1
                if shared < len(target):
                    source_side = self.modules[node[: shared + 1]].node
                    target_side = self.modules[target[: shared + 1]].node
                    if (source_side, target_side) != (node, target):
                        edges.setdefault((source_side, target_side), []).append(place)
        return edges


def shortest_path(graph: dict, start, goal) -> list | None:
    previous = {start: None}
    queue = deque([start])
    while queue:
        current = queue.popleft()
        if current == goal:
            path = [current]
            while previous[path[-1]] is not None:
                path.append(previous[path[-1]])
            return path[::-1]
        for following in sorted(graph.get(current, ())):
            if following not in previous:
                previous[following] = current
                queue.append(following)
    return None


def cycles(edges: dict) -> list[list]:
    """One shortest cycle through each edge that lies on a cycle, without repeats."""
    graph: dict = {}
    for source, target in edges:
        graph.setdefault(source, set()).add(target)
    found, seen = [], set()
    for source, target in sorted(edges):
        back = shortest_path(graph, target, source)
        if back is None:
            continue
        cycle = [source, *back]  # source -> target -> ... -> source
        ring = cycle[:-1]
        start = ring.index(min(ring))
        canonical = tuple(ring[start:] + ring[:start])
        if canonical not in seen:
            seen.add(canonical)
            found.append(list(canonical) + [canonical[0]])
    return found


def name(module: tuple[str, ...]) -> str:
    return "::".join(module) if module else "crate"


def targets(workspace: Path) -> list[Target]:
    manifest = tomllib.loads((workspace / "Cargo.toml").read_text(encoding="utf-8"))
    found = []
    for member in manifest["workspace"]["members"]:
        crate_dir = workspace / member
        crate = tomllib.loads((crate_dir / "Cargo.toml").read_text(encoding="utf-8"))
        package = crate["package"]["name"]
        roots: list[tuple[str, Path]] = []
        lib = crate_dir / crate.get("lib", {}).get("path", "src/lib.rs")
        if lib.is_file():
            roots.append((f"{package} (lib)", lib))
        bins = {crate_dir / b.get("path", f"src/bin/{b['name']}.rs"): b["name"] for b in crate.get("bin", [])}
        if not bins and (crate_dir / "src/main.rs").is_file():
            bins[crate_dir / "src/main.rs"] = package
        for extra in sorted((crate_dir / "src/bin").glob("*.rs")):
            bins.setdefault(extra, extra.stem)
        for extra in sorted((crate_dir / "src/bin").glob("*/main.rs")):
            bins.setdefault(extra, extra.parent.name)
        for path, bin_name in bins.items():
            roots.append((f"{package} (bin {bin_name})", path))
        for label, root in roots:
            found.append(Target(label, root, workspace))
    return found


def main() -> int:
    workspace = Path(__file__).resolve().parent.parent
    show_graph = "--graph" in sys.argv[1:]
    total = 0
    for target in targets(workspace):
        for problem in target.problems:
            print(f"{target.label}: {problem}", file=sys.stderr)
        edges = target.edges()
        if show_graph:
            for (source, goal), places in sorted(edges.items()):
                print(f"{target.label}: {name(source)} -> {name(goal)} ({places[0]})")
        for cycle in cycles(edges):
            total += 1
            chain = " -> ".join(name(module) for module in cycle)
            places = ", ".join(edges[(a, b)][0] for a, b in zip(cycle, cycle[1:]))
            print(f"{target.label}: {chain} ({places})")
    if total:
        print(
            f"module-cycles: {total} import circle(s): each module above names an item of the next,"
            " and the last names the first; move what both need into a module of its own that"
            " neither imports back (see the rule in scripts/module-cycles.py)",
            file=sys.stderr,
        )
        return 1
    print("module-cycles: every crate's module graph is a DAG")
    return 0


if __name__ == "__main__":
    sys.exit(main())
