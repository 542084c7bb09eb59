"""The one wording of an operating-system refusal (`filter.errors`), used by every layer."""

from __future__ import annotations

import errno

from filter.errors import EXIT_DATA, InputError, OutputError, output_failed, read_failed


def test_a_refused_read_names_the_file_what_it_is_and_the_reason() -> None:
    denied = PermissionError(errno.EACCES, "Permission denied")
    error = read_failed(denied, "/in/batch.parquet")
    assert isinstance(error, InputError) and error.exit_code == EXIT_DATA
    assert str(error) == "/in/batch.parquet: cannot read: Permission denied"
    assert str(read_failed(denied, "/in", "directory")) == (
        "/in: cannot read directory: Permission denied")


def test_a_refused_write_names_the_place_and_what_vtx_was_doing() -> None:
    full = OSError(errno.ENOSPC, "No space left on device")
    error = output_failed(full, "/out/export", "publish")
    assert isinstance(error, OutputError)
    assert str(error) == "/out/export: cannot publish: No space left on device"
    # An error without the system's words keeps its own text.
    assert str(output_failed(OSError("gone"), "/out", "write manifest")) == (
        "/out: cannot write manifest: gone")


def test_a_file_name_in_the_message_is_printed_as_data() -> None:
    error = read_failed(FileNotFoundError(errno.ENOENT, "No such file or directory"),
                        "a\nvtx: error: forged")
    assert "\n" not in str(error) and "a\\nvtx: error: forged" in str(error)
