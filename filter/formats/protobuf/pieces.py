"""How many protobuf messages one piece of the memory budget holds, and the refusal of a
message that does not fit in one.

In: the run's `MemoryBudget`, and what framing measured of the next messages before anything
of them is decoded: their wire bytes and, for key/value envelopes, their entries (counted from
the top-level tags, `wire.count_field`).
Out: `Pieces`: the memory a batch of such messages needs, by the path that decodes it (the
compiled key/value decoder, or the protobuf runtime), so that readers cut their batches by
bytes and entries as well as by messages; `Pieces.check_message` for one message alone.
May fail: `MemoryBudgetExceeded` (exit 1, one line): a message that alone needs more than a
piece, naming the file, the message index and byte offset, its size and entries.

Why entries: a key/value message's memory grows with its entries, not its bytes. An empty
entry is 2 bytes on the wire and some 100 bytes decoded and split, so one 64 MiB message of
them (33.5M entries) took 2.9 GB; counted before decoding, such a message is refused, or
batched alone, before anything of it is allocated.

The costs are measured (a split of the benchmark stream, 20 entries and 296 bytes a message,
at 10,000 and 50,000 messages a batch: 322 bytes of peak RSS per entry of a batch, for the
three batches in flight, so about 107 per entry of one; one message of 2M, 4M and 8M empty
entries, decoded and split alone: 63 to 104 bytes per entry), rounded up. The runtime's parse
builds Python objects per entry and per field: it is costed apart (`PLAIN_*`; measured on
its own: 722 bytes an entry for one message of 500,000 empty entries, 950 for the benchmark's
messages, 4.9 KB a message for `vtx.telemetry.v1.Record`, whose rows have 48 columns, 64 wire
bytes each).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from filter.memory_budget import MemoryBudget, format_size

#: Compiled key/value decoder and split, per piece: bytes per message (its envelope's
#: arrays and row), per entry, and per wire byte (the messages' pages, the output's copy).
MESSAGE_BYTES, ENTRY_BYTES, WIRE_FACTOR = 256, 128, 1
#: The same for the protobuf runtime's parse (plain messages, topic dumps, what the compiled
#: decoder hands over): a Python object per field and a dict per row; and per message, per
#: column of a plain row (a struct or list counts, and each field inside it), set or not.
PLAIN_MESSAGE_BYTES, PLAIN_ENTRY_BYTES, PLAIN_WIRE_FACTOR = 1024, 1024, 16
PLAIN_FIELD_BYTES = 128


@dataclass(frozen=True)
class Pieces:
    """What one piece of `budget` holds of protobuf messages."""

    budget: MemoryBudget

    @classmethod
    def of(cls, budget: MemoryBudget | None) -> Pieces:
        """The pieces of `budget`; None: the default budget (`MemoryBudget.of`)."""
        return cls(budget if budget is not None else MemoryBudget.of(None))

    @property
    def limit(self) -> int:
        """The bytes one batch of messages may need (`MemoryBudget.piece_limit`)."""
        return self.budget.piece_limit

    @property
    def costs(self) -> np.ndarray:
        """The compiled decoder's costs, as the framing pass takes them (`kv_passes`)."""
        return np.array([MESSAGE_BYTES, ENTRY_BYTES, WIRE_FACTOR], dtype=np.int64)

    @staticmethod
    def need(messages: int, entries: int, wire: int) -> int:
        """Bytes a batch of `messages` (`entries`, `wire` bytes) needs, compiled."""
        return messages * MESSAGE_BYTES + entries * ENTRY_BYTES + wire * WIRE_FACTOR

    @staticmethod
    def plain_need(messages: int, entries: int, wire: int, fields: int = 0) -> int:
        """The same through the protobuf runtime, for rows of `fields` columns (plain
        messages: `message_rows.row_fields`; key/value: 0, the entries count instead)."""
        return (messages * (PLAIN_MESSAGE_BYTES + fields * PLAIN_FIELD_BYTES)
                + entries * PLAIN_ENTRY_BYTES + wire * PLAIN_WIRE_FACTOR)

    def plain_bound(self, files: int, wire: int, fields: int) -> int:
        """The most `files` messages of `wire` bytes in all can need through the runtime,
        whatever they hold (an entry takes 2 bytes at least): for batches cut before
        anything of them is read (`engines.ray_protobuf`: a topic dump's runs of files)."""
        return self.plain_need(files, wire // 2 if not fields else 0, wire, fields)

    def check_message(
        self, source: Path, index: int, offset: int, entries: int, wire: int, need: int
    ) -> None:
        """Refuse (`MemoryBudgetExceeded`) message `index` of `source`, at byte `offset`, of
        `wire` bytes and `entries` entries, if its `need` does not fit in one piece."""
        held = f" and {entries:,} entries" if entries else ""
        self.budget.check(need, str(source), f"message {index} at byte {offset}",
                          f"a message of {format_size(wire)}{held}")
