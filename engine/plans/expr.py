"""The safe eligibility expression language of plan files (tokenizer, parser, polars compiler).

Grammar (never ``eval``)::

    expr    := and_expr ("or" and_expr)*
    and_expr:= not_expr ("and" not_expr)*
    not_expr:= "not" not_expr | atom
    atom    := "(" expr ")" | term (CMP term)+ | NAME ["not"] "in" "{" literal ("," literal)* "}"
    term    := NAME | literal
    literal := INT | FLOAT | STRING | "true" | "false"
    CMP     := "==" | "!=" | "<" | "<=" | ">" | ">="

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


def _names(node: tuple) -> set[str]:
    kind = node[0]
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
    if kind == "or":
        return _to_polars(node[1]) | _to_polars(node[2])
    if kind == "and":
        return _to_polars(node[1]) & _to_polars(node[2])
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
        return cls(text, _Parser(text).parse())

    @property
    def columns(self) -> set[str]:
        return _names(self.ast)

    def to_polars(self) -> pl.Expr:
        return _to_polars(self.ast)


