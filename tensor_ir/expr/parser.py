"""A recursive-descent parser for Vespa ranking expressions.

Every error names file:line:column and what was expected. Precedence, lowest first:
||, &&, comparisons, + -, * / %, ^, unary - and !.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tensor_ir.expr.ast import (
    Binary,
    Call,
    Expr,
    Generate,
    Label,
    Lambda,
    Literal,
    Name,
    NameList,
    Num,
    SliceExpr,
    Str,
    TypeSpec,
    Unary,
)
from tensor_ir.expr.errors import Location, RankingError

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+|\#[^\n]*)
  | (?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?[fFlL]?)
  | (?P<str>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<ident>[A-Za-z_$@][A-Za-z0-9_$@]*)
  | (?P<op>==|!=|<=|>=|~=|&&|\|\||[-+*/%^<>!(){}\[\],:.])
    """,
    re.X,
)


@dataclass(frozen=True)
class Token:
    kind: str  # num str ident op eof
    text: str
    loc: Location


def tokenize(text: str, file: str = "<expression>", line: int = 1, column: int = 1) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    ln, col = line, column
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise RankingError(f"unexpected character {text[pos]!r}", Location(file, ln, col))
        kind = m.lastgroup or ""
        chunk = m.group()
        if kind != "ws":
            tokens.append(Token(kind, chunk, Location(file, ln, col)))
        nl = chunk.count("\n")
        if nl:
            ln += nl
            col = len(chunk) - chunk.rfind("\n")
        else:
            col += len(chunk)
        pos = m.end()
    tokens.append(Token("eof", "", Location(file, ln, col)))
    return tokens


# Binding strength of the infix operators, as in Vespa's evaluator (eval/operator_nodes.h):
# C-like levels, all left associative except ^. Unary - and ! bind tighter than ^, so
# -2^2 is 4 there and here.
_PRECEDENCE: dict[str, int] = {
    "||": 1, "&&": 2,
    "==": 3, "!=": 3, "~=": 3, "<": 3, "<=": 3, ">": 3, ">=": 3,
    "+": 4, "-": 4, "*": 5, "/": 5, "%": 5, "^": 6,
}  # fmt: skip
_IN_PRECEDENCE = 3  # `x in [a, b]` binds like a comparison

# Deeper nesting is refused with a located error rather than exhausting Python's stack:
# parsing and compiling take a few frames per level. Long flat chains (a + b + c ...,
# thousands of trees of a tree ensemble) are not nesting and have no limit.
MAX_NESTING = 100


class Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.i = 0
        self.depth = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def peek(self, k: int = 1) -> Token:
        return self.tokens[min(self.i + k, len(self.tokens) - 1)]

    def advance(self) -> Token:
        t = self.tok
        self.i = min(self.i + 1, len(self.tokens) - 1)
        return t

    def at(self, text: str) -> bool:
        return self.tok.kind in ("op", "ident") and self.tok.text == text

    def expect(self, text: str, what: str = "") -> Token:
        if not self.at(text):
            raise self.error(f"expected '{text}'{' ' + what if what else ''}")
        return self.advance()

    def error(self, message: str) -> RankingError:
        found = "end of expression" if self.tok.kind == "eof" else f"'{self.tok.text}'"
        return RankingError(f"{message}, found {found}", self.tok.loc)

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise RankingError(f"expression nests more than {MAX_NESTING} levels deep", self.tok.loc)

    # ------------------------------------------------------------ expressions

    def parse(self) -> Expr:
        if self.tok.kind == "eof":
            raise self.error("expected an expression")
        e = self.expr()
        if self.tok.kind != "eof":
            raise self.error("expected an operator or the end of the expression")
        return e

    def expr(self, min_prec: int = 1) -> Expr:
        """Precedence climbing: loops over operators of one level, recurses only to a
        tighter level, so a flat chain costs no stack."""
        self.enter()
        try:
            left = self.unary()
            while True:
                if self.tok.kind == "ident" and self.tok.text == "in" and self.peek().text == "[" \
                        and _IN_PRECEDENCE >= min_prec:
                    left = self.membership(left)
                    continue
                prec = _PRECEDENCE.get(self.tok.text) if self.tok.kind == "op" else None
                if prec is None or prec < min_prec:
                    return left
                op = self.advance()
                right = self.expr(prec if op.text == "^" else prec + 1)
                left = Binary(op.loc, op.text, left, right)
        finally:
            self.depth -= 1

    def membership(self, left: Expr) -> Expr:
        """`x in [a, b, c]`: Vespa's shorthand for x == a || x == b || x == c."""
        loc = self.advance().loc
        self.expect("[")
        if self.at("]"):
            # an empty set holds nothing: 0 for every cell (x == x is there for x's type)
            self.advance()
            return Binary(loc, "&&", Binary(loc, "==", left, left), Num(loc, 0.0))
        items: list[Expr] = []
        while True:
            items.append(self.expr(_IN_PRECEDENCE + 1))
            if self.at(","):
                self.advance()
                continue
            self.expect("]", "to close the 'in' list")
            break
        out: Expr = Binary(loc, "==", left, items[0])
        for it in items[1:]:
            out = Binary(loc, "||", out, Binary(loc, "==", left, it))
        return out

    def unary(self) -> Expr:
        if self.at("-") or self.at("!") or self.at("+"):
            op = self.advance()
            self.enter()
            try:
                operand = self.unary()
            finally:
                self.depth -= 1
            return operand if op.text == "+" else Unary(op.loc, op.text, operand)
        return self.postfix(self.primary())

    def postfix(self, e: Expr) -> Expr:
        while True:
            if self.at("{"):
                e = self.slice_by_dim(e)
            elif self.at("["):
                loc = self.advance().loc
                idx = self.expr()
                self.expect("]", "to close the index")
                e = SliceExpr(loc, e, None, idx)
            else:
                return e

    def slice_by_dim(self, target: Expr) -> Expr:
        loc = self.expect("{").loc
        parts: list[tuple[str, Expr]] = []
        verbatim: list[tuple[str, str]] = []
        if self.at("}"):
            # `x{}`: a mapped dimension spec (random(x{})), refused by whoever reads it
            self.advance()
            return SliceExpr(loc, target, (), None)
        while True:
            if self.tok.kind != "ident":
                raise self.error("expected a dimension name in the slice")
            dim = self.advance().text
            self.expect(":", f"after dimension '{dim}'")
            if self.tok.kind == "ident" and self.peek().text in (",", "}"):
                verbatim.append((dim, self.tok.text))
            parts.append((dim, self.label_value()))
            if self.at(","):
                self.advance()
                continue
            self.expect("}", "to close the slice")
            return SliceExpr(loc, target, tuple(parts), None, tuple(verbatim))

    def label_value(self) -> Expr:
        """A label is an expression, as in Vespa's Java parser, which turns `{x:1-x}` into
        `{x:(1-x)}`: a number, a name (a dimension variable, function argument or
        function) or any arithmetic of them, with or without parentheses. A bare name is
        also noted as written (SliceExpr.verbatim): on a mapped dimension it is the label."""
        return self.expr()

    def primary(self) -> Expr:
        t = self.tok
        if t.kind == "num":
            self.advance()
            return Num(t.loc, _number(t))
        if t.kind == "str":
            self.advance()
            return Str(t.loc, _unquote(t.text))
        if self.at("("):
            return self.paren()
        if t.kind == "ident":
            if t.text == "tensor" and (self.peek().text in ("<", "(")):
                return self.tensor_expr()
            if t.text == "f" and self.peek().text == "(" and self._looks_like_lambda():
                return self.lambda_()
            self.advance()
            if t.text in ("true", "false") and not self.at("("):
                return Num(t.loc, 1.0 if t.text == "true" else 0.0)
            if self.at("("):
                return self.call(t)
            return Name(t.loc, t.text)
        raise self.error("expected a number, a name, a function call or '('")

    def paren(self) -> Expr:
        loc = self.expect("(").loc
        # (a, b): a dimension-name list, as in rename(t, (a, b), (c, d))
        if self.tok.kind == "ident" and self.peek().text == ",":
            names = [self.advance().text]
            while self.at(","):
                self.advance()
                if self.tok.kind != "ident":
                    raise self.error("expected a dimension name")
                names.append(self.advance().text)
            self.expect(")", "to close the name list")
            return NameList(loc, tuple(names))
        e = self.expr()
        self.expect(")", "to close '('")
        return e

    def call(self, name: Token) -> Expr:
        self.expect("(")
        args: list[Expr] = []
        if not self.at(")"):
            while True:
                args.append(self.expr())
                if self.at(","):
                    self.advance()
                    continue
                break
        self.expect(")", f"to close the arguments of '{name.text}'")
        output = None
        if self.at(".") and self.peek().kind in ("ident", "str"):
            self.advance()
            out = self.advance()
            output = _unquote(out.text) if out.kind == "str" else out.text
        return Call(name.loc, name.text, tuple(args), output)

    def _looks_like_lambda(self) -> bool:
        # f(a, b)(...) : identifiers in parentheses followed by '('
        j = self.i + 2
        while self.tokens[j].kind == "ident":
            j += 1
            if self.tokens[j].text == ",":
                j += 1
                continue
            break
        return self.tokens[j].text == ")" and self.tokens[j + 1].text == "("

    def lambda_(self) -> Expr:
        loc = self.advance().loc
        self.expect("(")
        params: list[str] = []
        while self.tok.kind == "ident":
            params.append(self.advance().text)
            if self.at(","):
                self.advance()
        self.expect(")")
        self.expect("(", "to open the lambda body")
        body = self.expr()
        self.expect(")", "to close the lambda body")
        return Lambda(loc, tuple(params), body)

    def type_spec(self) -> TypeSpec:
        start = self.expect("tensor")
        text = "tensor"
        if self.at("<"):
            self.advance()
            if self.tok.kind != "ident":
                raise self.error("expected a cell type")
            text += f"<{self.advance().text}>"
            self.expect(">", "to close the cell type")
        self.expect("(", "to open the dimension list")
        dims: list[str] = []
        while not self.at(")"):
            if self.tok.kind != "ident":
                raise self.error("expected a dimension name")
            dim = self.advance().text
            if self.at("["):
                self.advance()
                size = ""
                if self.tok.kind == "num":
                    size = self.advance().text
                self.expect("]", "to close the dimension size")
                dims.append(f"{dim}[{size}]")
            elif self.at("{"):
                self.advance()
                self.expect("}")
                dims.append(f"{dim}{{}}")
            else:
                raise self.error(f"expected '[' or '{{' after dimension '{dim}'")
            if self.at(","):
                self.advance()
        self.expect(")")
        return TypeSpec(start.loc, text + "(" + ",".join(dims) + ")")

    def tensor_expr(self) -> Expr:
        spec = self.type_spec()
        if self.at(":"):
            self.advance()
            if "{}" in spec.text and self.at("{"):
                return self.mapped_values(spec)
            if self.at("["):
                return Literal(spec.loc, spec, self.dense_values(), None)
            if self.at("{"):
                return Literal(spec.loc, spec, None, self.cells())
            raise self.error("expected '[' or '{' to start the tensor's values")
        if self.at("("):
            self.advance()
            body = self.expr()
            self.expect(")", "to close the generator body")
            return Generate(spec.loc, spec, body)
        raise self.error("expected ':' and values, or '(' and a generator expression, after the tensor type")

    def skip_balanced(self) -> None:
        """Past one bracketed group, `{...}` or `[...]`, with whatever nests inside it."""
        closing = {"{": "}", "[": "]", "(": ")"}
        stack = [closing[self.advance().text]]
        while stack:
            if self.tok.kind == "eof":
                raise self.error(f"expected '{stack[-1]}' to close the tensor's values")
            t = self.advance()
            if t.kind == "op" and t.text in closing:
                stack.append(closing[t.text])
            elif t.kind == "op" and t.text == stack[-1]:
                stack.pop()

    def mapped_values(self, spec: TypeSpec) -> Literal:
        """The values of a mapped or mixed type: cells with full addresses
        ({{x:a,y:0}:1}, or {} for none) or the short form by label ({a:1}, {a:[1,2]})."""
        start = self.i
        self.skip_balanced()  # an unclosed literal is reported where it ends
        self.i = start
        if self.peek().text in ("{", "}"):
            return Literal(spec.loc, spec, None, self.cells())
        self.expect("{")
        blocks: list[tuple[Label, object]] = []
        while not self.at("}"):
            label = self.label("in the tensor values")
            self.expect(":", f"after label '{label}'")
            blocks.append((label, self.dense_values() if self.at("[") else self.expr()))
            if self.at(","):
                self.advance()
            elif not self.at("}"):
                raise self.error("expected ',' or '}' in the tensor values")
        self.expect("}")
        return Literal(spec.loc, spec, None, None, tuple(blocks))

    def label(self, where: str) -> Label:
        """A label in a literal's address: a name, a quoted string or a whole number (an
        index, for an indexed dimension); other numbers are kept as written."""
        negative = self.at("-") and self.peek().kind == "num"
        if negative:
            self.advance()
        t = self.tok
        if t.kind == "ident" and not negative:
            return self.advance().text
        if t.kind == "str" and not negative:
            return _unquote(self.advance().text)
        if t.kind == "num":
            self.advance()
            value = -_number(t) if negative else _number(t)
            return int(value) if value.is_integer() else ("-" if negative else "") + t.text
        raise self.error(f"expected a label {where}")

    def dense_values(self) -> tuple[object, ...]:
        self.expect("[")
        self.enter()
        try:
            items: list[object] = []
            while not self.at("]"):
                items.append(self.dense_values() if self.at("[") else self.expr())
                if self.at(","):
                    self.advance()
                elif not self.at("]"):
                    raise self.error("expected ',' or ']' in the tensor values")
            self.expect("]")
            return tuple(items)
        finally:
            self.depth -= 1

    def cells(self) -> tuple[tuple[tuple[tuple[str, Label], ...], Expr], ...]:
        self.expect("{")
        out: list[tuple[tuple[tuple[str, Label], ...], Expr]] = []
        while not self.at("}"):
            self.expect("{", "to open a cell address")
            addr: list[tuple[str, Label]] = []
            while not self.at("}"):
                if self.tok.kind != "ident":
                    raise self.error("expected a dimension name in the cell address")
                dim = self.advance().text
                self.expect(":")
                addr.append((dim, self.label(f"for dimension '{dim}'")))
                if self.at(","):
                    self.advance()
            self.expect("}")
            self.expect(":", "after the cell address")
            out.append((tuple(addr), self.expr()))
            if self.at(","):
                self.advance()
        self.expect("}")
        return tuple(out)


def _number(t: Token) -> float:
    return float(t.text.rstrip("fFlL"))


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'"}


def _unquote(text: str) -> str:
    """The value of a quoted token: backslash escapes \\n \\t \\r \\\\ \\" \\'; any other
    backslash is kept as it is (names such as "a\\b" are rare but must not crash)."""
    body = text[1:-1]
    if "\\" not in body:
        return body
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            out.append(_ESCAPES.get(nxt, ch + nxt))
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def parse_expression(text: str, file: str = "<expression>", line: int = 1, column: int = 1) -> Expr:
    return Parser(tokenize(text, file, line, column)).parse()
