"""The documentation stays true: its generated parts match the code, its links resolve, and it stays in the repo.

The generated parts (docs/generate.py: the config table, the task, weight and
metric tables, the API reference) are rendered again here, in memory, and
compared with the committed files. Everything else is read from the files
themselves; nothing is started.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
GUIDES = ("user-guide.md", "operations.md", "api.md", "development.md", "metrics.md", "configuration.md")
MARKDOWN = [REPO / "README.md", *sorted(DOCS.glob("*.md"))]
# Files whose citations of documents are checked: the product's code, its units and its build files.
CODE_DIRS = ("daemon", "handlers", "store", "evaluation", "vision_eval", "vocab", "systemd")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
CITATION = re.compile(r"docs/([\w-]+\.md)(?:,? \"([^\"]+)\")?")


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_generate", DOCS / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def generator() -> ModuleType:
    return _generator()


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped (``-`` and ``_`` kept), spaces as ``-``."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _headings(path: Path) -> list[str]:
    """The headings of a Markdown file, outside code blocks."""
    return [m.group(2) for line in path.read_text(encoding="utf-8").splitlines()
            if (m := re.match(r"^(#{1,6}) (.+)$", line))]


@functools.cache
def _anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for heading in _headings(path):
        slug = _slug(heading)
        out.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
        seen[slug] = seen.get(slug, 0) + 1
    return out


def _prose(path: Path) -> str:
    """A Markdown file without its indented code blocks and HTML comments (the generated parts' markers)."""
    text = "\n".join(line for line in path.read_text(encoding="utf-8").splitlines() if not line.startswith("    "))
    return re.sub(r"<!--.*?-->", "", text, flags=re.S)


def test_the_generated_parts_match_the_code(generator: ModuleType) -> None:
    stale = [rel for rel, (now, new) in generator.expected().items() if now != new]
    assert not stale, (f"{', '.join(stale)}: out of date with the code (a config key, a metric, a task or an API "
                       "field changed); run `make docs` (.venv/bin/python docs/generate.py) and commit the result")


def test_a_change_in_the_code_makes_a_part_stale(generator: ModuleType) -> None:
    """The comparison can fail: a part rendered from other data differs from the committed one."""
    text = (DOCS / "metrics.md").read_text(encoding="utf-8")
    current = generator.replace_block(text, "weights", generator.weights_table())
    assert current == text
    assert generator.replace_block(text, "weights", generator.weights_table().replace("0.35", "0.36")) != text


def test_every_metric_and_weight_key_is_defined(generator: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(generator.DEFINITIONS, "top5")
    with pytest.raises(SystemExit, match="no definition of top5"):
        generator.definitions_table()


def test_missing_markers_are_named(generator: ModuleType) -> None:
    with pytest.raises(SystemExit, match="end generated: config"):
        generator.replace_block("no markers here", "config", "", "docs/configuration.md")


def test_the_readme_starts_with_the_two_commands_and_stays_short() -> None:
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines; at most 250 (the rest belongs in docs/)"
    commands = [line.split("#")[0].strip() for line in lines if line.strip() and not line.startswith("#")][:2]
    assert commands == ["make run", "make test"], commands


def test_the_guides_exist() -> None:
    missing = [name for name in GUIDES if not (DOCS / name).is_file()]
    assert not missing, missing


def test_no_file_cites_a_document_outside_the_repository() -> None:
    """Every text file of the tree (code, tests, docs, units, config): the project's documents are its own."""
    suffixes = {".py", ".md", ".toml", ".service", ".conf", ".txt", ".cfg", ".js", ".html", ".css", ""}
    paths = []
    for folder, dirs, files in os.walk(REPO):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in ("__pycache__", "build")
                   and not d.endswith(".egg-info")]
        paths += [Path(folder) / f for f in files if Path(f).suffix in suffixes]
    marker = "DESIGN" + r"\.md|\.\./shared|shared/(notes|spec)"  # split: this file must not match itself
    found = [f"{p.relative_to(REPO)}:{n}" for p in paths
             for n, line in enumerate(p.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
             if re.search(marker, line)]
    assert not found, found


@pytest.mark.parametrize("path", MARKDOWN, ids=lambda p: str(p.relative_to(REPO)))
def test_links_resolve(path: Path) -> None:
    broken = []
    for target in LINK.findall(_prose(path)):
        if re.match(r"^[a-z]+:", target):
            continue  # http:, https:, mailto: are not ours to check
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            broken.append(f"{target}: no file {linked.relative_to(REPO) if linked.is_relative_to(REPO) else linked}")
        elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
            broken.append(f"{target}: no heading with the anchor #{anchor}")
    assert not broken, broken


def test_sections_the_code_cites_exist() -> None:
    """A docstring citing ``docs/metrics.md, "Composite score"`` names a file and a heading that exist."""
    missing = []
    for folder in CODE_DIRS:
        for path in sorted((REPO / folder).rglob("*")):
            if not path.is_file() or path.suffix not in (".py", ".js", ".service", ".conf", ".html"):
                continue
            for name, section in CITATION.findall(path.read_text(encoding="utf-8")):
                doc = DOCS / name
                if not doc.is_file():
                    missing.append(f"{path.relative_to(REPO)} cites docs/{name}, which does not exist")
                elif section and section not in _headings(doc):
                    missing.append(f"{path.relative_to(REPO)} cites docs/{name}, \"{section}\": no such heading")
    assert not missing, missing


@pytest.mark.parametrize("path", MARKDOWN, ids=lambda p: str(p.relative_to(REPO)))
def test_no_text_is_taken_for_an_html_tag(path: Path) -> None:
    """``v<n>.pt`` outside code would be swallowed by a Markdown renderer as an unknown HTML tag."""
    outside_code = _prose(path).split("`")[::2]
    tags = sorted({m for part in outside_code for m in re.findall(r"<[A-Za-z/][^>\s]*>?", part)})
    assert not tags, f"write these in `code` or escape the '<' (&lt;): {tags}"
