"""The safe eligibility expression language of plan files (tokenizer, parser, polars compiler).

Grammar (never ``eval``)::

    expr    := and_expr ("or" and_expr)*
    and_expr:= not_expr ("and" not_expr)*
    not_expr:= "not" not_expr | atom
    atom    := "(" expr ")" | term (CMP term)+ | NAME ["not"] "in" "{" literal ("," literal)* "}"
    term    := NAME | literal
    literal := INT | FLOAT | STRING | "true" | "false"
    CMP     := "==" | "!=" | "<" | "<=" | ">" | ">="

Limits (checked before parsing, so a hostile expression is a clear error, never a crash):
at most :data:`MAX_CHARS` characters, :data:`MAX_TERMS` comparisons and ``in`` tests, and
:data:`MAX_DEPTH` levels of nested parentheses and ``not``.

Chained comparisons mean what they mean in mathematics: ``40 <= age <= 59`` is
``40 <= age and age <= 59``. Precedence: ``not`` > ``and`` > ``or``. A null
attribute makes a comparison null, which eligibility treats as not eligible.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import polars as pl

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<num>-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)
    | (?P<str>'[^']*'|"[^"]*")
    | (?P<op>==|!=|<=|>=|<|>)
    | (?P<punct>[(){},])
    | (?P<name>[A-Za-z_][A-Za-z_0-9]*)
    )""",
    re.VERBOSE,
)
_KEYWORDS = {"and", "or", "not", "in", "true", "false"}
#: longest eligibility expression (characters)
MAX_CHARS = 20_000
#: most comparisons / ``in`` tests joined by ``and`` / ``or`` in one expression
MAX_TERMS = 1_000
#: deepest nesting of parentheses and ``not``
MAX_DEPTH = 32


@dataclass(frozen=True)
class Token:
    kind: str  # num, str, op, punct, name, kw, end
    value: Any
    pos: int


def tokenize(text: str) -> list[Token]:
    """Split an eligibility expression into tokens; raise ``ValueError`` naming the position."""
    out: list[Token] = []
    i = 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        m = _TOKEN.match(text, i)
        if not m or m.end() == i:
            raise ValueError(f"unexpected character {text[i]!r} at position {i}")
        kind = m.lastgroup or ""
        raw = m.group(kind)
        start = m.start(kind)
        if kind == "num":
            val: Any = float(raw) if any(c in raw for c in ".eE") else int(raw)
        elif kind == "str":
            val = raw[1:-1]
        elif kind == "name" and raw in _KEYWORDS:
            kind, val = "kw", raw
        else:
            val = raw
        out.append(Token(kind, val, start))
        i = m.end()
    out.append(Token("end", None, len(text)))
    return out


class _Parser:
    """Recursive-descent parser producing a small AST of tuples.

    Nodes: ``("or", a, b)``, ``("and", a, b)``, ``("not", a)``,
    ``("cmp", op, left, right)``, ``("in", name, values, negated)``,
    ``("col", name)``, ``("lit", value)``.
    """

    def __init__(self, text: str) -> None:
        self.toks = tokenize(text)
        self.i = 0

    def peek(self) -> Token:
        return self.toks[self.i]

    def take(self) -> Token:
        t = self.toks[self.i]
        self.i += 1
        return t

    def expect(self, kind: str, value: Any = None) -> Token:
        t = self.take()
        if t.kind != kind or (value is not None and t.value != value):
            want = repr(value) if value is not None else kind
            got = "end of expression" if t.kind == "end" else repr(t.value)
            raise ValueError(f"expected {want} at position {t.pos}, got {got}")
        return t

    def is_kw(self, word: str) -> bool:
        t = self.peek()
        return t.kind == "kw" and t.value == word

    def parse(self) -> tuple:
        node = self.expr()
        t = self.peek()
        if t.kind != "end":
            raise ValueError(f"unexpected {t.value!r} at position {t.pos}")
        return node

    def expr(self) -> tuple:
        node = self.and_expr()
        while self.is_kw("or"):
            self.take()
            node = ("or", node, self.and_expr())
        return node

    def and_expr(self) -> tuple:
        node = self.not_expr()
        while self.is_kw("and"):
            self.take()
            node = ("and", node, self.not_expr())
        return node

    def not_expr(self) -> tuple:
        if self.is_kw("not"):
            self.take()
            return ("not", self.not_expr())
        return self.atom()

    def literal(self) -> Any:
        t = self.take()
        if t.kind in ("num", "str"):
            return t.value
        if t.kind == "kw" and t.value in ("true", "false"):
            return t.value == "true"
        got = "end of expression" if t.kind == "end" else repr(t.value)
        raise ValueError(f"expected a value at position {t.pos}, got {got}")

    def term(self) -> tuple:
        t = self.peek()
        if t.kind == "name":
            self.take()
            return ("col", t.value)
        return ("lit", self.literal())

    def atom(self) -> tuple:
        t = self.peek()
        if t.kind == "punct" and t.value == "(":
            self.take()
            node = self.expr()
            self.expect("punct", ")")
            return node
        left = self.term()
        negated = False
        if self.is_kw("not") and self.toks[self.i + 1].kind == "kw" and self.toks[self.i + 1].value == "in":
            self.take()
            negated = True
        if self.is_kw("in"):
            self.take()
            if left[0] != "col":
                raise ValueError(f"'in' needs a column name on its left (position {t.pos})")
            self.expect("punct", "{")
            values = [self.literal()]
            while self.peek().kind == "punct" and self.peek().value == ",":
                self.take()
                values.append(self.literal())
            self.expect("punct", "}")
            return ("in", left[1], tuple(values), negated)
        if self.peek().kind != "op":
            nxt = self.peek()
            got = "end of expression" if nxt.kind == "end" else repr(nxt.value)
            raise ValueError(f"expected a comparison after {t.value!r} at position {nxt.pos}, got {got}")
        node: tuple | None = None
        while self.peek().kind == "op":
            op = self.take().value
            right = self.term()
            cmp = ("cmp", op, left, right)
            node = cmp if node is None else ("and", node, cmp)
            left = right
        assert node is not None  # internal invariant, not user input
        if not _names(node):
            raise ValueError(f"comparison at position {t.pos} names no column")
        return node


