"""A linear scan of TOML text for what tomllib cannot bound by itself, run before tomllib sees it.

tomllib recurses once per nested array or inline table (a few thousand levels end in
RecursionError, deeper ones in minutes of work and gigabytes), builds a tuple per prefix of a
dotted key (quadratic in its parts), and converts integers with ``int()`` (more than 4,300 digits
raise ValueError). :func:`check_toml_shape` rejects all three on the raw text, located at the line
where the limit is crossed.

The scan follows the TOML grammar closely enough to know strings, comments, keys and values
apart. It stops at the first thing that cannot be TOML (an unterminated string, a key without
``=``, a character out of place): tomllib reads the text in order too, so it reports a syntax
error there or earlier and reads nothing after it. Every step consumes input or closes a bracket,
and no step looks further ahead than it then moves, so the scan is O(len).
"""

from __future__ import annotations

import re

from faultlab.errors import ScenarioError, shown
from faultlab.limits import MAX_DIGITS, MAX_NESTING

# Possessive quantifiers throughout: a backtracking repeat of a group keeps state for every
# repetition, some 150 bytes per character of a long string.
_BLANK = re.compile(r"[ \t]*+")
_BLANK_LINES = re.compile(r"(?:[ \t\r\n]++|#[^\n]*+)*+")
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]++")
BASIC_STRING = re.compile(r'"[^"\\\n]*+(?:\\[^\n][^"\\\n]*+)*+"?')
LITERAL_STRING = re.compile(r"'[^'\n]*+'?")
MULTILINE_BASIC_STRING = re.compile(r'"""(?:[^\\"]++|\\.|"(?!""))*+(?:"""(?:"{1,2})?|\Z)', re.DOTALL)
MULTILINE_LITERAL_STRING = re.compile(r"'''(?:[^']++|'(?!''))*+(?:'''(?:'{1,2})?|\Z)")
_SCALAR = re.compile(r"[^,\]}#\r\n]*+")
_DIGITS = re.compile(r"[0-9][0-9_]*+")
_REST_OF_LINE = re.compile(r"[^\n]*+")
# A run of array elements that open nothing: scalars, single-line strings, commas, blanks, comments;
# and the same with arrays of such elements among them (one level deeper).
_FLAT_ITEM = (r"""[ \t\r\n,]++|\#[^\n]*+|"(?!"")[^"\\\n]*+(?:\\[^\n][^"\\\n]*+)*+"|'(?!'')[^'\n]*+'"""
              r"""|[^\[\]{}"'\#,\s]++""")
_FLAT_ELEMENTS = re.compile(rf"(?:{_FLAT_ITEM})*+", re.VERBOSE)
_FLAT_ELEMENTS_AND_ARRAYS = re.compile(rf"(?:{_FLAT_ITEM}|\[(?:{_FLAT_ITEM})*+\])*+", re.VERBOSE)
_LONG_RUN = re.compile(f"[0-9_]{{{MAX_DIGITS + 1},}}")
# The tokens of such a run, to find the digits outside strings and comments (group 1).
_FLAT_TOKEN = re.compile(
    r"""(?:"(?!"")[^"\\\n]*+(?:\\[^\n][^"\\\n]*+)*+"|'(?!'')[^'\n]*+'|\#[^\n]*+)|([0-9][0-9_]*+)|[^"'\#0-9]++|["']""",
    re.VERBOSE,
)

NESTING_HELP = "tables, dotted-key parts and arrays"


def check_toml_shape(text: str, path: str) -> None:
    """Raise ScenarioError (``path:line``) if ``text`` nests deeper than MAX_NESTING or holds a
    number with more than MAX_DIGITS digits, up to where it stops being TOML."""
    try:
        _Scan(text, path).run()
    except _NotToml:
        pass


class _NotToml(Exception):
    """The text stops being TOML here; tomllib will not read past this point."""


