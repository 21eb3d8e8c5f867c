"""A character scanner for .sd files that knows line and column, and can capture the
raw text of embedded expressions and types for their own parsers."""

from __future__ import annotations

from tensor_ir.expr.errors import Location
from server.application.errors import SchemaError

_WORD = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-$@.")
_OPEN = {"(": ")", "[": "]", "{": "}", "<": ">"}


class Scanner:
    def __init__(self, text: str, file: str) -> None:
        self.text = text
        self.file = file
        self.pos = 0
        self.line = 1
        self.col = 1

    def loc(self) -> Location:
        return Location(self.file, self.line, self.col)

    def error(self, message: str, loc: Location | None = None) -> SchemaError:
        return SchemaError(message, loc or self.loc())

    def _advance(self, n: int = 1) -> str:
        chunk = self.text[self.pos:self.pos + n]
        for ch in chunk:
            if ch == "\n":
                self.line += 1
                self.col = 1
            else:
                self.col += 1
        self.pos += n
        return chunk

    def skip(self, newlines: bool = True) -> None:
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch == "#":
                while self.pos < len(self.text) and self.text[self.pos] != "\n":
                    self._advance()
            elif ch in " \t\r" or (newlines and ch == "\n"):
                self._advance()
            else:
                return

    def at_end(self) -> bool:
        self.skip()
        return self.pos >= len(self.text)

    def peek(self) -> str:
        self.skip()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def peek_word(self) -> str:
        self.skip()
        end = self.pos
        while end < len(self.text) and self.text[end] in _WORD:
            end += 1
        return self.text[self.pos:end]

    def word(self, what: str = "a name") -> str:
        self.skip()
        if self.peek() == '"':
            return self.string()
        w = self.peek_word()
        if not w:
            raise self.error(f"expected {what}, found {self._found()}")
        self._advance(len(w))
        return w

    def string(self) -> str:
        self.skip()
        if self.peek() != '"':
            raise self.error(f"expected a quoted string, found {self._found()}")
        start = self.loc()
        self._advance()
        out = []
        while self.pos < len(self.text) and self.text[self.pos] != '"':
            if self.text[self.pos] == "\n":
                raise self.error("unterminated string", start)
            if self.text[self.pos] == "\\":
                self._advance()
            out.append(self._advance())
        if self.pos >= len(self.text):
            raise self.error("unterminated string", start)
        self._advance()
        return "".join(out)

    def expect(self, ch: str, what: str = "") -> Location:
        self.skip()
        loc = self.loc()
        if not self.text.startswith(ch, self.pos):
            raise self.error(f"expected '{ch}'{' ' + what if what else ''}, found {self._found()}")
        self._advance(len(ch))
        return loc

    def accept(self, ch: str) -> bool:
        self.skip()
        if self.text.startswith(ch, self.pos):
            self._advance(len(ch))
            return True
        return False

    def _found(self) -> str:
        if self.pos >= len(self.text):
            return "end of file"
        w = self.peek_word()
        return f"'{w}'" if w else f"'{self.text[self.pos]}'"

    def raw(self, stop_at_newline: bool, stops: str = "}") -> tuple[str, Location]:
        """Text up to a depth-0 stop character (not consumed) or, if asked, a depth-0 newline.

        Brackets nest, so `{x:1}` inside an expression does not end it."""
        self.skip(newlines=False)
        loc = self.loc()
        start = self.pos
        stack: list[str] = []
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch == '"' or ch == "'":
                q = ch
                self._advance()
                while self.pos < len(self.text) and self.text[self.pos] not in (q, "\n"):
                    self._advance()
                if self.pos < len(self.text) and self.text[self.pos] == q:
                    self._advance()
                continue
            if not stack and (ch in stops or (stop_at_newline and ch == "\n")):
                break
            if ch in "([{":
                stack.append(_OPEN[ch])
            elif ch in ")]}":
                if not stack or stack[-1] != ch:
                    raise self.error(f"unbalanced '{ch}'")
                stack.pop()
            elif ch == "#" and not stack:
                break
            self._advance()
        if stack:
            raise self.error(f"missing '{stack[-1]}' before the end of the text", loc)
        return self.text[start:self.pos].rstrip(), loc
