"""User preset files beside benchmarks.yaml: reading them (BIOBENCH_PRESETS, --presets, the
file under $BIOBENCH_HOME), what a bad one says, and writing one preset into one."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from xml.etree import ElementTree

import pytest
import yaml
from typer.testing import CliRunner

from biobench.cli import app
from biobench.errors import SpecError
from biobench.spec import load_presets, resolve
from biobench.spec.presets import USER_PRESETS_ENV, save_user_preset
from biobench.store import Store

runner = CliRunner()
CELL = {"algorithm": "bp", "architecture": "fc", "dataset": "digits"}


@pytest.fixture(autouse=True)
def _no_user_presets(monkeypatch: pytest.MonkeyPatch) -> None:
    """`--presets FILE` adds FILE to BIOBENCH_PRESETS in this process's environment: undone
    after each test, whatever the test ran."""
    monkeypatch.setenv(USER_PRESETS_ENV, "")


def write(path: Path, presets: dict | None = None, suites: dict | None = None) -> Path:
    content = {"presets": presets or {}} | ({"suites": suites} if suites else {})
    path.write_text(yaml.safe_dump(content))
    return path


def use(monkeypatch: pytest.MonkeyPatch, *paths: Path) -> None:
    monkeypatch.setenv(USER_PRESETS_ENV, os.pathsep.join(map(str, paths)))


def home_file() -> Path:
    return Path(os.environ["BIOBENCH_HOME"]) / "presets.yaml"


# -- reading user preset files ----------------------------------------------------------------


def test_a_user_file_adds_its_presets_and_suites(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(
        tmp_path / "mine.yaml",
        {"mine": {**CELL, "epochs": 2, "hparams": {"lr": 0.002}}},
        {"my-suite": ["mine", "smoke-digits-fc-bp"]},
    )
    use(monkeypatch, path)
    config = load_presets()
    mine = config.presets["mine"]
    assert (mine.source, mine.reference, mine.tolerance) == (path, {}, None)
    assert config.suites["my-suite"] == ["mine", "smoke-digits-fc-bp"]
    assert config.files == (path,)
    spec = resolve(preset="mine")
    assert (spec.epochs, spec.hparams["lr"], spec.preset) == (2, 0.002, "mine")


def test_the_file_under_biobench_home_is_read_unnamed() -> None:
    home_file().parent.mkdir(parents=True)
    write(home_file(), {"mine": CELL})
    assert load_presets().presets["mine"].source == home_file()


def test_a_plain_run_never_takes_a_user_presets_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cell = {**CELL, "dataset": "synthetic"}  # a cell benchmarks.yaml has no preset for
    use(monkeypatch, write(tmp_path / "mine.yaml", {"fast": {**cell, "hparams": {"lr": 0.5}}}))
    assert resolve(preset="fast").hparams["lr"] == 0.5
    assert resolve(**cell).hparams["lr"] == 1e-3  # bp's declared default, on every machine


BAD_FILES = [
    (
        "presets:\n  p: {algorithm: bp, architecture: fc, dataset: digits, lr: 1}\n",
        ": presets.p: unknown key(s) lr; allowed: algorithm, architecture, dataset, epochs, "
        "batch_size, seed, hparams, data_settings, settings, reference, tolerance, note",
    ),
    (
        "presets:\n  p: {algorithm: bp, architecture: fc, dataset: digits, hparams: {lr: x}}\n",
        ": presets.p.hparams: lr='x' is not a float; lr takes a float in (0, inf)",
    ),
    (
        "presets:\n  p: {algorithm: bpp, architecture: fc, dataset: digits}\n",
        ": presets.p: unknown algorithm 'bpp'; choose one of: ",
    ),
    ("presets:\n  p: [algorithm: bp\n", " line 3 is not valid YAML; fix the file"),
    ("!!python/object/apply:os.system [touch pwned]\n", " line 1 is not valid YAML; fix the file"),
    ("defaults: {seed: 1}\n", ": unknown key(s) defaults; allowed: presets, suites"),
    (
        "presets:\n  p: {algorithm: bp, architecture: fc, dataset: digits, tolerance: 1}\n",
        ": presets.p: a tolerance needs a reference; add reference: {test_top1: ...} or drop "
        "tolerance",
    ),
    (
        "presets:\n  p: {algorithm: bp, architecture: fc, dataset: digits,\n"
        "      reference: {test_top1: 5}}\n",
        ": presets.p: missing 'tolerance' (points either way of the reference)",
    ),
    ("suites:\n  s: [nothing]\n", ": suites.s names 'nothing', neither a preset nor a suite"),
    ("suites:\n  ~: [s]\n", ": suites: a suite's name must be text, got None"),
    (
        "suites:\n  s: [[a, b]]\n",
        ": suites.s holds ['a', 'b']; each entry must be the name of a preset or a suite",
    ),
    (
        "suites:\n  s: [{a: 1}]\n",
        ": suites.s holds {'a': 1}; each entry must be the name of a preset or a suite",
    ),
    (
        "suites: &x\n  s: *x\n",
        " line 2 is not valid YAML (alias *x is used inside its own anchor (a recursive value)); "
        "fix the file",
    ),
    (
        "presets: " + "{a: " * 200 + "1" + "}" * 200 + "\n",
        " line 1 is not valid YAML (values nested more than 64 deep); fix the file",
    ),
]


@pytest.mark.parametrize(("text", "message"), BAD_FILES, ids=[m for _, m in BAD_FILES])
def test_a_bad_user_file_is_one_line_naming_it_and_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, message: str
) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    use(monkeypatch, path)
    monkeypatch.chdir(tmp_path)  # where a `touch` would land, had the file been run
    with pytest.raises(SpecError) as error:
        load_presets()
    assert str(error.value).startswith(f"{path}{message}"), str(error.value)
    assert "\n" not in str(error.value) and not (tmp_path / "pwned").exists()


def test_suites_that_name_each_other_expand_once_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each suite names the next twice: 2**40 paths, 41 suites to expand (a 430-byte file of
    this shape took over 100 s when each mention was expanded again)."""
    depth = 40
    suites = {f"s{i}": [f"s{i + 1}", f"s{i + 1}"] for i in range(depth)}
    suites[f"s{depth}"] = ["p"]
    use(monkeypatch, write(tmp_path / "mine.yaml", {"p": CELL}, suites))

    def too_slow(*_: object) -> None:
        raise TimeoutError("suites were expanded once per mention")

    previous = signal.signal(signal.SIGALRM, too_slow)
    signal.setitimer(signal.ITIMER_REAL, 10)
    try:
        config = load_presets()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert config.suites["s0"] == ["p"]


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_preset_file_that_is_no_regular_file_is_never_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    path = Path("/dev/zero")
    if kind == "fifo":
        path = tmp_path / "mine.yaml"
        os.mkfifo(path)
    use(monkeypatch, path)
    with pytest.raises(SpecError, match="not a regular file; check --presets and BIOBENCH_"):
        load_presets()


