"""Ed25519 signatures over manifests: a receiver checks an export with a public key only.

In: an output directory (its manifest, `filter.outputs.manifest`) and a signing key
(`vtx keygen`), or a public key to check with; key files are made and loaded by
`filter.outputs.signing_keys`.
Out: `sign_manifest` stores the signature with the manifest; `check_signature` lists what
is wrong with a directory's signature. The signing key is not the token key (`--key-file`): it
is refused when it is (`signing_keys.resolve_signing_key`).
May fail: `OutputError` for a manifest that cannot be read to sign it or a signature file that
cannot be written.

Format, version 1 (``vtx-manifest-signature-v1``)
-------------------------------------------------

**What is signed.** The manifest's whole JSON text (`StoredManifest.text`). It lists every
part file with its SHA-256 (which `vtx verify` checks), so the signature covers the data too.
Both outputs of a run are signed, each its own manifest.

**Canonical form.** The signature is over the manifest's *content*, not its bytes:

1. The file's bytes are decoded as UTF-8 (strictly: invalid UTF-8 or a byte-order mark is
   refused) and parsed as JSON (RFC 8259). A manifest is refused when an object in it holds a
   name twice, or when it uses ``NaN``, ``Infinity`` or ``-Infinity``: another reader could
   take it for other content than the one signed.
2. The parsed value is written again as Python's
   ``json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
   allow_nan=False)`` writes it: object names sorted by Unicode code point; no whitespace
   between tokens; strings with ``"`` and ``\\`` escaped as ``\\"`` and ``\\\\``, the control
   characters U+0008, U+0009, U+000A, U+000C and U+000D as ``\\b \\t \\n \\f \\r``, every other
   character outside U+0020..U+007E as ``\\uXXXX`` with lower-case hex (U+007F too), and one
   beyond U+FFFF as the UTF-16 surrogate pair of two of those; integers in decimal; other
   numbers as Python's shortest round-trip ``repr`` of the float (``1.0``, ``1e+16``);
   ``true``, ``false``, ``null``. No Unicode normalisation. The result is ASCII. (vtx's
   manifests hold no fractional numbers.)
3. The message signed is the ASCII bytes ``vtx-manifest-signature-v1`` and a line feed
   (``DOMAIN``), followed by the canonical text. The prefix keeps a signature over a manifest
   from ever being valid for anything else signed with the same key.

So two manifests that parse to the same JSON value have the same signature: whitespace, the
order of names and the choice of escapes are not signed; any change of a name or a value
(``rows`` of 120 to 120.0 included) is.

**Where the signature lives.** In the footer of ``_manifest.parquet``, under the key
``vtx.manifest.signature``, beside the manifest's text (``vtx.manifest``); outputs of schema
versions 1 and 2 keep it in ``_manifest.sig`` beside ``_manifest.json``. Exactly the bytes vtx
writes: this JSON object, two-space indented in this order, and a line feed::

    {
      "format": "vtx-manifest-signature-v1",
      "algorithm": "ed25519",
      "key_id": "<16 lower-case hex characters>",
      "signature": "<the 64-byte Ed25519 signature, base64 with padding: 88 characters>"
    }

A record of its own, not a field in the manifest, so that the manifest's text stays as it is
(for whoever hashed or parsed it before) and every field of the manifest is signed: there is
no field to leave out of the canonical form. `vtx verify` allows this one record besides the
manifest, and refuses it unless it is exactly as above (it could otherwise carry anything out
of the country beside a clean export).

**Key id.** The first 16 hex characters of the SHA-256 of the 32-byte raw public key. It only
names keys in messages ("signed by key X, not by the given key Y"); it is not trusted: a
signature is always checked with the public key given.

**Key files**: how they are laid out and written is in `filter.outputs.signing_keys`.

What a valid signature proves: the manifest, and so every part it lists, is as the holder of
the signing key published it. Not that it is recent: an older output signed with the same key
verifies too; its `run_id` and `created_at` are signed, so compare them.

`cryptography` is imported when a key is used, not with this module: an unsigned split loads
nothing of it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow.parquet as pq

from filter.errors import OutputError, first_line, output_failed
from filter.outputs.json_fields import JsonValue
from filter.outputs.manifest import (
    LEGACY_SIGNATURE_NAME,
    MANIFEST_NAME,
    StoredManifest,
    stored_manifest,
    write_manifest_text,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

SIGNATURE_FORMAT = "vtx-manifest-signature-v1"
DOMAIN = (SIGNATURE_FORMAT + "\n").encode("ascii")
ALGORITHM = "ed25519"
KEY_ID_HEX_CHARS = 16
_SIGNATURE_BYTES = 64
#: A signature file vtx writes is under 250 bytes; anything much larger is not one.
_MAX_SIGNATURE_FILE = 1024


# --- the signed message ---------------------------------------------------------------------


def canonical_manifest(data: bytes) -> bytes:
    """The canonical form of a manifest's bytes (see the module doc); `ValueError` saying why
    there is none (not UTF-8, not JSON, a repeated name, NaN or Infinity)."""
    text = data.decode("utf-8")  # strict: UnicodeDecodeError is a ValueError
    try:
        value = json.loads(text, object_pairs_hook=_unique_names, parse_constant=_no_constant)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


def _unique_names(pairs: list[tuple[str, JsonValue]]) -> dict[str, JsonValue]:
    names = [name for name, _ in pairs]
    if len(set(names)) != len(names):
        repeated = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"an object holds the name {repeated[0]!r} twice")
    return dict(pairs)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def signed_message(manifest: bytes) -> bytes:
    """What is signed for a manifest's bytes: `DOMAIN` and the canonical form."""
    return DOMAIN + canonical_manifest(manifest)


