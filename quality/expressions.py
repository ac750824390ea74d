"""Row expressions for ``expect_rows_to_satisfy``: parsed here, compiled to typed SQL.

A row expression is a small language over the declared data items of one resource, e.g.
``abs(online_cases + offline_cases - total_cases) <= 0.01 * total_cases`` or
``开始日期 <= 结束日期``. The grammar (precedence from loose to tight)::

    expr    := or
    or      := and ("or" and)*
    and     := not ("and" not)*
    not     := "not" not | cmp
    cmp     := sum (("=" | "==" | "!=" | "<>" | "<" | "<=" | ">" | ">=") sum
                    | "is" ["not"] "null" | ["not"] "between" sum "and" sum)?
    sum     := product (("+" | "-") product)*
    product := unary (("*" | "/") unary)*
    unary   := "-" unary | atom
    atom    := number | 'text' | date 'YYYY-MM-DD' | true | false | null
               | name | name "(" expr ("," expr)* ")" | "(" expr ")"

Names are declared item names or their titles (ASCII or Chinese, or any name in double
quotes: titles with spaces); functions are
``abs round coalesce length year month``. The parser is hand-written recursive descent, so every
error names the character position where it went wrong. Types are checked against the
declared item types before anything runs: the user's text never becomes SQL. The SQL is built
as a SQLAlchemy expression (columns by name, literals as bound values); the same tree is
evaluated on pandas for the benchmark's GX-pandas contender.

A row satisfies the expression when it evaluates to true; unknown (a NULL operand) counts as
not satisfying it, so write ``coalesce(x, 0)`` where a missing value means zero.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any

import sqlalchemy as sa

from kernel.problems import Phrase, Phrases

MAX_LENGTH = 2000  # characters: a rule, not a program


class T(StrEnum):
    """The types of the expression language."""

    number = "number"
    text = "text"
    date = "date"
    boolean = "boolean"
    null = "null"  # the literal null: fits any type


# Declared item types (catalog.models.ItemType values) → expression types.
ITEM_TYPES: dict[str, T] = {"string": T.text, "integer": T.number, "decimal": T.number,
                            "boolean": T.boolean, "date": T.date, "datetime": T.date}


class ExpressionError(ValueError):
    """A parse or type error; ``position`` is the 1-based character where it was found. The
    message is a catalogue phrase (``quality.expr.*``), shown in the reader's language."""

    def __init__(self, message: Phrase, position: int) -> None:
        super().__init__(f"{message} (at position {position})")
        self.message, self.position = message, position


def _type(t: T) -> Phrase:
    return Phrase(f"quality.expr.type.{t.value}", t.value)


# --- the tree --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Node:
    pos: int  # 1-based character position of the node's first token
    type: T


@dataclass(frozen=True)
class Item(Node):
    name: str


@dataclass(frozen=True)
class Literal(Node):
    value: Any


@dataclass(frozen=True)
class Op(Node):
    """Unary (one arg) and binary operators, comparisons, ``and``/``or``/``not``."""

    op: str
    args: tuple[Node, ...]


@dataclass(frozen=True)
class Call(Node):
    fn: str
    args: tuple[Node, ...]


@dataclass(frozen=True)
class Between(Node):
    value: Node
    low: Node
    high: Node
    negated: bool


@dataclass(frozen=True)
class IsNull(Node):
    value: Node
    negated: bool


# --- tokens ----------------------------------------------------------------------------------

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<number>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|\.\d+)
  | (?P<text>'(?:[^']|'')*')
  | (?P<quoted>"[^"]+")
  | (?P<name>[^\W\d]\w*)
  | (?P<op><=|>=|<>|!=|==|[-+*/()=<>,])
