"""A batch of messages as rows, as both protobuf readers give it: `Batch`, and what it holds.

In: the rows of a batch of messages: a Polars frame (the runtime's parse) or the compiled
decoder's entries (`DecodedRows`, rows on demand); the messages' bytes (`RawMessages`).
Out: `Batch.rows`, every row of the batch; `Batch.distinct`, an envelope column's values.
May fail: nothing.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import polars as pl


@dataclass(frozen=True)
class RawMessages:
    """The bytes of a batch's messages: spans of one buffer, with their message indexes."""

    data: np.ndarray  # uint8; may view the memory-mapped input
    starts: np.ndarray  # int64 per message
    lengths: np.ndarray  # int64 per message
    indexes: np.ndarray  # int64 per message: its index in the input

    @classmethod
    def of(cls, messages: list[tuple[int, bytes]]) -> RawMessages:
        """Messages given as (index, bytes), joined into one buffer."""
        lengths = np.fromiter((len(d) for _, d in messages), np.int64, count=len(messages))
        starts = np.zeros(len(messages), dtype=np.int64)
        np.cumsum(lengths[:-1], out=starts[1:])
        data = np.frombuffer(b"".join(d for _, d in messages), dtype=np.uint8)
        indexes = np.fromiter((i for i, _ in messages), np.int64, count=len(messages))
        return cls(data, starts, lengths, indexes)

    def __len__(self) -> int:
        return len(self.starts)

    def items(self) -> Iterator[tuple[int, bytes]]:
        """(message index, bytes) of each message, in order."""
        for index, start, length in zip(
            self.indexes.tolist(), self.starts.tolist(), self.lengths.tolist(), strict=True
        ):
            yield index, self.data[start : start + length].tobytes()


class DecodedRows(Protocol):
    """Key/value entries decoded into arrays (`kv_decoder.DecodedEntries`): rows on demand."""

    @property
    def row_schema(self) -> pl.Schema: ...

    @property
    def key_names(self) -> dict[int, str]: ...

    @property
    def member_names(self) -> list[str]: ...

    def routing(self) -> tuple[np.ndarray, np.ndarray]: ...

    def positions(self) -> np.ndarray: ...

    def strings(self) -> tuple[np.ndarray, pl.Series]: ...

    def envelopes(self) -> pl.DataFrame: ...

    def rows(
        self, select: np.ndarray | None = None, messages: pl.DataFrame | None = None, *,
        coded: bool = False, entry_columns: Mapping[str, np.ndarray] | None = None,
    ) -> pl.DataFrame: ...


@dataclass(frozen=True)
class Batch:
    """The rows of a batch of messages, and how many messages they came from.

    The compiled decoder gives `entries` instead of a frame; `rows` then builds all of them.
    """

    frame: pl.DataFrame | None
    messages: int  # key/value: envelopes without entries give no row but still count
    entries: DecodedRows | None = None
    #: The messages read, in order (bad records left out), as they came.
    raw: Callable[[], RawMessages] | None = None
    #: Key/value: one row per message read, its envelope fields (envelopes without entries
    #: give no entry row, but their VINs still need tokens).
    envelopes: pl.DataFrame | None = None

    @functools.cached_property
    def rows(self) -> pl.DataFrame:
        """Every row of the batch."""
        if self.frame is not None:
            return self.frame
        assert self.entries is not None
        return self.entries.rows()

    def distinct(self, column: str) -> pl.Series:
        """The distinct values of an envelope (or plain) column, as strings."""
        if self.entries is not None:
            values = self.entries.envelope_column(column)
        else:
            values = (self.envelopes if self.envelopes is not None else self.rows)[column]
        return values.cast(pl.String).unique()