def key_id(public_key: Ed25519PublicKey) -> str:
    """The key id of a public key: SHA-256 of its raw 32 bytes, hex, first 16 characters."""
    from cryptography.hazmat.primitives import serialization

    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:KEY_ID_HEX_CHARS]


def _signature_file(key: str, signature: bytes) -> bytes:
    """The bytes of a signature record, exactly as the module doc gives them."""
    record = {
        "format": SIGNATURE_FORMAT,
        "algorithm": ALGORITHM,
        "key_id": key,
        "signature": base64.b64encode(signature).decode("ascii"),
    }
    return (json.dumps(record, indent=2) + "\n").encode("ascii")


# --- signing and checking -------------------------------------------------------------------


def sign_manifest(directory: str | Path, private_key: Ed25519PrivateKey) -> Path:
    """Sign the manifest in `directory`, as it is stored, and store the signature with it
    (in `_manifest.parquet`'s footer, beside the manifest's text).

    Splits call this in staging, before publishing. `OutputError` if the manifest cannot be
    read or the signature written.
    """
    folder = Path(directory)
    path = folder / MANIFEST_NAME
    try:
        stored = stored_manifest(folder)
        message = signed_message(stored.text)
        schema = pq.read_schema(stored.path)
    except OSError as exc:
        raise output_failed(exc, path, "read manifest to sign it") from None
    except ValueError as exc:  # vtx wrote it a moment ago: a bug if this happens
        raise OutputError(f"{path}: cannot be signed: {exc}") from None
    content = _signature_file(key_id(private_key.public_key()), private_key.sign(message))
    return write_manifest_text(folder, stored.text, schema, content)