""", re.VERBOSE)
_KEYWORDS = {"and", "or", "not", "is", "null", "between", "true", "false", "date"}
FUNCTIONS = ("abs", "round", "coalesce", "length", "year", "month")


@dataclass(frozen=True)
class _Tok:
    kind: str  # number, text, name, quoted, op, kw, end
    text: str
    pos: int


def _tokens(source: str) -> list[_Tok]:
    out: list[_Tok] = []
    at = 0
    while at < len(source):
        m = _TOKEN.match(source, at)
        if m is None:
            char = repr(source[at])
            raise ExpressionError(Phrase("quality.expr.unexpected_character",
                                         f"unexpected character {char}", {"char": char}),
                                  at + 1)
        kind = m.lastgroup or ""
        text = m.group()
        if kind == "name" and text.lower() in _KEYWORDS:
            kind, text = "kw", text.lower()
        if (kind == "text" and not text.endswith("'")) or (kind == "text" and len(text) < 2):
            raise ExpressionError(Phrase("quality.expr.unterminated",
                                         "unterminated text literal"), at + 1)
        if kind != "space":
            out.append(_Tok(kind, text, at + 1))
        at = m.end()
    if at < len(source) and source[at:].startswith("'"):
        raise ExpressionError(Phrase("quality.expr.unterminated", "unterminated text literal"),
                              at + 1)
    out.append(_Tok("end", "", len(source) + 1))
    return out


# --- parsing and type checking ---------------------------------------------------------------

_COMPARISONS = {"=": "=", "==": "=", "!=": "!=", "<>": "!=", "<": "<", "<=": "<=",
                ">": ">", ">=": ">="}


class _Parser:
    def __init__(self, source: str, items: Mapping[str, T], aliases: Mapping[str, str]) -> None:
        self.toks = _tokens(source)
        self.i = 0
        self.items = items
        self.aliases = aliases

    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def at(self, kind: str, *texts: str) -> bool:
        return self.tok.kind == kind and (not texts or self.tok.text in texts)

    def expect(self, kind: str, text: str, what: Phrase | str) -> _Tok:
        if not self.at(kind, text):
            found = self._found()
            raise ExpressionError(Phrase("quality.expr.expected",
                                         f"expected {what}, found {found}",
                                         {"what": what, "found": found}), self.tok.pos)
        return self.take()

    def _found(self) -> Phrase | str:
        if self.tok.kind == "end":
            return Phrase("quality.expr.the_end", "the end")
        return repr(self.tok.text)

    def _unexpected(self) -> ExpressionError:
        found = self._found()
        return ExpressionError(Phrase("quality.expr.unexpected", f"unexpected {found}",
                                      {"found": found}), self.tok.pos)

    def parse(self) -> Node:
        node = self.disjunction()
        if self.tok.kind != "end":
            raise self._unexpected()
        return node

    def _logic(self, op: str, sub: Callable[[], Node]) -> Node:
        node = sub()
        while self.at("kw", op):
            tok = self.take()
            right = sub()
            for side in (node, right):
                _need(side, T.boolean, Phrase("quality.expr.why.joins",
                                              f"'{op}' joins conditions", {"op": op}))
            node = Op(node.pos, T.boolean, op, (node, right))
            del tok
        return node

    def disjunction(self) -> Node:
        return self._logic("or", self.conjunction)

    def conjunction(self) -> Node:
        return self._logic("and", self.negation)

    def negation(self) -> Node:
        if self.at("kw", "not"):
            tok = self.take()
            inner = self.negation()
            _need(inner, T.boolean, Phrase("quality.expr.why.not", "'not' takes a condition"))
            return Op(tok.pos, T.boolean, "not", (inner,))
        return self.comparison()

    def comparison(self) -> Node:
        left = self.sum()
        if self.at("op", *_COMPARISONS):
            tok = self.take()
            right = self.sum()
            _comparable(left, right, tok)
            return Op(left.pos, T.boolean, _COMPARISONS[tok.text], (left, right))
        if self.at("kw", "is"):
            self.take()
            negated = bool(self.at("kw", "not") and self.take())
            self.expect("kw", "null", Phrase("quality.expr.what.null", "null after 'is'"))
            return IsNull(left.pos, T.boolean, left, negated)
        negated = False
        if self.at("kw", "not") and self.toks[self.i + 1].text == "between":
            self.take()
            negated = True
        if self.at("kw", "between"):
            tok = self.take()
            # Stop at sums: the 'and' here belongs to between, not to a conjunction.
            low = self.sum()
            self.expect("kw", "and", Phrase("quality.expr.what.between_and",
                                            "'and' in 'between … and …'"))
            high = self.sum()
            _comparable(left, low, tok)
            _comparable(left, high, tok)
            return Between(left.pos, T.boolean, left, low, high, negated)
        return left

    def sum(self) -> Node:
        node = self.product()
        while self.at("op", "+", "-"):
            tok = self.take()
            node = _arith(node, tok, self.product())
        return node

    def product(self) -> Node:
        node = self.unary()
        while self.at("op", "*", "/"):
            tok = self.take()
            node = _arith(node, tok, self.unary())
        return node

    def unary(self) -> Node:
        if self.at("op", "-"):
            tok = self.take()
            inner = self.unary()
            _need(inner, T.number, Phrase("quality.expr.why.minus", "'-' takes a number"))
            return Op(tok.pos, T.number, "neg", (inner,))
        return self.atom()

    def atom(self) -> Node:
        tok = self.tok
        if tok.kind == "number":
            self.take()
            return Literal(tok.pos, T.number, float(tok.text))
        if tok.kind == "text":
            self.take()
            return Literal(tok.pos, T.text, tok.text[1:-1].replace("''", "'"))
        if tok.kind == "kw" and tok.text in ("true", "false"):
            self.take()
            return Literal(tok.pos, T.boolean, tok.text == "true")
        if tok.kind == "kw" and tok.text == "null":
            self.take()
            return Literal(tok.pos, T.null, None)
        if tok.kind == "kw" and tok.text == "date":
            self.take()
            text = self.tok
            if text.kind != "text":
                raise ExpressionError(Phrase("quality.expr.date_quotes",
                                             "expected a date in quotes after 'date', e.g. "
                                             "date '2024-01-31'"), text.pos)
            self.take()
            try:
                value = date.fromisoformat(text.text[1:-1])
            except ValueError:
                value_text = text.text
                raise ExpressionError(Phrase("quality.expr.not_date",
                                             f"{value_text} is not a date (YYYY-MM-DD)",
                                             {"value_text": value_text}), text.pos) from None
            return Literal(tok.pos, T.date, value)
        if tok.kind == "op" and tok.text == "(":
            self.take()
            inner = self.disjunction()
            self.expect("op", ")", "')'")
            return inner
        if tok.kind in ("name", "quoted"):
            self.take()
            name = tok.text[1:-1] if tok.kind == "quoted" else tok.text
            if tok.kind == "name" and self.at("op", "("):
                return self.call(tok)
            name = name if name in self.items else self.aliases.get(name, name)
            if name not in self.items:
                raise ExpressionError(Phrase("quality.expr.not_item",
                                             f"'{name}' is not a data item of this resource",
                                             {"name": name}), tok.pos)
            return Item(tok.pos, self.items[name], name)
        raise self._unexpected()

    def call(self, name: _Tok) -> Node:
        fn = name.text.lower()
        if fn not in FUNCTIONS:
            called, known = name.text, ", ".join(FUNCTIONS)
            raise ExpressionError(Phrase("quality.expr.unknown_function",
                                         f"unknown function '{called}' (known: {known})",
                                         {"called": called, "known": known}), name.pos)
        self.expect("op", "(", "'('")
        args = [self.disjunction()]
        while self.at("op", ","):
            self.take()
            args.append(self.disjunction())
        self.expect("op", ")", "')'")
        return _typed_call(name, fn, tuple(args))


def _need(node: Node, want: T, why: Phrase) -> None:
    if node.type not in (want, T.null):
        kind = _type(node.type)
        raise ExpressionError(Phrase("quality.expr.need", f"{why}; this is {kind}",
                                     {"why": why, "kind": kind}), node.pos)


def _comparable(left: Node, right: Node, tok: _Tok) -> None:
    if T.null in (left.type, right.type):
        raise ExpressionError(Phrase("quality.expr.null_compare",
                                     "compare with null using 'is null' or 'is not null'"),
                              tok.pos)
    if left.type != right.type:
        one, other = _type(left.type), _type(right.type)
        raise ExpressionError(Phrase("quality.expr.cannot_compare",
                                     f"cannot compare {one} with {other}",
                                     {"one": one, "other": other}), tok.pos)


def _arith(left: Node, tok: _Tok, right: Node) -> Node:
    for side in (left, right):
        op = tok.text
        _need(side, T.number, Phrase("quality.expr.why.numbers_op", f"'{op}' works on numbers",
                                     {"op": op}))
    return Op(left.pos, T.number, tok.text, (left, right))


def _typed_call(name: _Tok, fn: str, args: tuple[Node, ...]) -> Node:
    def arity(low: int, high: int) -> None:
        if not low <= len(args) <= high:
            count: Phrase | str = str(low) if low == high else Phrase(
                "quality.expr.range", f"{low} to {high}", {"low": low, "high": high})
            raise ExpressionError(Phrase("quality.expr.arity", f"{fn}() takes {count} "
                                         "argument(s)", {"fn": fn, "count": count}), name.pos)

    if fn in ("abs", "round"):
        arity(1, 1 if fn == "abs" else 2)
        for arg in args:
            _need(arg, T.number, Phrase("quality.expr.why.numbers_fn", f"{fn}() takes numbers",
                                        {"fn": fn}))
        if fn == "round" and len(args) == 2 and not isinstance(args[1], Literal):
            raise ExpressionError(Phrase("quality.expr.round_digits",
                                         "round()'s digits must be a number literal"),
                                  args[1].pos)
        return Call(name.pos, T.number, fn, args)
    if fn == "length":
        arity(1, 1)
        _need(args[0], T.text, Phrase("quality.expr.why.length", "length() takes text"))
        return Call(name.pos, T.number, fn, args)
    if fn in ("year", "month"):
        arity(1, 1)
        _need(args[0], T.date, Phrase("quality.expr.why.date_fn", f"{fn}() takes a date",
                                      {"fn": fn}))
        return Call(name.pos, T.number, fn, args)
    arity(2, 16)  # coalesce
    kinds = {a.type for a in args} - {T.null}
    if len(kinds) > 1:
        types = Phrases(tuple(_type(k) for k in sorted(kinds)), "and")
        raise ExpressionError(Phrase("quality.expr.coalesce_types",
                                     f"coalesce() takes values of one type, not {types}",
                                     {"types": types}), name.pos)
    return Call(name.pos, kinds.pop() if kinds else T.null, fn, args)


@dataclass(frozen=True)
class Parsed:
    """A checked expression: its tree and the items it reads, in order of appearance."""

    source: str
    tree: Node
    items: tuple[str, ...]


def parse(source: str, item_types: Mapping[str, str],
          aliases: Mapping[str, str] | None = None) -> Parsed:
    """Parse and type-check ``source`` against declared items (name → catalog item type);
    ``aliases`` lets an item be named by its title too (e.g. 办件总量 → total_cases)."""
    if not isinstance(source, str) or not source.strip():
        raise ExpressionError(Phrase("quality.expr.empty", "the expression is empty"), 1)
    if len(source) > MAX_LENGTH:
        raise ExpressionError(Phrase("quality.expr.too_long",
                                     f"the expression is longer than {MAX_LENGTH} characters",
                                     {"MAX_LENGTH": MAX_LENGTH}), MAX_LENGTH + 1)
    items = {name: ITEM_TYPES[kind] for name, kind in item_types.items() if kind in ITEM_TYPES}
    tree = _Parser(source, items, aliases or {}).parse()
    if tree.type is not T.boolean:
        raise ExpressionError(Phrase("quality.expr.not_condition",
                                     "the expression must be a condition (a comparison, "
                                     "'is null', 'between', or several joined by and/or)"), 1)
    names: list[str] = []
    _collect(tree, names)
    if not names:
        raise ExpressionError(Phrase("quality.expr.no_item", "the expression names no data item"),
                              1)
    return Parsed(source, tree, tuple(names))


def _collect(node: Node, out: list[str]) -> None:
    if isinstance(node, Item) and node.name not in out:
        out.append(node.name)
    for child in _children(node):
        _collect(child, out)


def _children(node: Node) -> tuple[Node, ...]:
    if isinstance(node, Op | Call):
        return node.args
    if isinstance(node, Between):
        return node.value, node.low, node.high
    if isinstance(node, IsNull):
        return (node.value,)
    return ()


# --- SQL -------------------------------------------------------------------------------------

def to_sql(parsed: Parsed, column: Callable[[str], Any] = sa.column) -> Any:
    """The SQLAlchemy condition a row must satisfy (NULL counts as not satisfied). Numbers
    are compared as DOUBLE; literals are bound values, item names quoted identifiers."""
    return sa.func.coalesce(_sql(parsed.tree, column), sa.false())


def _sql(node: Node, column: Callable[[str], Any]) -> Any:
    if isinstance(node, Item):
        ref = column(node.name)
        if node.type is T.number:
            return sa.cast(ref, sa.Double)
        if node.type is T.date:
            return sa.cast(ref, sa.DateTime)
        return ref
    if isinstance(node, Literal):
        if node.type is T.null:
            return sa.null()
        if node.type is T.date:
            return sa.cast(sa.literal(node.value.isoformat(), sa.String), sa.DateTime)
        if node.type is T.number:
            return sa.cast(sa.literal(node.value, sa.Double), sa.Double)
        if node.type is T.boolean:
            return sa.true() if node.value else sa.false()
        return sa.literal(node.value, sa.String)
    if isinstance(node, IsNull):
        inner = _sql(node.value, column)
        return inner.is_not(None) if node.negated else inner.is_(None)
    if isinstance(node, Between):
        found = _sql(node.value, column).between(_sql(node.low, column),
                                                 _sql(node.high, column))
        return sa.not_(found) if node.negated else found
    if isinstance(node, Call):
        args = [_sql(a, column) for a in node.args]
        if node.fn == "abs":
            return sa.func.abs(args[0])
        if node.fn == "round":
            digits = int(node.args[1].value) if len(node.args) == 2 else 0  # type: ignore[attr-defined]
            return sa.cast(sa.func.round(args[0], digits), sa.Double)
        if node.fn == "length":
            return sa.cast(sa.func.length(args[0]), sa.Double)
        if node.fn in ("year", "month"):
            return sa.cast(sa.extract(node.fn, args[0]), sa.Double)
        return sa.func.coalesce(*args)
    assert isinstance(node, Op)
    args = [_sql(a, column) for a in node.args]
    return _SQL_OPS[node.op](*args)


_SQL_OPS: dict[str, Callable[..., Any]] = {
    "and": sa.and_, "or": sa.or_, "not": sa.not_, "neg": lambda a: -a,
    "+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
    "/": lambda a, b: a / sa.func.nullif(b, 0),  # x / 0 is unknown, as in pandas (→ fails)
    "=": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
}


# --- pandas (the benchmark's GX-pandas contender, and a cross-check in the tests) ------------

def on_pandas(parsed: Parsed, frame: Any) -> Any:
    """Evaluate on a pandas DataFrame: a bool Series, NULL (NA) counting as not satisfied."""
    import pandas as pd

    result = _pd(parsed.tree, frame)
    if not isinstance(result, pd.Series):
        result = pd.Series([result] * len(frame), index=frame.index, dtype="boolean")
    return result.astype("boolean").fillna(False).astype(bool)


def _pd(node: Node, frame: Any) -> Any:
    import numpy as np
    import pandas as pd

    if isinstance(node, Item):
        values = frame[node.name]
        if node.type is T.number:
            return pd.to_numeric(values, errors="coerce").astype("Float64")
        if node.type is T.date:
            return pd.to_datetime(values, errors="coerce")
        if node.type is T.boolean:
            return values.astype("boolean")
        return values.astype("string")
    if isinstance(node, Literal):
        if node.type is T.date:
            return pd.Timestamp(node.value)
        return pd.NA if node.value is None else node.value
    if isinstance(node, IsNull):
        inner = _pd(node.value, frame)
        missing = inner.isna() if isinstance(inner, pd.Series) else \
            pd.Series([inner is pd.NA] * len(frame), index=frame.index)
        return (~missing if node.negated else missing).astype("boolean")
    if isinstance(node, Between):
        value, low, high = (_pd(n, frame) for n in (node.value, node.low, node.high))
        found = _and(_compare(">=", value, low), _compare("<=", value, high))
        return ~found if node.negated else found
    if isinstance(node, Call):
        args = [_pd(a, frame) for a in node.args]
        if node.fn == "abs":
            return args[0].abs()
        if node.fn == "round":
            digits = int(node.args[1].value) if len(node.args) == 2 else 0  # type: ignore[attr-defined]
            # DuckDB rounds half away from zero; numpy rounds half to even.
            scale = 10.0 ** digits
            return np.sign(args[0]) * np.floor(args[0].abs() * scale + 0.5) / scale
        if node.fn == "length":
            return args[0].str.len().astype("Float64")
        if node.fn in ("year", "month"):
            part = args[0].dt.year if node.fn == "year" else args[0].dt.month
            return part.astype("Float64")
        out = args[0]
        for arg in args[1:]:
            out = out.fillna(arg) if isinstance(out, pd.Series) else \
                (arg if out is pd.NA else out)
        return out
    assert isinstance(node, Op)
    args = [_pd(a, frame) for a in node.args]
    if node.op == "and":
        return _and(args[0], args[1])
    if node.op == "or":
        return _bool(args[0]) | _bool(args[1])
    if node.op == "not":
        return ~_bool(args[0])
    if node.op == "neg":
        return -args[0]
    if node.op in ("+", "-", "*", "/"):
        left, right = args
        if node.op == "/":
            right = right.mask(right == 0) if isinstance(right, pd.Series) else \
                (pd.NA if right == 0 else right)
        return _ARITH[node.op](left, right)
    return _compare(node.op, args[0], args[1])


_ARITH: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}


def _bool(value: Any) -> Any:
    return value.astype("boolean") if hasattr(value, "astype") else value


def _and(a: Any, b: Any) -> Any:
    return _bool(a) & _bool(b)


def _compare(op: str, left: Any, right: Any) -> Any:
    """SQL comparison: unknown (NA) where either side is missing."""
    import pandas as pd

    def missing(v: Any) -> Any:
        return v.isna() if isinstance(v, pd.Series) else v is pd.NA or v is None

    unknown = missing(left) | missing(right)
    ops: dict[str, Callable[[Any, Any], Any]] = {
        "=": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}
    result = pd.Series(ops[op](left, right)).astype("boolean")
    return result.mask(unknown, pd.NA) if isinstance(unknown, pd.Series) else \
        (pd.Series(pd.NA, index=result.index, dtype="boolean") if unknown else result)
