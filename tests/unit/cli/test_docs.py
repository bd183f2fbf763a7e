"""The README and the documentation site: short, self-contained, current.

`mkdocs build --strict` (in the test command) checks the site's links and anchors; these
tests check what it cannot: the README's length and links, words that mean nothing to a user
(paths outside the repository, internal tracking numbers), the extras table, and that the
generated reference pages match the code.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from prelabel_cli.reference import FOLDER, pages
from tests.support import REPO

ROOT = REPO
README = ROOT / "README.md"
README_MAX_LINES = 150


def user_facing_files() -> list[Path]:
    """What users read: the README, the changelog, the site's pages and its configuration."""
    docs = sorted((ROOT / "docs").rglob("*.md"))
    return [README, ROOT / "CHANGELOG.md", ROOT / "mkdocs.yml", *docs]


# Paths that exist only on the machines prelabel is developed on, and tracking numbers of
# issues or pull requests: a user has neither. A bare "#26" counts in prose only: in code it is
# something else (an error message's "#0 'car'", a colour).
_OUTSIDE = re.compile(r"\.\./shared\b|(?<![\w.~])/work/|/root/|/home/\w+")
_TRACKING = re.compile(r"\b(?:issues?|PRs?|pull requests?|tickets?)\s*#?\d+\b", re.I)
_BARE_NUMBER = re.compile(r"(?<![\w&#/])#\d+\b")
_CODE = re.compile(r"```.*?```|`[^`\n]*`", re.DOTALL)


def unwanted(text: str) -> list[str]:
    """Each reference outside the repository and each tracking number in ``text``."""
    found = [m.group(0) for pattern in (_OUTSIDE, _TRACKING) for m in pattern.finditer(text)]
    return found + _BARE_NUMBER.findall(_CODE.sub("", text))


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("see ../shared/DESIGN.md", ["../shared"]),  # a sibling folder of the repository
        ("logs in /work/main/out", ["/work/"]),  # an absolute path of a development machine
        ("cached in /root/.cache/prelabel", ["/root/"]),
        ("as in issue 15, item 1", ["issue 15"]),
        ("Issues #26 and 27", ["Issues #26", "#26"]),
        ("fixed in PR 12", ["PR 12"]),
        ("(#26)", ["#26"]),
        ("see [run](reference/cli.md#prelabel-run)", []),  # an anchor is no number
        ("`~/.cache/prelabel`, `.venv/bin/mkdocs`", []),  # paths inside the home or repository
        ("color #e6194b; 10 issues were found", []),  # a colour; a count of issues
        ("errors.csv: `a.jpg: detections refused: #0 'car'`", []),  # a number in code
        ("`see issue 7`", ["issue 7"]),  # a tracking number in code still counts
    ],
)
def test_unwanted_words_are_found(text: str, found: list[str]) -> None:
    assert unwanted(text) == found


@pytest.mark.parametrize("path", user_facing_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_outside_paths_or_tracking_numbers(path: Path) -> None:
    assert unwanted(path.read_text(encoding="utf-8")) == []


def test_readme_fits_on_two_screens() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move the rest into docs/"


def test_readme_links_point_at_files_that_exist() -> None:
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", README.read_text(encoding="utf-8"))
    local = [t for t in targets if "://" not in t]
    assert "docs/getting-started.md" in local
    assert [t for t in local if not (ROOT / t).exists()] == []


def test_every_extra_is_explained_where_install_is() -> None:
    """The extras tables of the README and the getting-started page name every extra."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for page in (README, ROOT / "docs" / "getting-started.md"):
        rows = set(re.findall(r"^\| `([\w-]+)` \|", page.read_text(encoding="utf-8"), re.MULTILINE))
        assert set(extras) <= rows, f"{page.name}: explain {sorted(set(extras) - rows)}"


def test_reference_pages_are_current() -> None:
    """The committed reference pages are what the code makes now: after changing a command,
    a flow parameter, a setting or a tag, run `bash scripts/reference`."""
    stale = [
        name for name, text in pages().items() if (ROOT / FOLDER / name).read_text(encoding="utf-8") != text
    ]
    assert stale == [], f"stale: {', '.join(stale)}; run `bash scripts/reference`"


def test_every_prelabel_variable_the_code_reads_is_on_the_settings_page() -> None:
    page = (ROOT / FOLDER / "settings.md").read_text(encoding="utf-8")
    named = set()
    for package in ("prelabel", "prelabel_cli", "flows", "tasks"):
        for path in (ROOT / package).rglob("*.py"):
            named |= set(re.findall(r"PRELABEL_[A-Z0-9_]*[A-Z0-9]\b", path.read_text(encoding="utf-8")))
    assert named, "no variable found: the search is broken"
    assert sorted(name for name in named if f"`{name}`" not in page and f"`{name}`," not in page) == []
