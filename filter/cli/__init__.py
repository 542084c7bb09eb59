"""The `vtx` command line: a thin layer over the library.

Every command calls the Python API; this package only parses options, shows progress and
results, and translates errors: one line ``vtx: error: ...`` on stderr, no traceback unless
``--debug`` (or ``VTX_DEBUG=1``), and the exit code of the error (0 ok, 1 bad input or data,
2 usage, key or catalogue error; `vtx verify` exits 3 when an output fails its checks, 4 for
an onshore output whose export half is missing). `docs/cli.md` is generated from these
commands (`filter.cli.reference`).
"""

from __future__ import annotations

import os
import sys
import warnings
from contextlib import suppress
from typing import Any

import click

from filter._version import __version__
from filter.cli.native_stderr import native_panics_filtered
from filter.cli.output import echo
from filter.errors import EXIT_DATA, EXIT_USAGE, VtxError, first_line
from filter.secret_files import ExposedKeyWarning

EXIT_INTERRUPTED = 130


class VtxGroup(click.Group):
    """A click group whose `main` turns every failure into one line and an exit code."""

    def main(self, args: Any = None, prog_name: str | None = None, **extra: Any) -> Any:  # type: ignore[override]
        argv = list(sys.argv[1:] if args is None else args)
        debug = "--debug" in argv or os.environ.get("VTX_DEBUG") == "1"
        extra["standalone_mode"] = False
        try:
            with warnings.catch_warnings():
                warnings.showwarning = _show_warning
                result = super().main(args=argv, prog_name=prog_name or "vtx", **extra)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.exceptions.NoArgsIsHelpError as exc:  # `vtx` or `vtx catalogue` alone
            if exc.ctx is not None:
                click.echo(exc.ctx.get_help())
            where = exc.ctx.command_path if exc.ctx else "vtx"
            _fail(f"missing command (see '{where} --help')", EXIT_USAGE)
        except click.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx else "vtx"
            _fail(f"{exc.format_message()} (see '{where} --help')", EXIT_USAGE)
        except click.ClickException as exc:
            _fail(exc.format_message(), exc.exit_code)
        except (click.Abort, KeyboardInterrupt):
            _fail("interrupted; nothing was published", EXIT_INTERRUPTED)
        except VtxError as exc:
            if debug:
                raise
            _fail(str(exc), exc.exit_code)
        except MemoryError:  # the budget is more than the machine or its limits give
            if debug:
                raise
            _fail("out of memory; nothing was published (a smaller --memory-budget, or "
                  "VTX_MEMORY_BUDGET, keeps a run within what this machine gives it)", EXIT_DATA)
        except BaseException as exc:  # Exception, and pyo3's PanicException (a BaseException)
            if debug or not (isinstance(exc, Exception) or type(exc).__name__ == "PanicException"):
                raise
            _fail(
                f"unexpected {type(exc).__name__}: {first_line(exc)} "
                "(run with --debug for the traceback)",
                EXIT_DATA,
            )
        sys.exit(result if isinstance(result, int) else 0)


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: Any = None, line: str | None = None) -> None:
    """vtx's own warnings (a key file others can read) as one ``vtx: warning:`` line; any
    other as Python shows it."""
    if issubclass(category, ExposedKeyWarning):
        echo(f"vtx: warning: {message}", err=True)
        return
    _python_show_warning(message, category, filename, lineno, file, line)


_python_show_warning = warnings.showwarning


def _fail(message: str, code: int) -> None:
    echo(f"vtx: error: {message}", err=True)
    sys.exit(code)


@click.group(cls=VtxGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="vtx", message="%(prog)s %(version)s")
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
def vtx(debug: bool) -> None:
    """vtx splits vehicle telemetry into data that may leave the country (export) and data
    that stays onshore, field by field, by a versioned catalogue."""


def _register() -> None:
    from filter.cli import catalogue, demo, explain, keygen, report, split, verify

    for module in (split, explain, verify, report, catalogue, keygen, demo):
        vtx.add_command(module.command)


_register()


def main() -> None:
    """Console-script entry point (and `python -m filter`)."""
    code: int | str | None = 0
    with native_panics_filtered(enabled="--debug" not in sys.argv[1:]):
        try:
            vtx.main()
        except SystemExit as exc:
            code = exc.code
    if not isinstance(code, int):
        sys.exit(code)
    _leave(code)


def _leave(code: int) -> None:
    """End the process with `code` once a command is done, without the interpreter's
    teardown: by then the outputs are published (fsynced) or nothing is, every thread's work
    is awaited, and what stays is a last collection and freeing every module, which nothing
    needs (0.3 s after a split: 6% of a run on 1M protobuf messages)."""
    for stream in (sys.stdout, sys.stderr):
        with suppress(OSError, ValueError):
            stream.flush()
    if "logging" in sys.modules:  # Ray's, where the Ray engine ran
        import logging

        logging.shutdown()
    os._exit(code)
