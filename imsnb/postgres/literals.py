"""Query text safe to show: literals and comments masked by PostgreSQL's own lexer, long text cut to one line."""

from __future__ import annotations

from typing import Any

import pandas as pd
from pglast.parser import ParseError, scan

from imsnb.config import secret_in_value
from imsnb.scrub import REDACTED

__all__ = [
    "excerpt",
    "mask_literals",
    "masked",
]

# PostgreSQL's own lexer (libpg_query, through pglast) names every token; these are the ones whose text is data.
_LITERAL_TOKENS = frozenset({"SCONST", "USCONST", "BCONST", "XCONST", "ICONST", "FCONST"})
_NUMERIC_TOKENS = frozenset({"ICONST", "FCONST"})
APPLICATION_COLUMNS = ("application", "blocking_application")  # application_name, as the fetchers name it
_COMMENT_MASKS = {"C_COMMENT": "/* ? */", "SQL_COMMENT": "-- ?"}
_END = "ASCII_59"


class _SettingValue:
    """Which tokens are a setting's value, data even when they lex as words (`SET app.api_key TO some_word`,
    `ALTER ROLE r SET x = "y"`, `CREATE FUNCTION ... SET x = y AS ...`): in a statement that starts with SET, ALTER
    or CREATE (comments aside), from a SET's TO or = to where the value ends: the statement's end; inside
    parentheses (`SET (fillfactor = 70)`), the comma or parenthesis that closes it; outside, a function's next
    clause. The commas and parentheses between values are kept."""

    STATEMENTS = frozenset({"SET", "ALTER", "CREATE"})
    KEPT = frozenset({"ASCII_44", "ASCII_40", "ASCII_41"})
    CLAUSES = frozenset(
        {"AS", "LANGUAGE", "RETURNS", "IMMUTABLE", "STABLE", "VOLATILE", "STRICT", "CALLED", "SECURITY", "COST"}
        | {"ROWS", "PARALLEL", "SUPPORT", "SET", "RESET", "LEAKPROOF", "EXTERNAL", "WINDOW", "TRANSFORM"}
    )

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.first: str | None = None  # the statement's first word
        self.setting = False  # after a SET of such a statement
        self.value_at: int | None = None  # the parenthesis depth its value started at, while in one
        self.depth = 0

    def masks(self, name: str) -> bool:
        if name in _COMMENT_MASKS:
            return False
        if name == _END:
            self._reset()
            return False
        self.first = self.first or name
        depth = self.depth
        self.depth += (name == "ASCII_40") - (name == "ASCII_41")
        if self.value_at is not None:
            closes = name in ("ASCII_41", "ASCII_44") and depth == self.value_at > 0
            if not (closes or (depth == 0 and name in self.CLAUSES)):
                return name not in self.KEPT
            self.value_at = None  # the token that ends it is shown (a clause's SET may start another)
        self.setting = self.setting or (name == "SET" and self.first in self.STATEMENTS)
        if self.setting and name in ("TO", "ASCII_61"):
            self.value_at = depth
        return False


def mask_literals(sql: str | None) -> str | None:
    """Query text with every literal (string, bit, hex, numeric, dollar-quoted) and comment replaced by `?`.

    Tokens come from PostgreSQL's own lexer (libpg_query via pglast, PostgreSQL 18's grammar), so quoted
    identifiers ("o'brien") are kept, nested comments and `4_000`, `0xFF`, `.5` are literals as the server sees
    them, and `$1` placeholders stay. Text the lexer refuses from some point on (cut off at
    track_activity_query_size, junk after a number) is masked from that point; a word glued to a number (a lexer
    older than PostgreSQL 16 reads `0xFF` as `0` and `xFF`) is masked with it; a plain string holding a backslash
    masks everything after it (with standard_conforming_strings off it would end elsewhere); anything else the
    lexer skips masks the whole statement.
    """
    if not isinstance(sql, str):  # None, or NaN where a frame's text column mixes text and NULL
        return None
    try:
        tokens, stop = scan(sql), len(sql)
    except ParseError as exc:
        stop = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], int) else 0
        try:
            tokens = scan(sql[:stop]) if 0 < stop < len(sql) else []
        except ParseError:
            return "?"
    out: list[str] = []
    position, after_number = 0, False
    setting = _SettingValue()
    for index, token in enumerate(tokens):
        gap = sql[position : token.start]
        if gap.strip():  # the lexer skipped something that is not white space: show nothing
            return "?"
        text = sql[token.start : token.end + 1]
        position = token.end + 1
        if after_number and not gap and (text[:1].isalnum() or text[:1] == "_"):
            continue  # glued to the number before it: part of the same masked literal
        if setting.masks(token.name):
            if not (out and out[-1] == "?" and not gap):
                out += [gap, "?"]
            continue
        following = tokens[index + 1] if index + 1 < len(tokens) else None
        if token.name == "NCHAR" and len(text) == 1 and following is not None and following.start == position:
            out.append(gap)  # N'...': the prefix goes with the literal
            continue
        out.append(gap)
        if token.name == "SCONST" and text[:1] == "'" and "\\" in text:
            return "".join(out) + "?"
        out.append(_COMMENT_MASKS.get(token.name) or ("?" if token.name in _LITERAL_TOKENS else text))
        after_number = token.name in _NUMERIC_TOKENS
    rest = sql[position:]
    if stop == len(sql):
        return "".join(out) + rest if not rest.strip() else "?"
    return "".join(out) + rest[: len(rest) - len(rest.lstrip())] + "?"


def masked(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    """`frame` with the query text of `columns` masked (`mask_literals`), and every application name a client set
    (APPLICATION_COLUMNS) replaced when it holds a secret: `application_name='svc password=...'` is a
    connection string's habit, and it was shown verbatim."""
    for column in columns:
        if column in frame:
            frame[column] = frame[column].map(mask_literals)
    for column in APPLICATION_COLUMNS:
        if column in frame:
            frame[column] = frame[column].map(lambda name: REDACTED if secret_in_value(name) else name)
    return frame


def excerpt(text: Any, width: int = 120) -> str:
    one_line = " ".join(str(text or "").split())
    return one_line if len(one_line) <= width else one_line[: width - 1] + "…"