def test_a_name_is_one_preset_across_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = write(tmp_path / "a.yaml", {"mine": CELL})
    second = write(tmp_path / "b.yaml", {"mine": CELL})
    builtin = write(tmp_path / "c.yaml", {"mnist-fc-bp": CELL})
    suite = write(tmp_path / "d.yaml", {"other": CELL}, {"smoke": ["other"]})
    for paths, message in (
        ((first, second), f"preset 'mine' is in both {first} and {second}; rename it in one"),
        ((builtin,), f"preset 'mnist-fc-bp' is in both benchmarks.yaml and {builtin}; rename"),
        ((suite,), f"suite 'smoke' of {suite} is already a suite of benchmarks.yaml; rename it"),
    ):
        use(monkeypatch, *paths)
        with pytest.raises(SpecError, match="^" + message.replace("(", r"\(")):
            load_presets()


def test_a_file_named_twice_is_read_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "a.yaml", {"mine": CELL})
    use(monkeypatch, path, tmp_path / "." / "a.yaml")
    assert load_presets().files == (path,)


@pytest.mark.parametrize(
    "argv",
    [
        ["list", "presets"],
        ["check", "--db", "{db}"],
        ["compare", "--db", "{db}"],
        ["compare", "--format", "json", "--db", "{db}"],
    ],
    ids=lambda argv: argv[0] + (" json" if "json" in argv else ""),
)
def test_an_unknown_presets_file_is_one_line_and_nothing_written(
    tmp_path: Path, argv: list[str]
) -> None:
    missing, db = tmp_path / "nothing.yaml", tmp_path / "results.db"
    argv = [arg.replace("{db}", f"sqlite:///{db}") for arg in argv]
    result = runner.invoke(app, [*argv, "--presets", str(missing)])
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: cannot read {missing}: No such file or directory; check --presets and "
        "BIOBENCH_PRESETS\n"
    )
    assert result.stdout == "" and not db.exists()


def test_a_broken_file_stops_a_run_before_it_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("presets:\n  p: {algorithm: bp, architecture: fc, dataset: digits, lr: 1}\n")
    use(monkeypatch, path)
    url = f"sqlite:///{tmp_path / 'results.db'}"
    result = runner.invoke(app, ["run", "--preset", "p", "--device", "cpu", "--db", url])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"error: {path}: presets.p: unknown key(s) lr")
    assert not (tmp_path / "results.db").exists() or Store(url).runs() == []


