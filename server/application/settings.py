"""Settings blocks of a schema in Vespa's general form, read into a small tree:

    name args... : value          (to the end of the line)
    name args... { settings... }  (nested)
    name args...                  (a flag: `fast-search`, `from-disk`, `gram`)

Each part that interprets a block (fields, summaries, profile tuning) walks the tree and
says which settings it knows, which it accepts without effect (a Note) and which it
refuses, each at its own location."""

from __future__ import annotations

from dataclasses import dataclass, field

from server.application.scanner import Scanner
from tensor_ir.expr.errors import Location


@dataclass
class Setting:
    name: str
    loc: Location
    args: list[str] = field(default_factory=list)
    value: str | None = None  # after ':'
    value_loc: Location | None = None
    children: list[Setting] | None = None  # a block

    def describe(self) -> str:
        head = " ".join([self.name, *self.args])
        if self.value is not None:
            return f"{head}: {self.value}"
        if self.children:
            return f"{head} {{ {'; '.join(c.describe() for c in self.children)} }}"
        return head


def read_settings(s: Scanner, what: str, opened: Location) -> list[Setting]:
    """The settings of a block whose '{' was read, up to and past its '}'."""
    out: list[Setting] = []
    while not s.accept("}"):
        if s.at_end():
            raise s.error(f"missing '}}' at the end of {what} (opened at {opened.line}:{opened.column})")
        out.append(read_setting(s, what))
    return out


def read_setting(s: Scanner, what: str) -> Setting:
    loc = s.here()
    name = s.word(f"a setting of {what}")
    st = Setting(name, loc)
    while True:
        ch = s.peek_on_line()
        if ch == ":":
            s.accept(":")
            st.value, st.value_loc = read_value(s)
            return st
        if ch == "{":
            bloc = s.expect("{")
            st.children = read_settings(s, f"'{name}'", bloc)
            return st
        if ch in ("", "\n", "}", "\r"):
            return st
        w = s.word_on_line()
        if w is None:
            if ch == ",":  # `inherits a, b`
                s.accept(",")
                continue
            raise s.error(f"unexpected '{ch}' in {what}")
        st.args.append(w)


def read_value(s: Scanner) -> tuple[str, Location]:
    """After `name:`: a word, number or quoted string, or several separated by commas
    (`fields: a, b`). Another setting may follow on the same line, as Vespa allows
    (`max-hits: 10 attribute: x`)."""
    s.skip(newlines=False)
    loc = s.loc()
    first = s.word_on_line()
    if first is None:
        text, loc = s.raw(stop_at_newline=True)
        return text.strip(), loc
    parts = [first]
    while s.peek_on_line() == ",":
        s.accept(",")
        w = s.word_on_line()
        if w is None:
            raise s.error("expected a name after ','")
        parts.append(w)
    return ", ".join(parts), loc