def check_limits(text: str) -> None:
    """Raise ``ValueError`` when ``text`` exceeds :data:`MAX_CHARS`, :data:`MAX_TERMS` or :data:`MAX_DEPTH`."""
    if len(text) > MAX_CHARS:
        raise ValueError(f"expression too long: {len(text):,} characters (at most {MAX_CHARS:,})")
    toks = tokenize(text)
    depth = nots = deepest = 0
    terms = 1
    for t in toks:
        if t.kind == "punct" and t.value == "(":
            depth += 1
        elif t.kind == "punct" and t.value == ")":
            depth -= 1
        if t.kind == "kw" and t.value == "not":
            nots += 1
        elif not (t.kind == "punct" and t.value == "("):
            nots = 0
        if t.kind == "kw" and t.value in ("and", "or"):
            terms += 1
        deepest = max(deepest, depth + nots)
        if deepest > MAX_DEPTH:
            raise ValueError(f"expression nested too deeply at position {t.pos}: more than {MAX_DEPTH} levels "
                             "of parentheses and 'not'")
    if terms > MAX_TERMS:
        raise ValueError(f"expression too large: {terms:,} terms joined by 'and'/'or' (at most {MAX_TERMS:,}); "
                         "use 'name in {...}' for long lists of values")


def _chain(node: tuple) -> list[tuple]:
    """The operands of a left-nested chain of one operator (``a or b or c``), without recursion."""
    kind, out = node[0], []
    while node[0] == kind:
        out.append(node[2])
        node = node[1]
    out.append(node)
    return out[::-1]


def _names(node: tuple) -> set[str]:
    kind = node[0]
    if kind in ("and", "or"):
        return set().union(*(_names(n) for n in _chain(node)))
    if kind == "col":
        return {node[1]}
    if kind == "lit":
        return set()
    if kind == "in":
        return {node[1]}
    if kind == "cmp":
        return _names(node[2]) | _names(node[3])
    return set().union(*(_names(n) for n in node[1:]))


_OPS = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _to_polars(node: tuple) -> pl.Expr:
    kind = node[0]
    if kind == "col":
        return pl.col(node[1])
    if kind == "lit":
        return pl.lit(node[1])
    if kind == "or":  # flat (any/all_horizontal: the same three-valued logic as | and &)
        return pl.any_horizontal([_to_polars(n) for n in _chain(node)])
    if kind == "and":
        return pl.all_horizontal([_to_polars(n) for n in _chain(node)])
    if kind == "not":
        return ~_to_polars(node[1])
    if kind == "cmp":
        return _OPS[node[1]](_to_polars(node[2]), _to_polars(node[3]))
    e = pl.col(node[1]).is_in(list(node[2]))
    return ~e if node[3] else e


@dataclass(frozen=True)
class Expression:
    """A parsed eligibility expression (safe: only columns, literals and the operators above)."""

    text: str
    ast: tuple

    @classmethod
    def parse(cls, text: str) -> "Expression":
        """Parse ``text``; raise ``ValueError`` (position or limit named) when it is not a valid expression."""
        check_limits(text)
        return cls(text, _Parser(text).parse())

    @property
    def columns(self) -> set[str]:
        return _names(self.ast)

    def to_polars(self) -> pl.Expr:
        return _to_polars(self.ast)