def test_list_and_check_read_presets_from_the_option(tmp_path: Path) -> None:
    path = write(tmp_path / "mine.yaml", {"mine": CELL})
    listed = runner.invoke(app, ["list", "presets", "--presets", str(path)])
    assert listed.exit_code == 0
    (row,) = [line for line in listed.stdout.splitlines() if line.startswith("mine ")]
    assert row.split()[1:6] == ["bp", "fc", "digits", "30", "none"]
    url = f"sqlite:///{tmp_path / 'results.db'}"
    checked = runner.invoke(
        app, ["check", "--preset", "mine", "--presets", str(path), "--db", url]
    )
    assert checked.exit_code == 0, checked.output  # no reference fails nothing
    assert checked.stdout.splitlines() == [
        "no reference  mine  no finished run; the preset has no reference number to check against",
        "1 no reference",
    ]


EVIL = "red\x1b[31m\x07\x08\u202e\x85\nname"  # ESC, BEL, BS, a bidi override, NEL, newline
EVIL_SHOWN = r"red\x1b[31m\x07\x08\u202e\x85\nname"


def test_a_preset_name_with_control_characters_is_shown_escaped_everywhere(
    tmp_path: Path,
) -> None:
    """list, the run's header and lines, runs and show (from the stored row), check and its
    JUnit report: the name reaches no terminal raw and the XML parses, holding it visibly."""
    mine = {EVIL: {**CELL, "dataset": "synthetic", "epochs": 1, "batch_size": 256}}
    mine[EVIL]["reference"], mine[EVIL]["tolerance"] = {"test_top1": 50}, 50
    path = write(tmp_path / "mine.yaml", mine)
    url = f"sqlite:///{tmp_path / 'results.db'}"
    junit = tmp_path / "check.xml"
    outputs = {}
    for args in (
        ["list", "presets", "--presets", str(path)],
        ["run", "--preset", EVIL, "--presets", str(path), "--db", url],
        ["runs", "--db", url],
        ["show", "1", "--db", url],
        ["check", "--preset", EVIL, "--presets", str(path), "--db", url, "--junit", str(junit)],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        outputs[args[0]] = result.output
    for command, output in outputs.items():
        shown = output.replace("\n", "")
        assert shown.isprintable(), (command, output)
        assert EVIL_SHOWN in shown, (command, output)
    case = ElementTree.parse(junit).getroot().find("testcase")
    # XML 1.0 holds the bidi override, NEL and newline (as &#10;), not ESC, BEL or BS
    assert case is not None and case.get("name") == "red\\x1b[31m\\x07\\x08\u202e\x85\nname"


# -- writing one: save_user_preset ------------------------------------------------------------


def test_a_saved_preset_joins_the_file_and_replaces_its_namesake(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "mine.yaml"
    save_user_preset(path, "one", {**CELL, "epochs": 2})
    save_user_preset(path, "two", {**CELL, "epochs": 3})
    save_user_preset(path, "one", {**CELL, "epochs": 4})
    content = yaml.safe_load(path.read_text())
    assert list(content["presets"]) == ["one", "two"]
    assert [p["epochs"] for p in content["presets"].values()] == [4, 3]
    assert path.read_text().startswith("# biobench user presets")
    assert [p.name for p in path.parent.iterdir()] == ["mine.yaml"]  # no temporary file left


@pytest.mark.parametrize(
    ("name", "entry", "message"),
    [
        ("mnist-fc-bp", CELL, "'mnist-fc-bp' is a built-in preset of benchmarks.yaml; choose"),
        ("smoke", CELL, "'smoke' is a built-in suite of benchmarks.yaml; choose another name"),
        ("two words", CELL, "preset name 'two words' must start with a letter or digit"),
        ("new", {**CELL, "hparams": {"alpha": 0.1}}, "presets.new.hparams: bp has no hyper"),
    ],
)
def test_a_preset_that_cannot_be_saved_leaves_the_file_as_it_was(
    tmp_path: Path, name: str, entry: dict, message: str
) -> None:
    path = write(tmp_path / "mine.yaml", {"kept": CELL})
    before = path.read_bytes()
    with pytest.raises(SpecError, match=message):
        save_user_preset(path, name, entry)
    assert path.read_bytes() == before


def test_a_file_biobench_cannot_read_back_is_not_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("presets:\n  kept: {algorithm: bp, architecture: fc, datset: digits}\n")
    before = path.read_bytes()
    with pytest.raises(SpecError, match=f"^{path}: presets.kept: unknown key"):
        save_user_preset(path, "new", CELL)
    assert path.read_bytes() == before


def test_a_name_another_file_holds_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = write(tmp_path / "other.yaml", {"taken": CELL})
    use(monkeypatch, other)
    with pytest.raises(SpecError, match=f"preset 'taken' is already in {other}; choose another"):
        save_user_preset(tmp_path / "mine.yaml", "taken", CELL)
    assert not (tmp_path / "mine.yaml").exists()


def test_a_preset_file_that_cannot_be_read_is_not_kept_in_the_process(tmp_path: Path) -> None:
    import os

    from biobench.spec.presets import add_preset_files

    with pytest.raises(Exception, match="cannot read"):
        add_preset_files([tmp_path / "nothing.yaml"])
    assert os.environ.get("BIOBENCH_PRESETS", "") == ""  # later commands are not refused
