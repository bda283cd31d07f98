"""The Typer app, its shared options and the one place errors become exit codes.

Errors a user can fix arrive as `BiobenchError` and print as one red line with a non-zero exit;
anything else is a bug, shown as one line too unless `--debug` asks for the traceback.
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from biobench.errors import BiobenchError
from biobench.text import printable

# The command-line parser's own error type (click's, vendored by recent Typer), found without
# importing a private module: BadParameter derives from it in every Typer version.
ClickException = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


def _no_type(ctx: Any) -> None:
    return None


class PlainMetavars:
    """Help that shows what to type. A flag shows no value placeholder (Typer prints `<bool>`
    beside --help and every other flag, as if it took a value); an option or argument with a
    `metavar=` (NAME, N, FILE, RUN_ID) shows that alone, not also Typer's `<int>` or
    `<list[int]>`; choices keep their list (`<csv|json>`)."""

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)  # type: ignore[misc]
        for param in params:
            if getattr(param, "is_flag", False):
                param.metavar = ""
            elif (
                isinstance(param, typer.core.TyperArgument)
                and param.metavar
                and not param.type_descriptor.is_choice
            ):
                param.display_type_rich = _no_type  # Typer reads the type only from here
        return params


class OneLineSummary:
    """A command's or group's summary in its parent's list of commands is its help's first
    paragraph as one line: Typer's rich help keeps the summary's line breaks, so a docstring
    wrapped at 99 columns would break it mid-sentence."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.short_help is None and self.help:  # type: ignore[attr-defined]
            first = inspect.cleandoc(self.help).split("\n\n")[0]  # type: ignore[attr-defined]
            self.short_help = " ".join(first.split())


class Command(OneLineSummary, PlainMetavars, typer.core.TyperCommand):
    """Every biobench command (see `App`). Its usage line names arguments as POSIX does:
    `biobench show [OPTIONS] RUN_ID`, not Typer's `{run_id}`."""

    def invoke(self, ctx: Any) -> Any:
        """Refuse an empty or blank NAME (`--preset ''`): taken as not given, it would run or
        show the default (every run, the default spec) instead of what was meant."""
        for param in self.get_params(ctx):
            value = ctx.params.get(param.name or "")
            values = value if isinstance(value, list | tuple) else [value]
            if param.metavar == "NAME" and any(
                isinstance(v, str) and not v.strip() for v in values
            ):
                raise typer.BadParameter("a name cannot be empty", ctx=ctx, param=param)
        return super().invoke(ctx)

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if isinstance(param, typer.core.TyperArgument):
                name = param.metavar or (param.name or "").upper()
                name += "..." if param.nargs != 1 else ""
                pieces.append(name if param.required else f"[{name}]")
        return pieces


class OneLineErrors(OneLineSummary, PlainMetavars, typer.core.TyperGroup):
    """Usage errors (a bad option value, a missing argument, an unknown command) as one line
    naming the help to read, like every other biobench error, instead of a framed panel."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except ClickException as error:
            if type(error).__name__ == "NoArgsIsHelpError":  # the help was printed already
                raise SystemExit(2) from None
            context = getattr(error, "ctx", None)
            where = ""
            if context is not None:  # named as users type it, whatever the launcher's name
                names = []
                while context.parent is not None:
                    names.insert(0, context.info_name)
                    context = context.parent
                where = f"; see `{' '.join(['biobench', *names])} --help`"
            _fail(f"{error.format_message().rstrip('.')}{where}", error.exit_code)
            raise SystemExit(error.exit_code) from None
        except typer.Abort:
            _fail("aborted", 1)
            raise SystemExit(1) from None
        raise SystemExit(code if isinstance(code, int) else 0)


class App(typer.Typer):
    """A Typer app of `OneLineErrors` groups and `Command`s unless told otherwise."""

    def __init__(self, *, cls: type | None = None, **kwargs: Any) -> None:
        super().__init__(cls=cls or OneLineErrors, **kwargs)

    def command(self, *args: Any, cls: type | None = None, **kwargs: Any) -> Any:
        return super().command(*args, cls=cls or Command, **kwargs)


app = App(
    help="Benchmark biologically-motivated learning rules against backprop.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = App(help="Manage the results database's schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")

# Into a pipe or a file, a line is never broken to fit 80 columns (grep, redirects); in a
# terminal, long lines wrap at word boundaries.
console = Console(soft_wrap=not sys.stdout.isatty())
err_console = Console(stderr=True)
_state = {"debug": False}
F = TypeVar("F", bound=Callable[..., Any])

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Results database URL (SQLAlchemy). Default: $BIOBENCH_DB, else "
        "sqlite:///$BIOBENCH_HOME/results.db.",
        show_default=False,
        metavar="URL",
    ),
]


PresetsOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--presets",
        help="A user preset file to read beside benchmarks.yaml (repeatable); "
        "$BIOBENCH_HOME/presets.yaml and the files $BIOBENCH_PRESETS names are read too.",
        show_default=False,
        metavar="FILE",
    ),
]


def database_int(value: Any) -> Any:
    """Option callback for run ids and counts (one, or a list): each from 1 to the largest
    integer the results database stores, refused as a usage error before any query, which
    would overflow."""
    from biobench.spec.params import LARGEST_INT

    for number in value if isinstance(value, list) else [value]:
        if number is not None and not 1 <= number <= LARGEST_INT:
            raise typer.BadParameter(f"must be from 1 to {LARGEST_INT}, got {number}")
    return value


# Set by `run --nproc N` for its ranks: a folder where each rank leaves its error line
# (rank-R: "CODE<tab>MESSAGE") for the launching process to say once, instead of N times.
RANK_ERRORS_ENV = "BIOBENCH_RANK_ERRORS"


def _fail(message: str, code: int) -> typer.Exit:
    folder = os.environ.get(RANK_ERRORS_ENV)
    if folder and "RANK" in os.environ:
        with suppress(OSError):  # not written: the launcher says the rank's exit code
            Path(folder, f"rank-{os.environ['RANK']}").write_text(f"{code}\t{message}")
            return typer.Exit(code)
    err_console.print(
        f"[bold red]error:[/] {escape(printable(message))}", highlight=False, soft_wrap=True
    )
    return typer.Exit(code)


def handle_errors(command: F) -> F:
    """Turn exceptions into one line and an exit code (2: bad input, 1: bug, 130: Ctrl-C)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except BiobenchError as error:
            if _state["debug"]:
                raise
            raise _fail(str(error), 2) from None
        except KeyboardInterrupt as error:
            # A command that knows how to continue what was stopped says so in the message.
            raise _fail(str(error) or "interrupted", 130) from None
        except (typer.Exit, typer.Abort):
            raise
        except Exception as error:
            if _state["debug"]:
                raise
            raise _fail(  # a library's message may span lines: one line, no literal \n
                f"internal error: {type(error).__name__}: {' '.join(str(error).split())} "
                "(rerun with `biobench --debug ...` for the traceback)",
                1,
            ) from None

    return wrapper  # type: ignore[return-value]


def _version(value: bool) -> None:
    if value:
        from biobench import __version__

        console.print(f"biobench {__version__}", markup=False)
        raise typer.Exit()


@app.callback()
def main_options(
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            help="Show tracebacks; training checks every step's graphs for weight transport "
            "(not once per layer and shape).",
        ),
    ] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show version.")
    ] = False,
) -> None:
    _state["debug"] = debug