def check_signature(
    directory: str | Path,
    public_key: Ed25519PublicKey | None = None,
    *,
    required: bool = False,
) -> list[str]:
    """What is wrong with the signature of the output in `directory`; empty when nothing is.

    - A signature that is there must be exactly what vtx writes, whatever else is asked.
    - With `public_key`: it must be there, name that key and be its valid signature of the
      manifest's canonical form; so any change to the manifest fails.
    - With `required` and no key: it must be there (well-formed; who signed is not checked).

    Each problem is one line naming the file, for `vtx: verify: <dir>: <problem>`.
    """
    try:
        stored = stored_manifest(directory)
    except (OSError, ValueError) as exc:
        return [f"the manifest cannot be read to check its signature: {first_line(exc)}"]
    where = _signature_place(stored)
    content = stored.signature
    if content is None:
        if public_key is not None or required:
            need = "--public-key" if public_key is not None else "--require-signature"
            return [
                f"{where} is missing: the output is not signed ({need} needs a "
                "signed output)"
            ]
        return []
    parsed = _parse_signature_file(content)
    if isinstance(parsed, str):
        return [f"{where}: not a vtx signature: {parsed}"]
    recorded_key, signature = parsed
    if public_key is None:
        return []
    expected = key_id(public_key)
    if recorded_key != expected:
        return [
            f"{where}: signed by key {recorded_key}, not by the given public key "
            f"{expected}"
        ]
    try:
        message = signed_message(stored.text)
    except ValueError as exc:
        return [f"{stored.path.name} has no canonical form to check its signature against: "
                f"{exc}"]
    from cryptography.exceptions import InvalidSignature

    try:
        public_key.verify(signature, message)
    except InvalidSignature:
        return [
            f"{where}: the signature of key {expected} does not match the manifest in "
            f"{stored.path.name}: the manifest changed since it was signed"
        ]
    return []


def signed_by(directory: str | Path) -> str | None:
    """The key id the signature in `directory` names, if it is a well-formed one (which says
    who claims to have signed, not that they did: `check_signature` checks)."""
    try:
        content = stored_manifest(directory).signature
    except (OSError, ValueError):
        return None
    if content is None:
        return None
    parsed = _parse_signature_file(content)
    return None if isinstance(parsed, str) else parsed[0]


def _signature_place(stored: StoredManifest) -> str:
    """Where the signature of `stored` is kept, for messages."""
    if stored.path.name == MANIFEST_NAME:
        return f"{MANIFEST_NAME}'s signature"
    return LEGACY_SIGNATURE_NAME


def _parse_signature_file(content: bytes) -> tuple[str, bytes] | str:
    """(key id, signature) of a signature file's bytes, or what is wrong with them."""
    if len(content) > _MAX_SIGNATURE_FILE:
        return f"larger than {_MAX_SIGNATURE_FILE} bytes"
    try:
        record = json.loads(content.decode("ascii"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return "not a JSON object in ASCII"
    if not isinstance(record, Mapping) or set(record) != {
        "format",
        "algorithm",
        "key_id",
        "signature",
    }:
        return "needs exactly format, algorithm, key_id and signature"
    if record["format"] != SIGNATURE_FORMAT:
        return f"format is {record['format']!r}; this vtx reads {SIGNATURE_FORMAT!r}"
    if record["algorithm"] != ALGORITHM:
        return f"algorithm is {record['algorithm']!r}, not {ALGORITHM!r}"
    recorded_key = record["key_id"]
    if not (
        isinstance(recorded_key, str)
        and len(recorded_key) == KEY_ID_HEX_CHARS
        and all(c in "0123456789abcdef" for c in recorded_key)
    ):
        return f"key_id is not {KEY_ID_HEX_CHARS} lower-case hex characters"
    try:
        signature = base64.b64decode(str(record["signature"]).encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        signature = b""
    if not isinstance(record["signature"], str) or len(signature) != _SIGNATURE_BYTES:
        return f"signature is not {_SIGNATURE_BYTES} bytes in base64"
    if _signature_file(recorded_key, signature) != content:
        return "not laid out as vtx writes it"  # nothing may ride along in its whitespace
    return recorded_key, signature


__all__ = [
    "DOMAIN",
    "SIGNATURE_FORMAT",
    "canonical_manifest",
    "check_signature",
    "key_id",
    "sign_manifest",
    "signed_by",
    "signed_message",
]
