"""Who reviews: reviewer names, the tokens that let them in, and the leads who may correct others.

Two ways in. With one shared token (or none, on loopback) the page asks each reviewer's name
once and keeps it in the browser. With a reviewers file each reviewer has a token of their
own, and the token says who they are: nobody can answer under another's name. A file's lines
are ``name,token[,lead]`` (``#`` comments and blank lines skipped); ``--lead NAME`` names
leads too. Tokens are secrets: they never appear in a repr, a log line or an error.
"""

from __future__ import annotations

import csv
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from prelabel.core.errors import PrelabelError

__all__ = ["Team", "check_name", "read_reviewers"]

_NAME = re.compile(r"[^\W_][\w .'-]{0,39}")
_MIN_TOKEN = 8


def check_name(name: str) -> str:
    """A reviewer name as stored (trimmed), or a PrelabelError saying what a name may hold."""
    trimmed = name.strip()
    if not _NAME.fullmatch(trimmed):
        raise PrelabelError(
            f"reviewer name {trimmed[:50]!r}: 1 to 40 letters, digits, spaces and . ' - _, "
            "starting with a letter or digit"
        )
    return trimmed


@dataclass(frozen=True)
class Team:
    """The tokens the page accepts and who the leads are (tokens kept out of the repr)."""

    token: str | None = field(default=None, repr=False)
    tokens: Mapping[str, str] = field(default_factory=dict, repr=False)  # token -> reviewer name
    leads: frozenset[str] = frozenset()

    @property
    def open(self) -> bool:
        """Whether requests need no token at all."""
        return self.token is None and not self.tokens

    def identify(self, given: str) -> tuple[bool, str | None]:
        """Whether ``given`` lets the request in, and the reviewer it names (None: the shared token)."""
        if self.open:
            return True, None
        ok, name = False, None
        for token, reviewer in self.tokens.items():  # every comparison in constant time
            if secrets.compare_digest(given.encode(), token.encode()):
                ok, name = True, reviewer
        if self.token is not None and secrets.compare_digest(given.encode(), self.token.encode()):
            ok = True
        return ok, name

    def is_lead(self, name: str) -> bool:
        return name in self.leads


def read_reviewers(path: str | Path, leads: Iterable[str] = ()) -> Team:
    """A team from a reviewers file (see the module docstring), plus the leads named elsewhere."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise PrelabelError(f"cannot read reviewers file {source} ({exc.strerror or exc})") from exc
    tokens: dict[str, str] = {}
    named = {check_name(name) for name in leads}
    for number, row in enumerate(csv.reader(text.splitlines()), start=1):
        fields = [f.strip() for f in row]
        if not fields or not fields[0] or fields[0].startswith("#"):
            continue
        where = f"{source}:{number}"
        if len(fields) not in (2, 3) or (len(fields) == 3 and fields[2] not in ("lead", "")):
            raise PrelabelError(f"{where}: expected name,token[,lead]")
        try:
            name = check_name(fields[0])
        except PrelabelError as exc:
            raise PrelabelError(f"{where}: {exc}") from exc
        token = fields[1]
        if len(token) < _MIN_TOKEN:
            raise PrelabelError(f"{where}: {name}'s token is shorter than {_MIN_TOKEN} characters")
        if token in tokens:
            raise PrelabelError(f"{where}: {name}'s token is also {tokens[token]}'s")
        if name in tokens.values():
            raise PrelabelError(f"{where}: {name} is named twice")
        tokens[token] = name
        if len(fields) == 3 and fields[2] == "lead":
            named.add(name)
    if not tokens:
        raise PrelabelError(f"reviewers file {source} names no reviewer")
    unknown = sorted(named - set(tokens.values()))
    if unknown:
        raise PrelabelError(f"--lead {unknown[0]}: not a reviewer in {source}")
    return Team(tokens=tokens, leads=frozenset(named))