class _Scan:
    def __init__(self, text: str, path: str) -> None:
        self.s = text
        self.path = path
        self.pos = 0
        # Open arrays and inline tables: (kind, the depth of the values directly inside).
        self.stack: list[tuple[str, int]] = []

    def _error(self, message: str) -> ScenarioError:
        return ScenarioError(message, where=f"{self.path}:{self.s.count(chr(10), 0, self.pos) + 1}")

    def _end(self, pattern: re.Pattern[str]) -> int:
        """Where a match of ``pattern`` at the current position ends (here, if none)."""
        m = pattern.match(self.s, self.pos)
        return self.pos if m is None else m.end()

    def _check_depth(self, depth: int) -> None:
        if depth > MAX_NESTING:
            raise self._error(f"nesting deeper than {MAX_NESTING} levels ({NESTING_HELP}): "
                              f"expected at most {MAX_NESTING}")

    def _check_digits(self, m: re.Match[str]) -> None:
        """``m`` is a run of digits (and underscores) in a value, outside strings."""
        digits = len(m.group()) - m.group().count("_")
        if digits > MAX_DIGITS:
            self.pos = m.start()
            raise self._error(f"number {shown(m.group(), 24)} has {digits} digits: expected at most {MAX_DIGITS}")

    def run(self) -> None:
        table_depth = 0
        while self.pos < len(self.s):
            before = (self.pos, len(self.stack))
            if not self.stack:
                table_depth = self._statement(table_depth)
            else:
                self._inside()
            if (self.pos, len(self.stack)) == before:
                raise _NotToml

    def _statement(self, table_depth: int) -> int:
        """One top-level line: a table header or ``key = value``; returns the current table's depth."""
        self.pos = self._end(_BLANK_LINES)
        if self.pos >= len(self.s):
            return table_depth
        if self.s[self.pos] == "[":
            self.pos += 1
            array_of_tables = self.s.startswith("[", self.pos)
            self.pos += array_of_tables
            depth = self._key() + array_of_tables
            self._check_depth(depth)
            close = "]]" if array_of_tables else "]"
            if not self.s.startswith(close, self.pos):
                raise _NotToml
            self.pos += len(close)
            return depth
        self._value(table_depth + self._key_and_equals())
        return table_depth

    def _inside(self) -> None:
        """One step inside the innermost open array or inline table."""
        kind, depth = self.stack[-1]
        self.pos = self._end(_BLANK_LINES)
        if self.pos >= len(self.s):
            return
        c = self.s[self.pos]
        if c == ("]" if kind == "array" else "}"):
            self.stack.pop()
            self.pos += 1
        elif c == ",":
            self.pos += 1
        elif kind == "table":
            self._value(depth + self._key_and_equals())
        else:
            self._check_depth(depth)
            # Most arrays hold only these: skip them in one step (no further than they reach).
            end = self._end(_FLAT_ELEMENTS_AND_ARRAYS if depth < MAX_NESTING else _FLAT_ELEMENTS)
            if end == self.pos:
                self._value(depth)
                return
            if _LONG_RUN.search(self.s, self.pos, end) is not None:  # a long number, or digits in a string
                for m in _FLAT_TOKEN.finditer(self.s, self.pos, end):
                    if m.group(1) is not None:
                        self._check_digits(m)
            self.pos = end

    def _key_and_equals(self) -> int:
        """Skip ``key =``; the number of the key's parts."""
        parts = self._key()
        if not parts or not self.s.startswith("=", self.pos):
            raise _NotToml
        self.pos += 1
        return parts

    def _key(self) -> int:
        """Skip a (dotted) key and the blanks after it; the number of its parts."""
        parts = 0
        while True:
            self.pos = self._end(_BLANK)
            c = self.s[self.pos : self.pos + 1]
            if c in ("'", '"'):
                if self.s.startswith(c * 3, self.pos):
                    raise _NotToml  # a key is a one-line string
                self._string()
            else:
                m = _BARE_KEY.match(self.s, self.pos)
                if m is None:
                    return parts
                self.pos = m.end()
            parts += 1
            self._check_depth(parts)
            self.pos = self._end(_BLANK)
            if not self.s.startswith(".", self.pos):
                return parts
            self.pos += 1

    def _string(self) -> None:
        """Skip the string that starts here (any of the four kinds); it must be closed."""
        quote = self.s[self.pos]
        if self.s.startswith(quote * 3, self.pos):
            end = self._end(MULTILINE_BASIC_STRING if quote == '"' else MULTILINE_LITERAL_STRING)
            closed = end - self.pos >= 6 and self.s[end - 3 : end] == quote * 3
        else:
            end = self._end(BASIC_STRING if quote == '"' else LITERAL_STRING)
            closed = end - self.pos >= 2 and self.s[end - 1] == quote
        if not closed:
            raise _NotToml
        self.pos = end

    def _value(self, depth: int) -> None:
        self.pos = self._end(_BLANK)
        self._check_depth(depth)
        c = self.s[self.pos : self.pos + 1]
        if c in ("'", '"'):
            self._string()
        elif c == "[":
            self.pos += 1
            self.stack.append(("array", depth + 1))
        elif c == "{":
            self.pos += 1
            self.stack.append(("table", depth))
        else:
            end = self._end(_SCALAR)
            for m in _DIGITS.finditer(self.s, self.pos, end):
                self._check_digits(m)
            self.pos = end
