"""The documentation holds together: every relative link of the README and the docs pages leads to a file (and
to a heading of it where it names one), the README stays a short page, and it describes the tool as it is,
not its history."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .helpers.cli import REPO

PAGES = sorted(
    [
        REPO / "README.md",
        *(REPO / "docs").glob("*.md"),
        REPO / "dashboard" / "README.md",
        REPO / "slurm" / "README.md",
    ]
)
README_MAX_LINES = 250

FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.M | re.S)
INLINE_CODE = re.compile(r"`[^`]+`")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
IMG_SRC = re.compile(r"<img\b[^>]*\bsrc=[\"']([^\"']+)[\"']", re.I)
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.M)

# Words that tell how the tool changed rather than what it does. A small list, not a detector of every way
# to write history: a sentence that reads as a changelog belongs in the commit message.
CHANGELOG_WORDS = (
    "used to",
    "no longer",
    "changed once",
    "fixed since",
    "previously",
    "as before",
    "did not reproduce",
    "last run's",
    "now",
)


def prose(text: str) -> str:
    """The text without its fenced code blocks and inline code, whose brackets are not links."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading: its text lowercased, punctuation but '-' and '_' removed, each space a
    '-' (markdown links in the heading count by their text)."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of a markdown file's headings; a repeated heading's later anchors end in -1, -2, ..."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    for heading in HEADING.findall(FENCE.sub("", path.read_text(encoding="utf-8"))):
        base = anchor(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def broken_links(page: Path) -> list[str]:
    """Each relative link of a page (markdown links, images, <img src>) whose file or heading is missing."""
    text = prose(page.read_text(encoding="utf-8"))
    targets = [*LINK.findall(text), *IMG_SRC.findall(text)]
    broken = []
    for target in targets:
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("//"):
            continue  # a URL (http:, https:, mailto:): not checked offline
        file_part, _, fragment = target.partition("#")
        path = (page.parent / file_part).resolve() if file_part else page
        if not path.exists():
            broken.append(f"{target}: no such file ({path})")
        elif fragment and path.suffix == ".md" and fragment not in anchors(path):
            broken.append(f"{target}: no heading #{fragment} in {path}")
    return broken


def test_the_pages_are_the_readme_the_docs_and_the_folders_readmes() -> None:
    names = {str(page.relative_to(REPO)) for page in PAGES}
    assert {"README.md", "docs/README.md", "docs/user-guide.md", "slurm/README.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(REPO)))
def test_every_relative_link_leads_to_a_file_and_heading(page: Path) -> None:
    assert broken_links(page) == []


def test_a_broken_link_or_anchor_is_found(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other page\n\n## A section: with `code`, punctuation\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n"
        "[fine](other.md) [fine](other.md#a-section-with-code-punctuation) [here](#page)\n"
        "[gone](missing.md) [no heading](other.md#no-such-section) ![picture](missing.png)\n"
        '<img src="gone.png"> [web](https://example.com/x.md) `[in code](nowhere.md)`\n\n'
        "```md\n[in a block](nowhere.md)\n```\n"
    )
    assert [problem.split(":")[0] for problem in broken_links(page)] == [
        "missing.md",
        "other.md#no-such-section",
        "missing.png",
        "gone.png",
    ]


def test_anchors_follow_github_s_rule() -> None:
    assert anchor("Python / notebooks") == "python--notebooks"
    assert anchor('Memory-efficient attention: `implementation = "sdpa"`') == (
        "memory-efficient-attention-implementation--sdpa"
    )
    assert anchor("Launch, status and a cell's job") == "launch-status-and-a-cells-job"


def test_the_readme_is_a_short_page() -> None:
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines: move detail into docs/"


def test_the_readme_describes_the_tool_not_its_history() -> None:
    text = prose((REPO / "README.md").read_text(encoding="utf-8")).lower()
    found = [word for word in CHANGELOG_WORDS if re.search(rf"\b{re.escape(word)}\b", text)]
    assert found == [], f"README.md reads as a changelog ({', '.join(found)}): say what is, not what changed"
