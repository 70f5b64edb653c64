"""A safe subset of flespi's expression language, for ``filter`` in ``data=`` and ``{...}`` selectors.

    position.speed > 60 && engine.ignition.status == true
    $alarm.code != null || not(position.valid)
    device.name == 'truck*'          (a string literal with * or ? compares as a wildcard)
    (position.speed * 1.609) >= 100 && abs(position.direction - 180) < 10

A small tokenizer and a recursive-descent parser compile the text to nested closures; nothing is
ever passed to ``eval``. A parameter the message does not have makes the whole expression false,
unless it is written ``$param`` (then it is ``null``). Errors at run time (a type mismatch, a
division by zero) also make the expression false.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

MAX_LENGTH = 4096
MAX_DEPTH = 64
MAX_TERMS = 256  # operands (names, literals, calls): bounds the work per message

Value = Any
Node = Callable[[Mapping[str, Any]], Value]


class FilterSyntaxError(ValueError):
    """The expression does not parse; the message says where and why."""


class _Missing(Exception):
    """A parameter without ``$`` is absent: the whole expression is false."""


class _EvalError(Exception):
    """A run-time error (type mismatch, division by zero): the whole expression is false."""


_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<number>(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)
  | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<name>\$?[A-Za-z_][A-Za-z0-9_\-]*(?:\.[A-Za-z0-9_\-]+)*)
  | (?P<op>\|\||&&|==|!=|<=|>=|[<>!+\-*/%(),])
    """,
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "0": "\0"}


def wildcard_match(pattern: str, text: str) -> bool:
    """flespi wildcards: ``*`` any run of characters, ``?`` one character; nothing else is special.

    Greedy matching that only ever returns to the last ``*``: at most len(pattern) × len(text)
    steps, never the exponential backtracking a translated regular expression shows on patterns
    like ``*a*a*a*b`` against a long name."""
    if "*" not in pattern and "?" not in pattern:
        return pattern == text
    p = t = 0
    star = -1
    mark = 0
    np_, nt = len(pattern), len(text)
    while t < nt:
        c = pattern[p] if p < np_ else ""
        if c == "*":
            star, mark = p, t
            p += 1
        elif c and (c == "?" or c == text[t]):
            p += 1
            t += 1
        elif star >= 0:
            p = star + 1
            mark += 1
            t = mark
        else:
            return False
    while p < np_ and pattern[p] == "*":
        p += 1
    return p == np_


def _unescape(body: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), body, flags=re.DOTALL)


def tokenize(text: str) -> list[tuple[str, Any, int]]:
    tokens: list[tuple[str, Any, int]] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise FilterSyntaxError(f"unexpected character {text[pos]!r} at position {pos}")
        kind = m.lastgroup or ""
        raw = m.group()
        if kind == "number":
            tokens.append(("num", float(raw) if any(c in raw for c in ".eE") else int(raw), pos))
        elif kind == "string":
            tokens.append(("str", _unescape(raw[1:-1]), pos))
        elif kind == "name":
            tokens.append(("name", raw, pos))
        elif kind == "op":
            tokens.append(("op", raw, pos))
        pos = m.end()
    tokens.append(("end", None, len(text)))
    return tokens


def _number(v: Value) -> float | int:
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int | float):
        return v
    raise _EvalError("not a number")


def truthy(v: Value) -> bool:
    if v is None:
        return False
    if isinstance(v, bool):
        return v
    if isinstance(v, int | float):
        return v != 0 and not (isinstance(v, float) and math.isnan(v))
    if isinstance(v, str):
        return v != ""
    return bool(v)


def _equal(a: Value, b: Value, wildcard: str | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, str) or isinstance(b, str):
        if not (isinstance(a, str) and isinstance(b, str)):
            return False
        if wildcard is not None:  # the right side is this literal pattern
            return wildcard_match(wildcard, a)
        return a == b
    if isinstance(a, int | float) and isinstance(b, int | float):  # bool is an int: true == 1
        return a == b
    return bool(a == b)


def _compare(op: str, a: Value, b: Value) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        x: Any = a
        y: Any = b
    else:
        x, y = _number(a), _number(b)
    if op == "<":
        return bool(x < y)
    if op == "<=":
        return bool(x <= y)
    if op == ">":
        return bool(x > y)
    return bool(x >= y)


def _arith(op: str, a: Value, b: Value) -> Value:
    if op == "+" and isinstance(a, str) and isinstance(b, str):
        return a + b
    x, y = _number(a), _number(b)
    try:
        if op == "+":
            return x + y
        if op == "-":
            return x - y
        if op == "*":
            return x * y
        if op == "/":
            return x / y
        return math.fmod(x, y)
    except (ZeroDivisionError, ValueError, OverflowError) as exc:
        raise _EvalError(str(exc)) from exc


