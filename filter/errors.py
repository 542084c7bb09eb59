"""The one error family of vtx.

The library raises only `VtxError` subclasses for problems a user can act on; each names the file
and the place (TOML key, row group, column). Only the CLI turns them into one-line messages and
exit codes, using `exit_code`. The library never prints and never calls `sys.exit`.
"""

from __future__ import annotations

from filter.printable import printable

# Exit codes shared by the library's errors and the CLI.
EXIT_OK = 0
EXIT_DATA = 1  # bad input or data
EXIT_USAGE = 2  # usage, key or catalogue error
EXIT_VERIFY = 3  # `vtx verify` found the output does not hold what its manifest promises
EXIT_HALF_PAIR = 4  # `vtx verify ONSHORE`: intact, but its export half was never published


class VtxError(Exception):
    """Base of every error vtx reports to a user."""

    exit_code: int = EXIT_DATA

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        """The message, with the hint; data it quotes (a file name, a column name) escaped
        (`filter.printable`): one line, whoever prints or logs it."""
        text = f"{self.message} ({self.hint})" if self.hint else self.message
        return printable(text)


class CatalogueError(VtxError):
    """A catalogue file that cannot be read or does not validate.

    `problems` holds every problem found, each already naming the file and entry.
    """

    exit_code = EXIT_USAGE

    def __init__(self, problems: list[str], *, hint: str | None = None) -> None:
        self.problems = list(problems)
        if len(self.problems) == 1:
            message = self.problems[0]
        else:
            message = f"{len(self.problems)} catalogue problems: " + "; ".join(self.problems)
        super().__init__(message, hint=hint)


class InputError(VtxError):
    """Input data that cannot be read, or whose schema the split cannot handle."""

    exit_code = EXIT_DATA


class UnclassifiedFieldsError(VtxError):
    """Fields no catalogue rule classifies, under `on_unknown="fail"`."""

    exit_code = EXIT_DATA

    def __init__(self, fields: list[str], catalogue_id: str) -> None:
        self.fields = list(fields)
        shown = ", ".join(self.fields[:20])
        more = f" and {len(self.fields) - 20} more" if len(self.fields) > 20 else ""
        super().__init__(
            f"{len(self.fields)} field(s) not classified by catalogue {catalogue_id!r}: "
            f"{shown}{more}"
        )


class KeyFileError(VtxError):
    """The pseudonymisation key is missing, unreadable or too weak."""

    exit_code = EXIT_USAGE


class ScenarioError(VtxError):
    """A scenario the catalogue does not define."""

    exit_code = EXIT_USAGE


class OutputError(VtxError):
    """A target that cannot be written or published (non-empty target, disk full, ...)."""

    exit_code = EXIT_DATA


class UnverifiedOutputError(VtxError):
    """An output that does not verify, where a verified one is needed (`filter.open_export`)."""

    exit_code = EXIT_VERIFY


class RequestError(VtxError):
    """A split request that asks for what cannot be done together (protobuf output from
    Parquet input, an option the chosen engine does not have)."""

    exit_code = EXIT_USAGE


def os_reason(exc: OSError) -> str:
    """What the operating system said (``No space left on device``), or the error's text."""
    return exc.strerror or str(exc)


def read_failed(exc: OSError, path: object, what: str = "") -> InputError:
    """The `InputError` for reading `path` (a `what`: "directory", "descriptor set") that
    the operating system refused: ``PATH: cannot read[ WHAT]: REASON``."""
    return InputError(f"{path}: cannot read{' ' + what if what else ''}: {os_reason(exc)}")


def output_failed(exc: OSError, path: object, doing: str) -> OutputError:
    """The `OutputError` for `doing` ("write manifest", "publish") at `path` that the
    operating system refused: ``PATH: cannot DOING: REASON``."""
    return OutputError(f"{path}: cannot {doing}: {os_reason(exc)}")


def write_failed(exc: OSError, directory: object) -> OutputError:
    """The `OutputError` for a write into `directory` that the disk refused."""
    return OutputError(f"cannot write {directory}: {os_reason(exc)}")


def is_disk_error(exc: BaseException) -> bool:
    """Whether a writer's error (Polars' text of it) is the disk's: full, over quota,
    read-only."""
    text = str(exc).lower()
    return "no space left" in text or "disk quota" in text or "read-only file system" in text


def first_line(exc: BaseException) -> str:
    """The first line of an exception's text: library errors (Polars, pyarrow) run long."""
    return (str(exc).strip() or type(exc).__name__).splitlines()[0]
