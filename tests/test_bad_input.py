"""Every bad input biobench has been tried with, and what it says (README "Bad input" table).

Each case must give one line on stderr naming the problem and the fix, a non-zero exit, no
traceback, no password, and must leave the results database exactly as it was.
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from biobench.cli import app
from biobench.store import Store
from conftest import make_mnist

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def broken_yaml(tmp: Path, text: str) -> dict[str, str]:
    path = tmp / "benchmarks.yaml"
    path.write_text(text)
    return {"BIOBENCH_BENCHMARKS": str(path)}


def mnist(tmp: Path, damage=None, name: str = "train-images-idx3-ubyte") -> dict[str, str]:
    root = make_mnist(tmp / "data", n_train=20, n_test=10)
    if damage is not None:
        target = root / "MNIST" / "raw" / name
        target.write_bytes(damage(target.read_bytes()))
    return {}


class Planted:
    """What a hostile CIFAR-10 batch holds: unpickling it would run a shell command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, ...]:
        return (os.system, (f"touch {self.marker}",))


def cifar(
    tmp: Path, columns: int = 3072, corrupt: bool = False, planted: bool = False
) -> dict[str, str]:
    folder = tmp / "data" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]:
        batch = {
            b"data": Planted(tmp / "pwned") if planted else np.zeros((4, columns), np.uint8),
            b"labels": [0, 1, 2, 3],
            b"batch_label": b"x",
            b"filenames": [b"a"] * 4,
        }
        blob = pickle.dumps(batch)
        (folder / name).write_bytes(blob[: len(blob) // 2] if corrupt else blob)
    return {}


def imagenet32(tmp: Path) -> dict[str, str]:
    folder = tmp / "data" / "imagenet32"
    folder.mkdir(parents=True)
    for name in ("train_data_batch_1.npz", "val_data.npz"):  # 2 channels' worth, not 3
        np.savez(
            folder / name, data=np.zeros((4, 2 * 32 * 32), np.uint8), labels=np.array([1, 2, 3, 4])
        )
    return {}


def newer_schema(tmp: Path) -> dict[str, str]:
    from sqlalchemy import create_engine, text

    url = f"sqlite:///{tmp / 'newer.db'}"
    Store(url).dispose()
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'ffff'"))
    engine.dispose()
    return {}


def foreign_spool(tmp: Path) -> dict[str, str]:
    (tmp / "pending.json").write_text('{"run_id": 1, "spec_hash": "abc", "epochs": {}}')
    return {}


PRESET = (
    "presets:\n  p: {algorithm: bp, architecture: fc, dataset: digits, "
    "reference: {test_top1: 1}, tolerance: 1, lr: 3}\n"
)
DEFAULTS = "defaults: {seed: 0, epochs: 1, batch_size: 8}\n"

# (id, arguments, setup, what the one line must say). {tmp} is a scratch folder, {db} the
# database holding one finished run.
CASES = [
    (
        "unknown algorithm",
        ["run", "--algo", "dtpp"],
        None,
        "unknown algorithm 'dtpp'; choose one of: ao-sdtp, bp, dfa, dtp, fa, sdtp, tp",
    ),
    (
        "unknown architecture",
        ["run", "--arch", "mlp"],
        None,
        "unknown architecture 'mlp'; choose one of: conv, fc, lc",
    ),
    ("unknown dataset", ["run", "--data", "cifar"], None, "unknown dataset 'cifar'; choose one"),
    (
        "unknown device",
        ["run", "--device", "tpu"],
        None,
        "unknown device 'tpu'; choose one of: auto, cpu, cuda",
    ),
    (
        "CUDA asked for, none present",
        ["run", "--device", "cuda"],
        None,
        "no CUDA GPU is visible here; use --device cpu or auto",
    ),
    (
        "a network the paper does not have",
        ["run", "--arch", "fc", "--data", "imagenet"],
        None,
        "architecture 'fc' cannot take dataset 'imagenet': the paper runs no fully-connected",
    ),
    ("--set without =", ["run", "--set", "lr"], None, "--set 'lr' is not name=value"),
    (
        "--set of the wrong type",
        ["run", "--set", "lr=fast"],
        None,
        "lr='fast' is not a float; lr takes a float in (0, inf)",
    ),
    ("--set out of range", ["run", "--set", "lr=-1"], None, "lr='-1' is out of range"),
    ("--set beta at 1", ["run", "--set", "beta2=1"], None, "beta2='1' is out of range"),
    ("--set not finite", ["run", "--set", "eps=inf"], None, "eps='inf' is not finite"),
    (
        "--set unknown name",
        ["run", "--set", "momentum=0.9"],
        None,
        "bp has no hyperparameter 'momentum'; valid: lr, beta1, beta2, eps",
    ),
    (
        "--set given twice",
        ["run", "--set", "lr=1e-3", "--set", "lr=2e-3"],
        None,
        "--set lr is given twice",
    ),
    (
        "--set not among the choices",
        ["run", "--algo", "dtp", "--set", "mode=sideways"],
        None,
        "mode='sideways' is not allowed; mode takes one of parallel, alternating",
    ),
    (
        "--set an int as a float",
        ["run", "--algo", "ao-sdtp", "--set", "aux_units=2.5"],
        None,
        "aux_units='2.5' is not a int",
    ),
    (
        "--set a count of zero",
        ["run", "--algo", "ao-sdtp", "--set", "aux_units=0"],
        None,
        "aux_units='0' is out of range",
    ),
    (
        "--set another dataset's setting",
        ["run", "--set", "augment=true"],
        None,
        "bp has no hyperparameter 'augment'",
    ),
    ("zero epochs", ["run", "--epochs", "0"], None, "--epochs must be > 0, got 0"),
    ("negative epochs", ["run", "--epochs", "-3"], None, "--epochs must be > 0, got -3"),
    ("zero batch size", ["run", "--batch-size", "0"], None, "--batch-size must be > 0, got 0"),
    ("negative seed", ["run", "--seed", "-1"], None, "--seed must be >= 0, got -1"),
    (
        "unknown preset",
        ["run", "--preset", "mnist-fc-dtp"],
        None,
        "unknown preset 'mnist-fc-dtp' (did you mean mnist-fc-dtp-par",
    ),
    (
        "unknown suite",
        ["run", "--suite", "paper-svhn"],
        None,
        "unknown suite 'paper-svhn'; choose one of",
    ),
    (
        "--preset with --algo",
        ["run", "--preset", "mnist-fc-bp", "--algo", "fa"],
        None,
        "--preset sets the algorithm, architecture and dataset; drop --algo",
    ),
    (
        "--preset and --suite",
        ["run", "--preset", "mnist-fc-bp", "--suite", "smoke"],
        None,
        "give --preset or --suite, not both",
    ),
    (
        "benchmarks.yaml not YAML",
        ["run"],
        lambda t: broken_yaml(t, "defaults: [1, 2\n"),
        "is not valid YAML; fix the file",
    ),
    (
        "benchmarks.yaml unknown top-level key",
        ["run"],
        lambda t: broken_yaml(t, DEFAULTS + "preset: {}\n"),
        "unknown key(s) preset; allowed",
    ),
    (
        "benchmarks.yaml unknown key in a preset",
        ["run"],
        lambda t: broken_yaml(t, DEFAULTS + PRESET),
        "presets.p: unknown key(s) lr",
    ),
    (
        "benchmarks.yaml wrong type",
        ["run"],
        lambda t: broken_yaml(t, "defaults: {seed: 0, epochs: many, batch_size: 8}\n"),
        "defaults.epochs must be an integer, got 'many'",
    ),
    (
        "MNIST missing",
        ["run", "--data", "mnist", "--data-dir", "{tmp}/nowhere"],
        None,
        "MNIST not found: expected {tmp}/nowhere/MNIST/raw/train-images-idx3-ubyte and 3 more",
    ),
    (
        "MNIST truncated",
        ["run", "--data", "mnist", "--data-dir", "{tmp}/data"],
        lambda t: mnist(t, lambda b: b[:-100]),
        "is corrupt: its header promises",
    ),
    (
        "MNIST not an IDX file",
        ["run", "--data", "mnist", "--data-dir", "{tmp}/data"],
        lambda t: mnist(t, lambda b: b"GIF89a" + b[6:]),
        "is not the expected IDX file",
    ),
    (
        "MNIST labels that do not match",
        ["run", "--data", "mnist", "--data-dir", "{tmp}/data"],
        lambda t: mnist(t, lambda b: b[:-1], "train-labels-idx1-ubyte"),
        "is corrupt",
    ),
    (
        "CIFAR-10 corrupt pickle",
        ["run", "--data", "cifar10", "--data-dir", "{tmp}/data"],
        lambda t: cifar(t, corrupt=True),
        "data_batch_1",
    ),
    (
        "CIFAR-10 images of the wrong size",
        ["run", "--data", "cifar10", "--data-dir", "{tmp}/data"],
        lambda t: cifar(t, columns=1024),
        "data_batch_1",
    ),
    (
        "CIFAR-10 file that would run code",
        ["run", "--data", "cifar10", "--data-dir", "{tmp}/data"],
        lambda t: cifar(t, planted=True),
        "data_batch_1 is not a batch file: it asks to call",
    ),
    (
        "ImageNet32 with the wrong channel count",
        ["run", "--data", "imagenet32", "--data-dir", "{tmp}/data"],
        imagenet32,
        "train_data_batch_1",
    ),
    (
        "unwritable database path",
        ["runs", "--db", "sqlite:////proc/biobench/results.db"],
        None,
        "cannot create the database folder /proc/biobench",
    ),
    (
        "typo in a database URL",
        ["runs", "--db", "postgress://u:hunter2@localhost/db"],
        None,
        "unknown database scheme 'postgress'",
    ),
    (
        "unparseable database URL",
        ["runs", "--db", "u:hunter2@localhost"],
        None,
        "cannot parse database URL",
    ),
    (
        "unreachable database",
        ["runs", "--db", "postgresql://u:hunter2@127.0.0.1:1/db"],
        None,
        "cannot reach database postgresql+psycopg://u:***@127.0.0.1:1/db",
    ),
    (
        "a database password with an unencoded /",
        ["runs", "--db", "postgresql://u:hunter2/hunter2@127.0.0.1:1/db"],
        None,
        "cannot reach database postgresql+psycopg://u:***@127.0.0.1:1/db",
    ),
    (
        "a database password with an unencoded @",
        ["runs", "--db", "postgresql://u:hunter2@hunter2@127.0.0.1:1/db"],
        None,
        "the password in database URL postgresql://u:***@127.0.0.1:1/db holds an '@'; write it",
    ),
    (
        "a database password as a URL parameter",
        ["runs", "--db", "postgresql://u@127.0.0.1:1/db?password=hunter2"],
        None,
        "cannot reach database postgresql+psycopg://u@127.0.0.1:1/db?password=***",
    ),
    ("in-memory database", ["runs", "--db", "sqlite://"], None, "in-memory SQLite"),
    (
        "database newer than biobench",
        ["runs", "--db", "sqlite:///{tmp}/newer.db"],
        newer_schema,
        "newer than this biobench knows (head 0003); upgrade biobench",
    ),
    (
        "unknown run id for --resume",
        ["run", "--resume", "42", "--db", "{db}"],
        None,
        "no run with id 42",
    ),
    (
        "--resume of a finished run",
        ["run", "--resume", "1", "--db", "{db}"],
        None,
        "run 1 already finished",
    ),
    (
        "--resume with spec options",
        ["run", "--resume", "1", "--set", "lr=1", "--db", "{db}"],
        None,
        "--resume continues a run with its own spec; drop --set",
    ),
    ("unknown run id for show", ["show", "42", "--db", "{db}"], None, "no run with id 42"),
    (
        "unknown run id for export",
        ["export", "--run", "42", "--db", "{db}"],
        None,
        "no run with id 42",
    ),
    (
        "unwritable export file",
        ["export", "--out", "/proc/biobench/x.csv", "--db", "{db}"],
        None,
        "cannot write /proc/biobench/x.csv",
    ),
    (
        "export to a device",
        ["export", "--out", "/dev/full", "--db", "{db}"],
        None,
        "cannot write /dev/full: it is a character device, not a regular file; choose another",
    ),
    (
        "export to a folder",
        ["export", "--out", "{tmp}", "--db", "{db}"],
        None,
        "cannot write {tmp}: it is a directory, not a regular file; choose another --out",
    ),
    (
        "unknown preset for check",
        ["check", "--preset", "mnist-mlp-bp", "--db", "{db}"],
        None,
        "unknown preset 'mnist-mlp-bp'",
    ),
    (
        "JUnit report to a device",
        ["check", "--junit", "/dev/full", "--db", "{db}"],
        None,
        "cannot write /dev/full: it is a character device, not a regular file; choose another",
    ),
    (
        "unknown dataset for compare",
        ["compare", "--data", "svhn", "--db", "{db}"],
        None,
        "unknown dataset 'svhn'",
    ),
    ("plot without runs", ["plot", "--db", "{db}"], None, "name the runs to plot"),
    (
        "plot to a folder",
        ["plot", "1", "--out", "{tmp}", "--db", "{db}"],
        None,
        "cannot write {tmp}: it is a directory, not a regular file; choose another --out",
    ),
    (
        "import of a missing file",
        ["import", "{tmp}/nothing.json", "--db", "{db}"],
        None,
        "is not a biobench spool file",
    ),
    (
        "import into the wrong database",
        ["import", "{tmp}/pending.json", "--db", "{db}"],
        foreign_spool,
        "belongs to another run 1",
    ),
    (
        "a value that looks like terminal markup",
        ["run", "--set", "lr=[red]1e-3"],
        None,
        "lr='[red]1e-3' is not a float",
    ),
    (
        "an option value of the wrong type",
        ["run", "--epochs", "ten"],
        None,
        "Invalid value for '--epochs': Input should be a valid integer",
    ),
    (
        "a missing argument",
        ["show", "--db", "{db}"],
        None,
        "Missing argument 'run_id'; see `biobench show --help`",
    ),
    (
        "an option value not among the choices",
        ["export", "--format", "xml", "--db", "{db}"],
        None,
        "'xml' is not one of 'csv', 'json'",
    ),
    ("an unknown command", ["trian"], None, "No such command 'trian'"),
    (
        "seeds that are not integers",
        ["run", "--seeds", "0,one"],
        None,
        "--seeds '0,one' is not a list of distinct non-negative integers",
    ),
    (
        "--seed and --seeds",
        ["run", "--seed", "1", "--seeds", "0,1"],
        None,
        "give --seed or --seeds, not both",
    ),
]


@pytest.fixture
def db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'results.db'}"
    assert (
        runner.invoke(app, ["run", "--data", "synthetic", "--epochs", "1", "--db", url]).exit_code
        == 0
    )
    return url


def snapshot(url: str) -> tuple[list, list]:
    store = Store(url)
    return store.runs(), store.epochs()


@pytest.mark.parametrize(("case", "args", "setup", "message"), CASES, ids=[c[0] for c in CASES])
def test_bad_input(
    case: str,
    args: list[str],
    setup,
    message: str,
    tmp_path: Path,
    db: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key, value in (setup(tmp_path) if setup else {}).items():
        monkeypatch.setenv(key, value)
    before = snapshot(db)
    fill = {"{tmp}": str(tmp_path), "{db}": db}
    argv = [re.sub("|".join(map(re.escape, fill)), lambda m: fill[m.group(0)], a) for a in args]
    if "--db" not in argv:
        argv += ["--db", db] if argv[0] in ("run", "runs") and "--db" not in args else []
    result = runner.invoke(app, argv)
    expected = message.replace("{tmp}", str(tmp_path))
    assert result.exit_code != 0
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.output and "hunter2" not in result.output
    assert snapshot(db) == before


def test_the_readme_lists_every_case() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Bad input", 1)[1].split("\n## ", 1)[0]
    listed = [
        line.split("|")[1].strip()
        for line in section.splitlines()
        if line.startswith("| ") and not line.startswith("| input")
    ]
    assert listed == [case[0] for case in CASES]
