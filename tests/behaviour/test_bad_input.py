"""Every bad input biobench has been tried with, and what it says (the docs' "Bad input" page,
docs/bad-input.md).

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
from biobench.spec import resolve
from biobench.store import Store
from biobench.store.store import HOST
from support.data import make_mnist, write_idx

ROOT = Path(__file__).resolve().parents[2]
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


def mnist_t10k(tmp: Path, images: np.ndarray) -> dict[str, str]:
    """MNIST whose test images are `images` (with as many labels)."""
    raw = make_mnist(tmp / "data", n_train=20, n_test=10) / "MNIST" / "raw"
    write_idx(raw / "t10k-images-idx3-ubyte", images, 2051)
    write_idx(raw / "t10k-labels-idx1-ubyte", np.zeros(len(images)), 2049)
    return {}


def mnist_replaced(tmp: Path, by: str) -> dict[str, str]:
    """MNIST whose train-images file is a damaged .gz (by="gz") or a folder (by="folder")."""
    target = make_mnist(tmp / "data", n_train=20, n_test=10) / "MNIST" / "raw"
    target /= "train-images-idx3-ubyte"
    target.unlink()
    if by == "gz":  # a gzip header, then a deflate stream zlib cannot decode
        header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
        target.with_name(target.name + ".gz").write_bytes(header + b"\xff" * 64)
    else:
        target.mkdir()
    return {}


class Planted:
    """What a hostile CIFAR-10 batch holds: unpickling it would run a shell command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, ...]:
        return (os.system, (f"touch {self.marker}",))


