"""A linear scan of TOML text for what tomllib cannot bound by itself, run before tomllib sees it.

tomllib recurses once per nested array or inline table (a few thousand levels end in
RecursionError, deeper ones in minutes of work and gigabytes), builds a tuple per prefix of a
dotted key (quadratic in its parts), and converts integers with ``int()`` (more than 4,300 digits
raise ValueError). :func:`check_toml_shape` rejects all three on the raw text, located at the line
where the limit is crossed.

The scan follows the TOML grammar closely enough to know strings, comments, keys and values
apart, and tolerates anything else: on text that is not TOML it may stop checking, and tomllib
then reports the syntax error. Every step consumes input or closes a bracket, so it is O(len).
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

NESTING_HELP = "tables, dotted-key parts and arrays"


def check_toml_shape(text: str, path: str) -> None:
    """Raise ScenarioError (``path:line``) if ``text`` nests deeper than MAX_NESTING or holds a
    number with more than MAX_DIGITS digits."""
    _Scan(text, path).run()


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

    def run(self) -> None:
        table_depth = 0
        n = len(self.s)
        while self.pos < n:
            before = (self.pos, len(self.stack))
            if not self.stack:
                table_depth = self._statement(table_depth)
            else:
                self._inside()
            if (self.pos, len(self.stack)) == before:  # not TOML: step over it, tomllib will say why
                self.pos += 1

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
            self.pos = self._end(_REST_OF_LINE)
            return depth
        parts = self._key()
        if parts and self.s.startswith("=", self.pos):
            self.pos += 1
            self._value(table_depth + parts)
        elif parts:
            self.pos = self._end(_REST_OF_LINE)
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
        elif kind == "array":
            self._check_depth(depth)
            # Most arrays hold only these: skip them in one step.
            end = self._end(_FLAT_ELEMENTS_AND_ARRAYS if depth < MAX_NESTING else _FLAT_ELEMENTS)
            if end > self.pos and _LONG_RUN.search(self.s, self.pos, end) is None:
                self.pos = end  # nothing in there can have more than MAX_DIGITS digits
            else:
                self._value(depth)
        else:
            parts = self._key()
            if parts and self.s.startswith("=", self.pos):
                self.pos += 1
                self._value(depth + parts)

    def _key(self) -> int:
        """Skip a (dotted) key and the blanks after it; the number of its parts."""
        parts = 0
        while True:
            self.pos = self._end(_BLANK)
            c = self.s[self.pos : self.pos + 1]
            if c == '"':
                self.pos = self._end(BASIC_STRING)
            elif c == "'":
                self.pos = self._end(LITERAL_STRING)
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

    def _value(self, depth: int) -> None:
        self.pos = self._end(_BLANK)
        self._check_depth(depth)
        c = self.s[self.pos : self.pos + 1]
        if c == '"':
            pattern = MULTILINE_BASIC_STRING if self.s.startswith('"""', self.pos) else BASIC_STRING
            self.pos = self._end(pattern)
        elif c == "'":
            pattern = MULTILINE_LITERAL_STRING if self.s.startswith("'''", self.pos) else LITERAL_STRING
            self.pos = self._end(pattern)
        elif c == "[":
            self.pos += 1
            self.stack.append(("array", depth + 1))
        elif c == "{":
            self.pos += 1
            self.stack.append(("table", depth))
        else:
            end = self._end(_SCALAR)
            for m in _DIGITS.finditer(self.s, self.pos, end):
                digits = len(m.group()) - m.group().count("_")
                if digits > MAX_DIGITS:
                    self.pos = m.start()
                    raise self._error(f"number {shown(m.group(), 24)} has {digits} digits: "
                                      f"expected at most {MAX_DIGITS}")
            self.pos = end
