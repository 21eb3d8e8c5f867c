"""A character scanner for .sd files that knows line and column, and can capture the
raw text of embedded expressions and types for their own parsers."""

from __future__ import annotations

from server.application.errors import SchemaError
from tensor_ir.expr.errors import Location

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

    def here(self) -> Location:
        """Where the next word starts (past white space and comments)."""
        self.skip()
        return self.loc()

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

        Brackets nest, so `{x:1}` inside an expression does not end it; a bracket closed by
        the wrong one, or a string left open, is an error at the place it happened."""
        self.skip(newlines=False)
        loc = self.loc()
        start = self.pos
        stack: list[tuple[str, str, Location]] = []  # (closer wanted, opener, where it opened)
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch == '"' or ch == "'":
                q, qloc = ch, self.loc()
                self._advance()
                while self.pos < len(self.text) and self.text[self.pos] not in (q, "\n"):
                    self._advance(2 if self.text[self.pos] == "\\" and self.text[self.pos + 1:self.pos + 2] == q
                                  else 1)
                if self.pos >= len(self.text) or self.text[self.pos] != q:
                    raise self.error(f"unterminated string: missing the closing {q} of the string that starts here",
                                     qloc)
                self._advance()
                continue
            if not stack and (ch in stops or (stop_at_newline and ch == "\n")):
                break
            if ch in "([{":
                stack.append((_OPEN[ch], ch, self.loc()))
            elif ch in ")]}":
                if not stack:
                    raise self.error(f"'{ch}' closes nothing: no bracket is open here")
                want, opener, oloc = stack[-1]
                if ch != want:
                    raise self.error(f"expected '{want}' to close the '{opener}' at {oloc.line}:{oloc.column}, "
                                     f"found '{ch}'")
                stack.pop()
            elif ch == "#":
                if not stack and stop_at_newline:
                    break
                # a comment inside a block or brackets: kept in the text (the expression
                # tokenizer skips it), but its quotes and brackets do not count
                while self.pos < len(self.text) and self.text[self.pos] != "\n":
                    self._advance()
                continue
            self._advance()
        if stack:
            want, opener, oloc = stack[-1]
            raise self.error(f"missing '{want}' to close the '{opener}' at {oloc.line}:{oloc.column} "
                             "before the end of the file", oloc)
        return self.text[start:self.pos].rstrip(), loc

    def word_on_line(self) -> str | None:
        """The next word if it is on this line (a quoted string counts), else None; nothing
        is consumed when there is none."""
        self.skip(newlines=False)
        if self.pos < len(self.text) and self.text[self.pos] == '"':
            return self.string()
        w = self.peek_word_on_line()
        if not w:
            return None
        self._advance(len(w))
        return w

    def peek_word_on_line(self) -> str:
        self.skip(newlines=False)
        end = self.pos
        while end < len(self.text) and self.text[end] in _WORD:
            end += 1
        return self.text[self.pos:end]

    def peek_on_line(self) -> str:
        """The next character on this line past blanks and a comment; '\\n' at the end of the line."""
        self.skip(newlines=False)
        if self.pos >= len(self.text):
            return ""
        return self.text[self.pos]

    def skip_block(self, opened: Location) -> None:
        """Past the '}' that closes a block whose '{' was already read: after a located error
        inside it, so the parts that follow can still be checked."""
        depth = 1
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch == "#":
                self.skip()
                continue
            if ch in "\"'":
                # as raw() reads strings: one that the line does not close leaves the block unclear
                qloc = self.loc()
                self._advance()
                while self.pos < len(self.text) and self.text[self.pos] not in (ch, "\n"):
                    self._advance()
                if self.pos >= len(self.text) or self.text[self.pos] != ch:
                    raise self.error("unterminated string", qloc)
            elif ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    self._advance()
                    return
            self._advance()
        raise self.error("missing '}' to close the block opened here", opened)

    def save(self) -> tuple[int, int, int]:
        return self.pos, self.line, self.col

    def restore(self, state: tuple[int, int, int]) -> None:
        self.pos, self.line, self.col = state

    def skip_element(self, start: tuple[int, int, int]) -> None:
        """Back to `start` and past the whole `name ... { ... }` element that begins there, after
        a located error inside it; raises (a SchemaError) where its braces do not close."""
        self.restore(start)
        while self.pos < len(self.text) and self.text[self.pos] != "{":
            if self.text[self.pos] == "}":
                raise self.error("'}' before the '{' of the element")
            if self.text[self.pos] == "#":
                self.skip()
                continue
            self._advance()
        if self.pos >= len(self.text):
            raise self.error("missing '{'")
        opened = self.loc()
        self._advance()
        self.skip_block(opened)