def cifar(
    tmp: Path,
    columns: int = 3072,
    corrupt: bool = False,
    planted: bool = False,
    n_test: int = 4,
    folder_for: str | None = None,
) -> dict[str, str]:
    folder = tmp / "data" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]:
        if name == folder_for:
            (folder / name).mkdir()
            continue
        n = n_test if name == "test_batch" else 4
        batch = {
            b"data": Planted(tmp / "pwned") if planted else np.zeros((n, columns), np.uint8),
            b"labels": list(range(n)),
            b"batch_label": b"x",
            b"filenames": [b"a"] * 4,
        }
        blob = pickle.dumps(batch)
        (folder / name).write_bytes(blob[: len(blob) // 2] if corrupt else blob)
    return {}


def imagenet32(
    tmp: Path, channels: int = 2, n_val: int = 4, folder_for: str | None = None
) -> dict[str, str]:
    folder = tmp / "data" / "imagenet32"
    folder.mkdir(parents=True)
    for name in ("train_data_batch_1.npz", "val_data.npz"):  # 2 channels' worth by default
        n = n_val if name == "val_data.npz" else 4
        if name == folder_for:
            (folder / name).mkdir()
            continue
        np.savez(
            folder / name,
            data=np.zeros((n, channels * 32 * 32), np.uint8),
            labels=np.arange(1, n + 1),
        )
    return {}


def newer_schema(tmp: Path) -> dict[str, str]:
    from sqlalchemy import create_engine, text

    url = f"sqlite:///{tmp / 'newer.db'}"
    Store(url).dispose()
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE biobench_version SET version_num = 'ffff'"))
    engine.dispose()
    return {}


def a_study(tmp: Path) -> dict[str, str]:
    """Study s of one 1-epoch trial in the test's database."""
    args = ["search", "--study", "s", "--algo", "bp", "--arch", "fc", "--data", "synthetic"]
    args += ["--batch-size", "256", "--trials", "1", "--epochs", "1"]
    assert runner.invoke(app, [*args, "--db", f"sqlite:///{tmp / 'results.db'}"]).exit_code == 0
    return {}


def a_space(text: str):
    def write(tmp: Path) -> dict[str, str]:
        (tmp / "space.yaml").write_text(text)
        return {}

    return write


def a_file_of(name: str, text: str):
    def write(tmp: Path) -> dict[str, str]:
        (tmp / name).write_text(text)
        return {}

    return write


def a_fifo(name: str):
    def make(tmp: Path) -> dict[str, str]:
        os.mkfifo(tmp / name)  # no writer: reading it would wait forever
        return {}

    return make


def a_huge_file(name: str):
    def make(tmp: Path) -> dict[str, str]:
        with open(tmp / name, "wb") as handle:  # sparse: 64 MiB + 1 byte, none written
            handle.truncate(64 * 2**20 + 1)
        return {}

    return make


SEARCH = ["search", "--study", "s", "--algo", "bp", "--arch", "fc", "--data", "synthetic"]


def a_file(tmp: Path) -> dict[str, str]:
    (tmp / "file").write_text("not a folder")
    return {}


def running_spool(tmp: Path) -> dict[str, str]:
    (tmp / "pending.json").write_text(
        '{"run_id": 1, "spec_hash": "abc", "epochs": {}, "status": "running"}'
    )
    return {}


def a_running_run(tmp: Path) -> dict[str, str]:
    """Run 2 of the database, still training in this very process."""
    spec = resolve(algorithm="bp", architecture="fc", dataset="synthetic", epochs=1)
    Store(f"sqlite:///{tmp / 'results.db'}").create_run(
        **spec.run_fields(), device="cpu", environment={}, host=HOST, pid=os.getpid()
    )
    return {}


def foreign_spool(tmp: Path) -> dict[str, str]:
    (tmp / "pending.json").write_text('{"run_id": 1, "spec_hash": "abc", "epochs": {}}')
    return {}


PRESET = (
    "presets:\n  p: {algorithm: bp, architecture: fc, dataset: digits, "
    "reference: {test_top1: 1}, tolerance: 1, lr: 3}\n"
)
DEFAULTS = "defaults: {seed: 0, epochs: 1, batch_size: 8}\n"
HUGE = "99999999999999999999"  # beyond 64 bits

# (id, arguments, setup, what the one line must say). {tmp} is a scratch folder, {db} the
# database holding one finished run.
CASES = [
    (
        "unknown algorithm",
        ["run", "--algo", "dtpp"],
        None,
        "unknown algorithm 'dtpp'; choose one of: ao-sdtp, bp, ",  # then every other rule
    ),
    (
        "unknown architecture",
        ["run", "--arch", "vgg16"],
        None,
        "unknown architecture 'vgg16'; choose one of: conv, fc, lc",
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
        ["run", "--set", "alpha=0.1"],
        None,
        "bp has no hyperparameter 'alpha'; valid: lr, beta1, beta2, eps, optimizer, momentum,",
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
        "--set an int beyond 64 bits",
        ["run", "--algo", "ao-sdtp", "--set", f"aux_units={HUGE}"],
        None,
        f"aux_units='{HUGE}' does not fit in 64 bits",
    ),
    (
        "--set a number in full-width digits",
        ["run", "--set", "lr=\uff11e-3"],
        None,
        "lr='\uff11e-3' is not a float",
    ),
    ("--set a number with an underscore", ["run", "--set", "lr=1_0"], None, "lr='1_0' is not a"),
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
        "a seed beyond the database's integers",
        ["run", "--seed", HUGE],
        None,
        f"--seed must be <= 2147483647 (the largest the results database stores), got {HUGE}",
    ),
    (
        "epochs beyond the database's integers",
        ["run", "--epochs", HUGE],
        None,
        "--epochs must be <=",
    ),
    (
        "a batch size beyond the database's integers",
        ["run", "--batch-size", "2147483648"],
        None,
        "--batch-size must be <= 2147483647",
    ),
    (
        "a batch size in exponent notation",
        ["run", "--batch-size", "1e8"],
        None,
        "Invalid value for '--batch-size': Input should be a valid integer",
    ),
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
        "MNIST split with no images",
        ["run", "--data", "mnist", "--data-dir", "{tmp}/data"],
        lambda t: mnist_t10k(t, np.zeros((0, 28, 28))),
        "{tmp}/data/MNIST/raw/t10k-images-idx3-ubyte holds no images; delete it",
    ),
    (
        "MNIST test images of another size",
        ["run", "--data", "mnist", "--data-dir", "{tmp}/data"],
        lambda t: mnist_t10k(t, np.zeros((10, 14, 14))),
        "MNIST test images in {tmp}/data/MNIST/raw/t10k-images-idx3-ubyte are 14x14 but the "
        "training images in {tmp}/data/MNIST/raw/train-images-idx3-ubyte are 28x28",
    ),
    (
        "MNIST .gz that does not decompress",
        ["run", "--data", "mnist", "--data-dir", "{tmp}/data"],
        lambda t: mnist_replaced(t, "gz"),
        "MNIST file {tmp}/data/MNIST/raw/train-images-idx3-ubyte.gz is unreadable",
    ),
    (
        "MNIST file that is a folder",
        ["run", "--data", "mnist", "--data-dir", "{tmp}/data"],
        lambda t: mnist_replaced(t, "folder"),
        "MNIST file {tmp}/data/MNIST/raw/train-images-idx3-ubyte is a folder, not a file",
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
        "CIFAR-10 test batch with no images",
        ["run", "--data", "cifar10", "--data-dir", "{tmp}/data"],
        lambda t: cifar(t, n_test=0),
        "{tmp}/data/cifar-10-batches-py/test_batch holds no images; delete it",
    ),
    (
        "CIFAR-10 batch that is a folder",
        ["run", "--data", "cifar10", "--data-dir", "{tmp}/data"],
        lambda t: cifar(t, folder_for="data_batch_3"),
        "{tmp}/data/cifar-10-batches-py/data_batch_3 is a folder, not a file",
    ),
    (
        "ImageNet32 with the wrong channel count",
        ["run", "--data", "imagenet32", "--data-dir", "{tmp}/data"],
        imagenet32,
        "train_data_batch_1",
    ),
    (
        "ImageNet32 validation file with no images",
        ["run", "--data", "imagenet32", "--data-dir", "{tmp}/data"],
        lambda t: imagenet32(t, channels=3, n_val=0),
        "{tmp}/data/imagenet32/val_data.npz holds no images; download it again",
    ),
    (
        "ImageNet32 file that is a folder",
        ["run", "--data", "imagenet32", "--data-dir", "{tmp}/data"],
        lambda t: imagenet32(t, channels=3, folder_for="val_data.npz"),
        "{tmp}/data/imagenet32/val_data.npz is a folder, not a file",
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
        "unknown precision",
        ["run", "--set", "precision=fp16"],
        None,
        "precision='fp16' is not allowed; precision takes one of fp32, tf32, bf16",
    ),
    (
        "a validation split as large as the training set",
        ["run", "--set", "val_split=1437"],
        None,
        "--set val_split=1437: digits has 1437 training images; hold out between 1 and 1436",
    ),
    (
        "a validation objective without a validation split",
        ["search", "--study", "v", "--algo", "bp", "--arch", "fc", "--data", "digits"]
        + ["--trials", "2", "--objective", "val"],
        None,
        "--objective val needs a validation split: add --set val_split=N",
    ),
    (
        "a user preset file that does not exist",
        ["check", "--presets", "{tmp}/nothing.yaml"],
        None,
        "cannot read {tmp}/nothing.yaml: No such file or directory",
    ),
    (
        "an empty preset name",
        ["run", "--preset", ""],
        None,
        "Invalid value for '--preset' / '--bench': a name cannot be empty; see `biobench run "
        "--help`",
    ),
    (
        "an empty suite name",
        ["check", "--suite", ""],
        None,
        "Invalid value for '--suite': a name cannot be empty; see `biobench check --help`",
    ),
    (
        "an Adam setting under SGD",
        ["run", "--set", "optimizer=sgd", "--set", "beta1=0.8"],
        None,
        "--set beta1=0.8 applies to optimizer=adam only (this run's optimizer is sgd); add --set "
        "optimizer=adam or drop beta1",
    ),
    (
        "a step-schedule setting without the step schedule",
        ["run", "--set", "lr_gamma=0.5"],
        None,
        "--set lr_gamma=0.5 applies to lr_schedule=step only (this run's lr_schedule is none); "
        "add --set lr_schedule=step or drop lr_gamma",
    ),
    (
        "a Slurm option with the local launcher",
        ["run", "--launcher", "local", "--slurm-time", "1:00:00"],
        None,
        "--slurm-time applies to --launcher slurm only, not local; drop it",
    ),
    (
        "a launcher option without a launcher",
        ["run", "--wait"],
        None,
        "--wait applies to jobs only; add --launcher slurm or local, or drop it",
    ),
    (
        "alignment plot with --compare",
        ["plot", "1", "--alignment", "--compare", "all"],
        None,
        "--compare draws a comparison's bars, not runs: drop the --alignment, or drop --compare "
        "and plot the runs",
    ),
    (
        "a user preset file that is a device",
        ["list", "--presets", "/dev/zero"],
        None,
        "cannot read /dev/zero: it is a character device, not a regular file; check --presets "
        "and BIOBENCH_PRESETS",
    ),
    (
        "a user preset file larger than any preset file",
        ["list", "--presets", "{tmp}/huge.yaml"],
        a_huge_file("huge.yaml"),
        "cannot read {tmp}/huge.yaml: it is 67108865 bytes, more than the 67108864 allowed; fix "
        "the file",
    ),
    (
        "a user preset file whose suites include each other",
        ["list", "suites", "--presets", "{tmp}/mine.yaml"],
        a_file_of("mine.yaml", "suites: {a: [b], b: [c], c: [a]}\n"),
        "{tmp}/mine.yaml: suite 'a' includes itself (a -> b -> c -> a); break the cycle",
    ),
    (
        "alignment plot of several runs",
        ["plot", "1", "2", "--alignment"],
        None,
        "--alignment draws one run: name one",
    ),
    (
        "database newer than biobench",
        ["runs", "--db", "sqlite:///{tmp}/newer.db"],
        newer_schema,
        "newer than this biobench knows (head 0007); upgrade biobench",
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
        "a run id beyond the database's integers",
        ["show", HUGE, "--db", "{db}"],
        None,
        f"Invalid value for 'RUN_ID': must be from 1 to 2147483647, got {HUGE}",
    ),
    (
        "an exported run id beyond the database's integers",
        ["export", "--run", HUGE, "--db", "{db}"],
        None,
        "Invalid value for '--run': must be from 1 to 2147483647",
    ),
    (
        "a plotted run id beyond the database's integers",
        ["plot", "1", HUGE, "--db", "{db}"],
        None,
        "Invalid value for 'RUN_ID': must be from 1 to 2147483647",
    ),
    (
        "a --limit beyond the database's integers",
        ["runs", "--limit", HUGE],
        None,
        "Invalid value for '--limit': must be from 1 to 2147483647",
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
        "plot to a file of no image format",
        ["plot", "1", "--out", "{tmp}/figure", "--db", "{db}"],
        None,
        "cannot write {tmp}/figure: a figure's file name must end in .png, .pdf or .svg",
    ),
    (
        "unknown dataset for plot --compare",
        ["plot", "--compare", "svhn", "--db", "{db}"],
        None,
        "unknown dataset 'svhn'; choose one of",
    ),
    (
        "import of a missing file",
        ["import", "{tmp}/nothing.json", "--db", "{db}"],
        None,
        "nothing.json: No such file or directory",
    ),
    (
        "import of a device",
        ["import", "/dev/zero", "--db", "{db}"],
        None,
        "cannot read /dev/zero: it is a character device, not a regular file; pass the "
        "pending.json a run left",
    ),
    (
        "import into the wrong database",
        ["import", "{tmp}/pending.json", "--db", "{db}"],
        foreign_spool,
        "belongs to another run 1",
    ),
    (
        "import of a status no run ends with",
        ["import", "{tmp}/pending.json", "--db", "{db}"],
        running_spool,
        "is not a valid spool file: status 'running' is not one of finished, failed, "
        "interrupted, diverged; nothing imported",
    ),
    (
        "a seconds variable that is not a number",
        ["runs", "--db", "{db}"],
        lambda t: {"BIOBENCH_LOST_AFTER": "5min"},
        "BIOBENCH_LOST_AFTER='5min' is not a number of seconds; set it to e.g. 300, or unset it",
    ),
    (
        "a checkpoint folder that is a file",
        [
            "run",
            "--data",
            "synthetic",
            "--epochs",
            "1",
            "--checkpoint-dir",
            "{tmp}/file",
            "--db",
            "{db}",
        ],
        a_file,
        "cannot keep checkpoints in {tmp}/file: Not a directory; pass --checkpoint-dir DIR "
        "with a writable folder",
    ),
    (
        "resume with a falsy spec option",
        ["run", "--resume", "1", "--epochs", "0", "--db", "{db}"],
        None,
        "--resume continues a run with its own spec; drop --epochs",
    ),
    (
        "resume of a run id beyond the database's integers",
        ["run", "--resume", HUGE, "--db", "{db}"],
        None,
        "Invalid value for '--resume'",
    ),
    (
        "a GPU index that is not a number",
        ["run", "--device", "cuda:x"],
        None,
        "unknown device 'cuda:x'; choose one of: auto, cpu, cuda, cuda:N",
    ),
    (
        "a value that looks like terminal markup",
        ["run", "--set", "lr=[red]1e-3"],
        None,
        "lr='[red]1e-3' is not a float",
    ),
    (
        "a path holding a terminal escape",
        ["run", "--data", "mnist", "--data-dir", "{tmp}/\x1b[2Jgone"],
        None,
        "MNIST not found: expected {tmp}/\\x1b[2Jgone/MNIST/raw/train-images-idx3-ubyte",
    ),
    (
        "an --out holding a terminal escape",
        ["plot", "1", "--out", "{tmp}/\x1b]0;title\x07", "--db", "{db}"],
        None,
        "cannot write {tmp}/\\x1b]0;title\\x07: a figure's file name must end in .png",
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
        "Missing argument 'RUN_ID'; see `biobench show --help`",
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
        "a seed in --seeds beyond the database's integers",
        ["run", "--seeds", f"0,{HUGE}"],
        None,
        f"--seeds must be <= 2147483647 (the largest the results database stores), got {HUGE}",
    ),
    (
        "--seed and --seeds",
        ["run", "--seed", "1", "--seeds", "0,1"],
        None,
        "give --seed or --seeds, not both",
    ),
    (
        "a checkpoint choice that does not exist",
        ["run", "--keep-checkpoint", "all"],
        None,
        "Invalid value for '--keep-checkpoint': Value error, 'all' is not one of 'last', 'none'",
    ),
    (
        "resume with a checkpoint choice",
        ["run", "--resume", "1", "--keep-checkpoint", "last", "--db", "{db}"],
        None,
        "--resume continues a run with its own spec; drop --keep-checkpoint",
    ),
    (
        "unknown run id for rm",
        ["rm", "42", "--yes", "--db", "{db}"],
        None,
        "no run with id 42 in sqlite:///{tmp}/results.db; `biobench runs` lists them",
    ),
    (
        "rm of a run still training",
        ["rm", "1", "2", "--yes", "--db", "{db}"],
        a_running_run,
        "; stop it first (Ctrl-C, or kill its process), then remove it",
    ),
    (
        "rm with no one to answer its question",
        ["rm", "1", "--db", "{db}"],
        None,
        "no answer to the confirmation, so nothing was removed; pass --yes to remove without "
        "asking",
    ),
    (
        "a removed run id beyond the database's integers",
        ["rm", HUGE, "--db", "{db}"],
        None,
        f"Invalid value for 'RUN_ID': must be from 1 to 2147483647, got {HUGE}",
    ),
    (
        "unknown study",
        ["study", "nope", "--db", "{db}"],
        None,
        "no study 'nope' in sqlite:///{tmp}/results.db; `biobench studies` lists them",
    ),
    (
        "a study joined with another spec",
        [*SEARCH, "--trials", "2", "--epochs", "2", "--batch-size", "256", "--db", "{db}"],
        a_study,
        "study 's' exists with another spec (epochs: 1 in the study, 2 asked); join it with the "
        "same options, or pass another --study",
    ),
    (
        "a search of no trials",
        [*SEARCH, "--trials", "0", "--db", "{db}"],
        None,
        "Invalid value for '--trials': must be from 1 to 2147483647, got 0",
    ),
    (
        "a space file with an unknown hyperparameter",
        [*SEARCH, "--trials", "1", "--space", "{tmp}/space.yaml", "--db", "{db}"],
        a_space("lrr: {low: 1e-5, high: 3e-4}\n"),
        "space file {tmp}/space.yaml: bp has no hyperparameter 'lrr'; valid: ",
    ),
    (
        "a space range outside the hyperparameter's bounds",
        [*SEARCH, "--trials", "1", "--space", "{tmp}/space.yaml", "--db", "{db}"],
        a_space("beta2: {low: 0.9, high: 1.5}\n"),
        "space file {tmp}/space.yaml: beta2=1.5 is out of range; beta2 takes a float in [0, 1) "
        "(Adam beta2)",
    ),
    (
        "a --set beside a --space entry for it",
        [*SEARCH, "--trials", "1", "--space", "{tmp}/space.yaml", "--set", "lr=1e-3"],
        a_space("lr: {low: 1e-5, high: 3e-4, log: true}\n"),
        "--set lr fixes what --space searches (lr); drop it from one of them",
    ),
    (
        "a space file that is a named pipe",
        [*SEARCH, "--trials", "1", "--space", "{tmp}/space.yaml", "--db", "{db}"],
        a_fifo("space.yaml"),
        "cannot read space file {tmp}/space.yaml: it is a named pipe, not a regular file; pass "
        "--space FILE.yaml",
    ),
    (
        "a space file whose value holds itself",
        [*SEARCH, "--trials", "1", "--space", "{tmp}/space.yaml", "--db", "{db}"],
        a_space("lr: &a {choices: [*a]}\n"),
        "space file {tmp}/space.yaml is not valid YAML (line 1): alias *a is used inside its own "
        "anchor (a recursive value); see the docs' 'Tune a rule with search'",
    ),
    (
        "a sampler that does not exist",
        [*SEARCH, "--trials", "1", "--sampler", "grid", "--db", "{db}"],
        None,
        "Invalid value for '--sampler': Value error, 'grid' is not one of 'random', 'tpe'",
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
    environment = setup(tmp_path) if setup else {}
    before = snapshot(db)  # before the environment changes: it may be what is bad
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    fill = {"{tmp}": str(tmp_path), "{db}": db}
    argv = [re.sub("|".join(map(re.escape, fill)), lambda m: fill[m.group(0)], a) for a in args]
    if "--db" not in argv:
        argv += ["--db", db] if argv[0] in ("run", "runs") and "--db" not in args else []
    result = runner.invoke(app, argv)
    expected = message.replace("{tmp}", str(tmp_path))
    assert result.exit_code != 0
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr[:-1].isprintable(), result.stderr  # no escape reaches the terminal
    assert expected in result.stderr
    assert "Traceback" not in result.output and "hunter2" not in result.output
    for key in environment:
        monkeypatch.delenv(key)
    assert snapshot(db) == before


def test_the_docs_list_every_case() -> None:
    section = (ROOT / "docs" / "bad-input.md").read_text()
    listed = [
        line.split("|")[1].strip()
        for line in section.splitlines()
        if line.startswith("| ") and not line.startswith("| input")
    ]
    assert listed == [case[0] for case in CASES]


def test_a_plugin_that_fails_to_load_is_named_escaped(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A plugin's name and error text are a package author's: its warning cannot drive the
    terminal, nor break the line."""
    from importlib.metadata import EntryPoint

    from biobench.registry import ALGORITHMS, _load_plugin

    monkeypatch.setattr(ALGORITHMS, "broken", {})
    point = EntryPoint("evil\x1b[2J", "no_such_module_h3.x\x1b[31m:\nRule", ALGORITHMS.group)
    _load_plugin(ALGORITHMS, point)
    warning = capsys.readouterr().err
    assert warning.count("\n") == 1 and warning[:-1].isprintable(), warning
    assert "plugin 'evil\\x1b[2J'" in warning


@pytest.mark.slow
def test_a_bad_input_only_the_ranks_find_is_said_once(tmp_path: Path) -> None:
    """A dataset that is missing is found by the ranks as they load it: each would print the
    line and torch's launcher its own lines; the user sees rank 0's line once, exit status 2."""
    import subprocess
    import sys

    env = {**os.environ, "BIOBENCH_HOME": str(tmp_path), "BIOBENCH_DATA_DIR": str(tmp_path)}
    ran = subprocess.run(
        [sys.executable, "-m", "biobench", "run", "--nproc", "2", "--data", "mnist"]
        + ["--epochs", "1", "--device", "cpu", "--db", f"sqlite:///{tmp_path / 'r.db'}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert ran.returncode == 2
    assert (
        ran.stderr.startswith("error: MNIST not found: expected ") and ran.stderr.count("\n") == 1
    ), ran.stderr