def _fn_tonumber(v: Value) -> Value:
    if isinstance(v, str):
        try:
            return float(v) if any(c in v for c in ".eE") else int(v)
        except ValueError as exc:
            raise _EvalError("not a number") from exc
    return _number(v)


def _fn_tostring(v: Value) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _fn_round(v: Value, digits: Value) -> Value:
    places = _number(digits)
    if not isinstance(places, int) and not float(places).is_integer():
        raise _EvalError("round() digits must be whole")
    if not -15 <= places <= 15:
        raise _EvalError("round() digits out of range")
    return round(_number(v), int(places))


def _fn_extreme(pick: Callable[..., Value], values: list[Value]) -> Value:
    return pick(_number(v) for v in values)


PREVIOUS_PREFIX = "previous:"  # key of a parameter's previous value in an expression's scope


_FUNCTIONS: dict[str, tuple[int, Callable[..., Value]]] = {
    "not": (1, lambda v: not truthy(v)),
    "abs": (1, lambda v: abs(_number(v))),
    "tonumber": (1, _fn_tonumber),
    "isstring": (1, lambda v: isinstance(v, str)),
    "isnull": (1, lambda v: v is None),
    "round": (1, lambda v: round(_number(v))),
    "tostring": (1, lambda v: _fn_tostring(v)),
    "floor": (1, lambda v: math.floor(_number(v))),
    "ceil": (1, lambda v: math.ceil(_number(v))),
}


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0
        self.previous: set[str] = set()  # parameters named in previous('...')
        self.terms = 0

    # helpers
    def peek(self) -> tuple[str, Any, int]:
        return self.tokens[self.i]

    def take(self) -> tuple[str, Any, int]:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def at_op(self, *ops: str) -> str | None:
        kind, value, _ = self.peek()
        if kind == "op" and value in ops:
            return str(value)
        return None

    def expect(self, op: str) -> None:
        kind, value, pos = self.take()
        if kind != "op" or value != op:
            found = "end of expression" if kind == "end" else repr(value)
            raise FilterSyntaxError(f"expected {op!r} at position {pos}, found {found}")

    def nest(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise FilterSyntaxError(f"expression nested deeper than {MAX_DEPTH} levels")

    # grammar: or > and > equality > comparison > additive > multiplicative > unary > primary
    def parse(self) -> Node:
        node = self.or_()
        kind, value, pos = self.peek()
        if kind != "end":
            raise FilterSyntaxError(f"unexpected {value!r} at position {pos}")
        return node

    def or_(self) -> Node:
        node = self.and_()
        while self.at_op("||"):
            self.take()
            left, right = node, self.and_()
            node = self._or(left, right)
        return node

    @staticmethod
    def _or(left: Node, right: Node) -> Node:
        def run(m: Mapping[str, Any]) -> Value:
            try:
                if truthy(left(m)):
                    return True
            except (_Missing, _EvalError):
                pass  # one false branch does not decide an "or"
            return truthy(right(m))

        return run

    def and_(self) -> Node:
        node = self.equality()
        while self.at_op("&&"):
            self.take()
            left, right = node, self.equality()
            node = self._and(left, right)
        return node

    @staticmethod
    def _and(left: Node, right: Node) -> Node:
        return lambda m: truthy(left(m)) and truthy(right(m))

    def equality(self) -> Node:
        node = self.comparison()
        while op := self.at_op("==", "!="):
            self.take()
            wildcard_right = self._literal_pattern()
            left, right = node, self.comparison()
            node = self._eq(op, left, right, wildcard_right)
        return node

    def _literal_pattern(self) -> str | None:
        kind, value, _ = self.peek()
        if kind != "str":
            return None
        nxt = self.tokens[self.i + 1]
        if ("*" in value or "?" in value) and nxt[0] in ("end", "op") and nxt[1] in (
            None, "&&", "||", ")", ",", "==", "!=",
        ):
            return str(value)
        return None

    @staticmethod
    def _eq(op: str, left: Node, right: Node, pattern: str | None) -> Node:
        negate = op == "!="

        def run(m: Mapping[str, Any]) -> Value:
            result = _equal(left(m), right(m), pattern)
            return not result if negate else result

        return run

    def comparison(self) -> Node:
        node = self.additive()
        while op := self.at_op("<", "<=", ">", ">="):
            self.take()
            left, right = node, self.additive()
            node = (lambda o, a, b: lambda m: _compare(o, a(m), b(m)))(op, left, right)
        return node

    def additive(self) -> Node:
        node = self.multiplicative()
        while op := self.at_op("+", "-"):
            self.take()
            left, right = node, self.multiplicative()
            node = (lambda o, a, b: lambda m: _arith(o, a(m), b(m)))(op, left, right)
        return node

    def multiplicative(self) -> Node:
        node = self.unary()
        while op := self.at_op("*", "/", "%"):
            self.take()
            left, right = node, self.unary()
            node = (lambda o, a, b: lambda m: _arith(o, a(m), b(m)))(op, left, right)
        return node

    def unary(self) -> Node:
        if op := self.at_op("!", "-", "+"):
            self.take()
            self.nest()
            operand = self.unary()
            self.depth -= 1
            if op == "!":
                return lambda m: not truthy(operand(m))
            if op == "-":
                return lambda m: -_number(operand(m))
            return lambda m: _number(operand(m))
        return self.primary()

    def primary(self) -> Node:
        kind, value, pos = self.take()
        self.terms += 1
        if self.terms > MAX_TERMS:
            raise FilterSyntaxError(f"expression has more than {MAX_TERMS} terms")
        if kind == "num" or kind == "str":
            const = value
            return lambda _m: const
        if kind == "op" and value == "(":
            self.nest()
            node = self.or_()
            self.expect(")")
            self.depth -= 1
            return node
        if kind == "name":
            name = str(value)
            lowered = name.lower()
            if lowered == "true":
                return lambda _m: True
            if lowered == "false":
                return lambda _m: False
            if lowered == "null":
                return lambda _m: None
            if self.at_op("("):
                return self.call(name, pos)
            if name.startswith("$"):
                key = name[1:]
                return lambda m: m.get(key)

            def param(m: Mapping[str, Any]) -> Value:
                try:
                    return m[name]
                except KeyError:
                    raise _Missing(name) from None

            return param
        found = "end of expression" if kind == "end" else repr(value)
        raise FilterSyntaxError(f"unexpected {found} at position {pos}")

    def call(self, name: str, pos: int) -> Node:
        self.expect("(")
        if name == "previous":
            # previous('param'): the device's value of param before this message (null if none);
            # the caller puts it in the scope under PREVIOUS_PREFIX + param.
            kind, value, _ = self.take()
            if kind != "str":
                raise FilterSyntaxError(f"previous() takes one quoted parameter name (position {pos})")
            self.expect(")")
            self.previous.add(str(value))
            key = PREVIOUS_PREFIX + str(value)
            return lambda m: m.get(key)
        self.nest()
        args: list[Node] = []
        if not self.at_op(")"):
            args.append(self.or_())
            while self.at_op(","):
                self.take()
                args.append(self.or_())
        self.expect(")")
        self.depth -= 1
        if name == "if":
            if len(args) != 3:
                raise FilterSyntaxError(f"if() takes 3 arguments (position {pos})")
            cond, yes, no = args
            return lambda m: yes(m) if truthy(cond(m)) else no(m)
        if name in ("min", "max"):
            if not args:
                raise FilterSyntaxError(f"{name}() takes at least 1 argument (position {pos})")
            pick = min if name == "min" else max
            return lambda m: _fn_extreme(pick, [a(m) for a in args])
        if name == "round" and len(args) == 2:
            value, digits = args
            return lambda m: _fn_round(value(m), digits(m))

        spec = _FUNCTIONS.get(name)
        if spec is None:
            raise FilterSyntaxError(f"unknown function {name!r} at position {pos}")
        arity, fn = spec
        if len(args) != arity:
            raise FilterSyntaxError(f"{name}() takes {arity} argument(s) (position {pos})")
        (arg,) = args
        return lambda m: fn(arg(m))


class Filter:
    """A compiled expression; ``matches(message)`` never raises."""

    __slots__ = ("_node", "previous", "text")

    def __init__(self, text: str) -> None:
        if not isinstance(text, str):
            raise FilterSyntaxError("filter must be a string")
        if len(text) > MAX_LENGTH:
            raise FilterSyntaxError(f"filter longer than {MAX_LENGTH} characters")
        if not text.strip():
            raise FilterSyntaxError("filter is empty")
        self.text = text
        try:
            parser = _Parser(text)
            self._node = parser.parse()
            self.previous = frozenset(parser.previous)
        except RecursionError as exc:  # pragma: no cover - MAX_DEPTH keeps us well below the limit
            raise FilterSyntaxError("expression too deeply nested") from exc
        except IndexError as exc:  # pragma: no cover - defensive: ran past the end token
            raise FilterSyntaxError("unexpected end of expression") from exc

    def value(self, message: Mapping[str, Any]) -> Value:
        """The expression's value; raises nothing, returns None on an error or a missing param."""
        try:
            return self._node(message)
        except (_Missing, _EvalError, TypeError, OverflowError, RecursionError):
            return None

    def matches(self, message: Mapping[str, Any]) -> bool:
        return truthy(self.value(message))

    def __repr__(self) -> str:
        return f"Filter({self.text!r})"
