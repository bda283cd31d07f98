"""The documentation site: its generated reference covers the code, its pages name files that
exist, and it builds in strict mode (a broken link, a missing page or anchor fails)."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
_spec = importlib.util.spec_from_file_location("docs_reference", ROOT / "tools/docs_reference.py")
reference = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(reference)  # type: ignore[union-attr]


def sections(page: str, level: str) -> dict[str, str]:
    """A page's sections at one heading level (`##`, `###`), by heading."""
    parts = re.split(rf"^{level} (.+)$", page, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


@pytest.fixture(scope="module")
def pages() -> dict[str, str]:
    return reference.pages()


def test_every_command_and_option_is_in_the_reference(pages: dict[str, str]) -> None:
    documented = sections(pages["reference/cli.md"], "##")
    commands = list(reference.commands())
    assert len(commands) > 15  # run, search, compare, ..., db upgrade
    for path, command, context in commands:
        title = " ".join(["biobench", *path])
        assert title in documented, f"{title} is not in the reference"
        for param in command.get_params(context):
            for name in [*param.opts, *param.secondary_opts]:
                shown = name if name.startswith("-") else (param.metavar or name.upper())
                assert shown in documented[title], f"{title}: {shown} is not documented"


def test_every_hyperparameter_and_setting_is_in_the_reference(pages: dict[str, str]) -> None:
    from biobench.registry import ALGORITHMS, ARCHITECTURES, DATASETS, load_all
    from biobench.spec.runspec import EVERY_RUN

    load_all()
    page = pages["reference/registry.md"]
    entries = sections(page, "###")
    for entry in ALGORITHMS.entries():
        if entry.origin != "biobench":  # an installed plugin's: `biobench list` shows it
            continue
        assert entry.name in entries, f"rule {entry.name} is not in the reference"
        for name, param in entry.hparams.items():
            row = next(
                (
                    line
                    for line in entries[entry.name].splitlines()
                    if line.startswith(f"| `{name}`")
                ),
                None,
            )
            assert row is not None, f"{entry.name}: hyperparameter {name} is not documented"
            assert f"`{param.shown_default()}`" in row, f"{entry.name}.{name}: default"
    for entry in DATASETS.entries():
        if entry.origin != "biobench":
            continue
        assert entry.name in entries, f"dataset {entry.name} is not in the reference"
        for name in entry.settings:
            assert f"| `{name}` |" in entries[entry.name], f"{entry.name}: setting {name}"
    for entry in ARCHITECTURES.entries():
        if entry.origin != "biobench":
            continue
        assert f"| `{entry.name}` |" in page, f"architecture {entry.name}"
    for name in EVERY_RUN:
        assert f"| `{name}` |" in page, f"run setting {name}"


def test_every_preset_and_its_reference_is_in_the_reference(pages: dict[str, str]) -> None:
    from biobench.spec.presets import load_presets

    page = pages["reference/presets.md"]
    for name, preset in load_presets().presets.items():
        row = next((line for line in page.splitlines() if line.startswith(f"| `{name}` |")), "")
        assert row, f"preset {name} is not in the reference"
        for value in preset.reference.values():
            assert f"{value:.2f}" in row, f"{name}: reference {value}"


def test_every_environment_variable_is_documented() -> None:
    source = "\n".join(p.read_text() for p in (ROOT / "src" / "biobench").rglob("*.py"))
    names = set(re.findall(r"BIOBENCH_[A-Z_]*[A-Z]", source))
    assert {"BIOBENCH_HOME", "BIOBENCH_DB"} <= names
    page = (ROOT / "docs" / "reference" / "environment.md").read_text()
    missing = sorted(name for name in names if name not in page)
    assert not missing, f"docs/reference/environment.md does not name {missing}"


@pytest.mark.parametrize(
    ("text", "rendered"),
    [
        ("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"),
        ("x>=1 [default: 0]", "x&gt;=1 \\[default: 0\\]"),
        ("`--keep <last|none>` and <b>", "`--keep <last|none>` and &lt;b&gt;"),
        ("$BIOBENCH_HOME/*.db", "$BIOBENCH\\_HOME/\\*.db"),
    ],
)
def test_help_text_is_shown_as_written(text: str, rendered: str) -> None:
    """Help written for a terminal: what would be HTML or Markdown is escaped, code spans kept."""
    assert reference.escape(text) == rendered


def test_a_pipe_in_a_table_cell_shows_as_a_pipe() -> None:
    """A backslash-escaped pipe shows its backslash inside a code span: written as HTML."""
    assert reference.cell("`a|b` or c|d") == "<code>a&#124;b</code> or c\\|d"


@pytest.mark.parametrize(
    "page",
    [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_no_text_is_taken_for_html(page: Path) -> None:
    """Outside code, `<tmp>` or `<name>` would be read as an HTML tag and vanish from the
    page: the pages write `&lt;tmp&gt;` (and use no raw HTML)."""
    text = re.sub(r"```.*?```|<!--.*?-->", "", page.read_text(), flags=re.S)
    text = re.sub(r"`[^`\n]*`", "", text)
    tags = sorted(set(re.findall(r"</?[A-Za-z][^>]*>", text)))
    assert not tags, f"{page.name}: {tags} would be read as HTML"


def _named_files() -> list[tuple[str, str]]:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    # Files (a name with an extension), not folders: a folder may be named before it fills.
    pattern = re.compile(r"`((?:src/biobench|tests|tools|migrations|\.ci)/[\w./-]+\.\w+)`")
    return sorted(
        {
            (str(page.relative_to(ROOT)), match.group(1))
            for page in pages
            for match in pattern.finditer(page.read_text())
        }
    )


@pytest.mark.parametrize(("page", "path"), _named_files())
def test_named_files_exist(page: str, path: str) -> None:
    """A file the docs point at exists: a moved test or module fails here, naming where it went."""
    if (ROOT / path).exists():
        return
    moved = sorted(str(p.relative_to(ROOT)) for p in ROOT.rglob(Path(path).name))
    raise AssertionError(
        f"{page} names {path}, which does not exist" + (f"; now {moved}" * bool(moved))
    )


@pytest.mark.slow
def test_the_site_builds_strictly(tmp_path: Path) -> None:
    """`mkdocs build --strict`, as CI runs it; the generated reference is in the site."""
    pytest.importorskip("mkdocs", reason="the docs extra: pip install -e '.[docs]'")
    pytest.importorskip("material", reason="the docs extra: pip install -e '.[docs]'")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**__import__("os").environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    cli = (tmp_path / "site" / "reference" / "cli.html").read_text()
    assert 'id="biobench-run"' in cli and "--keep-checkpoint" in cli
    assert (tmp_path / "site" / "index.html").is_file()
    assert "fonts.googleapis.com" not in (tmp_path / "site" / "index.html").read_text()
    for page in (tmp_path / "site").rglob("*.html"):  # a table's escaped pipe shown as written
        assert "\\|" not in page.read_text(), f"{page.name} shows a backslash before a pipe"
