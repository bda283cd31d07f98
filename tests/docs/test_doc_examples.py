"""Every example of the documentation (docs/*.md and README.md) is checked against the code.

The conventions (docs/developer/contributing.md, "Examples that run"):

- A ```console block holds `$ COMMAND` lines (a line ending in `\\` continues on the next); the
  lines after a command, up to the next `$ `, are its output. A shown output is compared with
  what the command prints (stdout and stderr): line by line, trailing blanks ignored, a line
  `...` standing for any number of lines and `...` inside a line for any text. A command whose
  shown output starts with `error:` must fail; every other command must succeed.
- A ```bash block is a script; it must exit 0. A ```python block is run with this Python; it
  must exit 0. A block of any language whose first line is `# PATH` (a file name, no spaces)
  is written to PATH instead, for later blocks to use.
- A page's blocks run in order, in one fresh folder that is also BIOBENCH_HOME's parent
  (offline: the digits; on the CPU; no BIOBENCH_DB, no BIOBENCH_DATA_DIR from the caller).
- `<!-- check: parse -->` right above a shell block: its commands are not run (a GPU-week, a
  cluster, data that is not here) but parsed, `biobench ...` by the Typer app with every
  option (so a renamed option fails), `python tools/X.py ...` by the script's own argparse,
  `pip install ...` against pyproject's extras.

The fast loop parses every shell command of every page (test_every_command_parses); the slow
tests run each page's examples (test_examples_run, one test per page).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from importlib.metadata import metadata
from pathlib import Path

import pytest

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
DOCS = ROOT / "docs"
SHELL = ("console", "bash")
FENCE = re.compile(r"^(?P<indent> *)(?P<fence>```+|~~~+)\s*(?P<lang>[\w+-]*)[^\n]*$")
MARKER = re.compile(r"^<!--\s*check:\s*(?P<what>[\w-]+)\s*-->\s*$")
# Commands a parse-only example may hold besides biobench, its tools and pip: they are
# the shell's own, or outside biobench (a cluster's, the test runner's).
OTHER_COMMANDS = {
    ".", "source", "cd", "eval", "export", "pytest", "ruff", "squeue", "git", "mkdocs", "bash",
    "head", "cat",
}  # fmt: skip
# Shell words that only structure a script (a loop around biobench commands).
STRUCTURE = {"for", "do", "done", "then", "fi", "if", "while"}


@dataclass
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    text: str
    marks: set[str] = field(default_factory=set)

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def file(self) -> str | None:
        """The path the block is written to, when its first line names one."""
        first = self.text.splitlines()[0] if self.text else ""
        match = re.fullmatch(r"(?:#|//)\s*(\S+\.\w+)", first.strip())
        return match.group(1) if match and "/" not in match.group(1)[:1] else None


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


def blocks(page: Path) -> list[Block]:
    """The fenced code blocks of a page, with the check markers right above them. README's
    indented blocks (its first lines, which CI reads) are taken as parse-only console."""
    lines = page.read_text().splitlines()
    out: list[Block] = []
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        marks = set()
        j = i - 1
        while j >= 0 and (MARKER.match(lines[j]) or not lines[j].strip()):
            if MARKER.match(lines[j]):
                marks.add(MARKER.match(lines[j]).group("what"))
            j -= 1
        indent, fence = len(match.group("indent")), match.group("fence")
        end = i + 1
        while end < len(lines) and not lines[end].strip().startswith(fence):
            end += 1
        body = "\n".join(line[indent:] for line in lines[i + 1 : end])
        out.append(Block(page, i + 1, match.group("lang"), body, marks))
        i = end + 1
    if page.name == "README.md":
        indented = [n for n, line in enumerate(lines) if line.startswith("    ") and line.strip()]
        for n in indented:
            if lines[n].strip().split()[0] in ("pip", "biobench"):
                out.append(Block(page, n + 1, "console", "$ " + lines[n].strip(), {"parse"}))
    return out


def shell_commands(block: Block) -> list[tuple[str, list[str]]]:
    """(command, shown output lines) of a console block; a bash block is one command with
    no shown output."""
    if block.lang == "bash":
        return [(block.text, [])]
    commands: list[tuple[str, list[str]]] = []
    lines = block.text.splitlines()
    i = 0
    while i < len(lines):
        if not lines[i].startswith("$ "):
            raise AssertionError(f"{block.where}: output before any `$ ` command: {lines[i]!r}")
        command = lines[i][2:]
        while command.endswith("\\") and i + 1 < len(lines):
            i += 1
            command = command[:-1].rstrip() + " " + lines[i].strip()
        output = []
        i += 1
        while i < len(lines) and not lines[i].startswith("$ "):
            output.append(lines[i])
            i += 1
        commands.append((command, output))
    return commands


def all_blocks() -> list[Block]:
    return [b for page in pages() for b in blocks(page)]


def _page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


# -- parsing ---------------------------------------------------------------------------------


def parse_biobench(argv: list[str]) -> None:
    """Parse argv as `biobench` would, every option and argument converted, without running
    the command: an unknown command or option, or a value of the wrong type, raises."""
    import typer

    from biobench.cli import app

    root = typer.main.get_command(app)
    context = root.make_context("biobench", list(argv))
    command = root
    while hasattr(command, "resolve_command"):
        rest = [*getattr(context, "_protected_args", []), *context.args]
        if not rest:
            return
        name, command, rest = command.resolve_command(context, rest)
        context = command.make_context(name, rest, parent=context)


def parse_tool(script: Path, argv: list[str]) -> None:
    """Parse argv with the tool's own argparse parser (the script stops once it has parsed)."""
    probe = (
        "import argparse, runpy, sys\n"
        "real = argparse.ArgumentParser.parse_args\n"
        "def parse(self, *a, **k):\n"
        "    real(self, *a, **k)\n"
        "    raise SystemExit(0)\n"
        "argparse.ArgumentParser.parse_args = parse\n"
        "sys.argv = sys.argv[1:]\n"
        "runpy.run_path(sys.argv[0], run_name='__main__')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, str(script), *argv],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, f"{script.name} {' '.join(argv)}: {done.stderr[-800:]}"


def parse_pip(argv: list[str]) -> None:
    """`pip install X` of this project: each extra it names is one biobench declares."""
    extras = set(metadata("biobench").get_all("Provides-Extra") or ())
    for word in argv[1:]:
        if word.startswith("-"):
            continue
        match = re.fullmatch(r"\.\[([\w,-]+)\]|\.", word)
        assert match, f"pip install of something other than this project: {word}"
        for extra in (match.group(1) or "").split(","):
            assert not extra or extra in extras, f"no extra {extra!r} in pyproject.toml"


def simple_commands(script: str) -> list[list[str]]:
    """The simple commands of a shell line or script, as words: split on ;, &&, ||, | and
    newlines, comments and leading VAR=value assignments dropped."""
    script = re.sub(r"\\\n", " ", script)
    out = []
    for line in script.splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        words: list[str] = []
        for token in [*lexer, ";"]:
            if token and set(token) <= set(";&|"):
                while words and re.fullmatch(r"[A-Za-z_]\w*=.*", words[0]):
                    words.pop(0)
                if words and words[0] in STRUCTURE:
                    words = words[1:] if words[0] != "for" else []
                if words:
                    out.append(words)
                words = []
            else:
                words.append(token)
    return out


def parse_command(words: list[str], where: str) -> None:
    if words[0] == "biobench":
        parse_biobench(words[1:])
    elif words[0] == "torchrun" or words[:3] == ["python", "-m", "biobench"]:
        assert "biobench" in words, f"{where}: {' '.join(words)} does not start biobench"
        parse_biobench(words[words.index("biobench") + 1 :])
    elif words[0] == "python" and len(words) > 1 and words[1].startswith("tools/"):
        script = ROOT / words[1]
        assert script.is_file(), f"{where}: no {words[1]}"
        parse_tool(script, words[2:])
    elif words[:2] == ["pip", "install"]:
        parse_pip(words[1:])
    elif words[0] == "python" and len(words) > 1 and words[1] == "-m":
        assert words[2] in ("venv", "biobench", "pytest"), f"{where}: python -m {words[2]}"
    else:
        assert words[0] in OTHER_COMMANDS, f"{where}: {words[0]!r} is not a command docs use"


SHELL_BLOCKS = [b for b in all_blocks() if b.lang in SHELL and not b.file]


@pytest.mark.parametrize("block", SHELL_BLOCKS, ids=lambda b: b.where)
def test_every_command_parses(block: Block) -> None:
    """Every shell command shown anywhere, run or not, parses with today's options."""
    for command, _ in shell_commands(block):
        for words in simple_commands(command):
            try:
                parse_command(words, block.where)
            except Exception as error:
                if type(error).__name__ == "Exit":  # --help, --version: parsed
                    continue
                message = getattr(error, "format_message", lambda e=error: str(e))()
                raise AssertionError(f"{block.where}: `{' '.join(words)}`: {message}") from None


def test_blocks_say_their_language() -> None:
    """A block without a language would escape every check: none may."""
    unnamed = [b.where for b in all_blocks() if not b.lang]
    assert not unnamed, f"fenced blocks without a language: {unnamed}"


def test_the_conventions_are_found() -> None:
    """The extractor finds what the pages hold (not a vacuous pass over nothing)."""
    found = all_blocks()
    langs = {b.lang for b in found}
    assert {"console", "bash", "python"} <= langs
    assert any("parse" in b.marks for b in found) and any(not b.marks for b in found)
    assert sum(len(shell_commands(b)) for b in SHELL_BLOCKS) > 50


# -- running ---------------------------------------------------------------------------------


def matches(shown: list[str], actual: str) -> bool:
    """Whether `actual` fits the shown output (`...` lines and inline `...` are wildcards)."""
    pattern = []
    for line in shown:
        if line.strip() == "...":
            pattern.append(r"(?:[^\n]*\n)*?")
        else:
            parts = [re.escape(p) for p in line.rstrip().split("...")]
            pattern.append("[^\n]*".join(parts) + "\n")
    text = "\n".join(line.rstrip() for line in actual.splitlines()) + "\n"
    return re.fullmatch("".join(pattern), text) is not None


def environment(folder: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BIOBENCH_")}
    env.update(
        BIOBENCH_HOME=str(folder / "home"),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        COLUMNS="200",
        OMP_NUM_THREADS="1",
        MPLBACKEND="Agg",
        CUDA_VISIBLE_DEVICES="",  # the pages show CPU runs, whatever the machine has
        NO_COLOR="1",
        TERM="dumb",
    )
    return env


def run_block(block: Block, folder: Path, env: dict[str, str]) -> None:
    if block.file:
        target = folder / block.file
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(block.text + "\n")
        return
    if block.lang == "python":
        done = subprocess.run(
            [sys.executable, "-"], input=block.text, text=True, capture_output=True,
            cwd=folder, env=env, timeout=900,
        )  # fmt: skip
        assert done.returncode == 0, f"{block.where}:\n{done.stderr[-2000:]}"
        return
    if block.lang not in SHELL or "parse" in block.marks:
        return
    for command, shown in shell_commands(block):
        script = command if block.lang == "console" else f"set -euo pipefail\n{command}"
        done = subprocess.run(
            ["bash", "-c", script], text=True, capture_output=True,
            cwd=folder, env=env, timeout=900,
        )  # fmt: skip
        output = done.stdout + done.stderr
        failing = bool(shown) and shown[0].startswith("error:")
        assert (done.returncode != 0) == failing, (
            f"{block.where}: `{command}` exited {done.returncode}:\n{output[-2000:]}"
        )
        if shown:
            assert matches(shown, output), (
                f"{block.where}: `{command}` printed\n{output}\nthe page shows\n"
                + "\n".join(shown)
            )


RUN_PAGES = [
    page
    for page in pages()
    if any(
        b.file or b.lang == "python" or (b.lang in SHELL and "parse" not in b.marks)
        for b in blocks(page)
    )
]


@pytest.mark.slow
@pytest.mark.parametrize("page", RUN_PAGES, ids=_page_id)
def test_examples_run(page: Path, tmp_path: Path) -> None:
    """Each page's examples, run in order in a fresh folder; shown output checked."""
    env = environment(tmp_path)
    for block in blocks(page):
        run_block(block, tmp_path, env)


@pytest.mark.parametrize(
    ("shown", "actual", "fits"),
    [
        (["a", "b"], "a\nb\n", True),
        (["a", "b"], "a  \nb", True),  # trailing blanks are not compared
        (["a", "b"], "a\nc\n", False),
        (["a"], "a\nb\n", False),  # an unshown line is a difference
        (["a", "...", "d"], "a\nb\nc\nd\n", True),
        (["a", "...", "d"], "a\nd\n", True),  # `...` may stand for no line
        (["a", "...", "d"], "a\nb\n", False),
        (["run 1 finished: best ... 8.89%"], "run 1 finished: best test top-1 8.89%", True),
        (["run 1 finished: best ... 8.89%"], "run 2 finished: best test top-1 8.89%", False),
        (["x (y)"], "x (y)", True),  # regex characters are literal
        (["x (y)"], "x y", False),
    ],
)
def test_shown_output_is_compared(shown: list[str], actual: str, fits: bool) -> None:
    assert matches(shown, actual) is fits


@pytest.mark.parametrize(
    ("script", "commands"),
    [
        ("biobench run --epochs 1", [["biobench", "run", "--epochs", "1"]]),
        ("pip install . && biobench run", [["pip", "install", "."], ["biobench", "run"]]),
        ("A=1 B='x y' biobench runs", [["biobench", "runs"]]),
        ("biobench run \\\n  --epochs 2  # two", [["biobench", "run", "--epochs", "2"]]),
        (
            "for a in bp fa; do\n  biobench run --algo $a\ndone",
            [["biobench", "run", "--algo", "$a"]],
        ),
        ("biobench export | head -n 1", [["biobench", "export"], ["head", "-n", "1"]]),
    ],
)
def test_shell_examples_are_split_into_commands(script: str, commands: list[list[str]]) -> None:
    assert simple_commands(script) == commands


def test_a_console_block_is_split_into_commands_and_output() -> None:
    block = Block(ROOT / "x.md", 1, "console", "$ biobench a \\\n  --b 1\nout\n...\n$ biobench c")
    assert shell_commands(block) == [("biobench a --b 1", ["out", "..."]), ("biobench c", [])]
