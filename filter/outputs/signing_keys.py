"""Ed25519 key files for signed manifests: make a key pair (`vtx keygen`), load either key,
and refuse a signing key that is the token key.

In: key file paths (the signing key's also from `VTX_SIGNING_KEY_FILE`), and for
`resolve_signing_key` the token key a split uses.
Out: `generate` writes a new key pair and returns its key id (`signing.key_id`);
`load_signing_key`, `load_public_key` and `resolve_signing_key` return loaded keys, for
`filter.outputs.signing` to sign and check manifests with.
May fail: `KeyFileError` (exit 2) for a key file that cannot be read or is not an Ed25519 key
of the kind asked for, or a signing key that is the token key; `OutputError` for a key file
that cannot be written.

**Key files** (`generate`, ``vtx keygen``): the signing key as PEM PKCS8, unencrypted, mode
0600; the public key as PEM SubjectPublicKeyInfo, mode 0644. Neither ever overwrites a file or
writes through a symbolic link.

`cryptography` is imported when a key is used, not with this module: an unsigned split loads
nothing of it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from filter.errors import KeyFileError, OutputError, os_reason, output_failed
from filter.outputs.signing import key_id
from filter.secret_files import warn_if_exposed

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

    #: What a split takes as `signing_key`: a loaded key, or the path of its PEM file.
    SigningKey = Ed25519PrivateKey | str | Path

#: The file `vtx split` takes its signing key from when `--signing-key` is not given.
SIGNING_KEY_ENV = "VTX_SIGNING_KEY_FILE"
#: An Ed25519 PEM file is about 120 bytes; other keys' files (RSA 4096: 3.3 kB) fit too, so
#: that they get their own message.
_MAX_KEY_FILE = 64 * 1024
_PRIVATE_MODE = 0o600
_PUBLIC_MODE = 0o644
_MAKE_ONE = "make one with `vtx keygen`"


def load_signing_key(path: str | Path | None = None) -> Ed25519PrivateKey | None:
    """The Ed25519 signing key in `path` (PEM PKCS8, unencrypted, as `vtx keygen` writes),
    else in the file named by `VTX_SIGNING_KEY_FILE`; None when neither names one (outputs
    are then unsigned). `KeyFileError` for a file that is not such a key."""
    if path is None:
        path = os.environ.get(SIGNING_KEY_ENV) or None
        if path is None:
            return None
    data = _read_key_file(path, "signing key")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    if b"PUBLIC KEY-----" in data:
        raise KeyFileError(
            f"{path}: a public key, not a signing key: give the private key "
            "`vtx keygen` wrote beside it"
        )
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:  # cryptography's word for "encrypted, and no password given"
        raise KeyFileError(
            f"{path}: an encrypted private key; vtx reads an unencrypted one "
            f"(kept with file mode 0600; {_MAKE_ONE})"
        ) from None
    except Exception:  # ValueError, UnsupportedAlgorithm: whatever it is, it is not our key
        raise KeyFileError(
            f"{path}: not an Ed25519 private key in PEM (PKCS8); {_MAKE_ONE}"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path}: {_kind(key)} private key, not Ed25519; {_MAKE_ONE}")
    warn_if_exposed(path, "signing key")  # a key it is: whether others may read it
    return key


def load_public_key(path: str | Path) -> Ed25519PublicKey:
    """The Ed25519 public key in `path` (PEM SubjectPublicKeyInfo, as `vtx keygen` writes);
    `KeyFileError` for a file that is not one (a private key included: a receiver never needs
    the signing key)."""
    data = _read_key_file(path, "public key")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if b"PRIVATE KEY-----" in data:
        raise KeyFileError(
            f"{path}: a private key; give the public key `vtx keygen` wrote "
            "beside it (the signing key never leaves the egress point)"
        )
    try:
        key = serialization.load_pem_public_key(data)
    except Exception:  # ValueError, UnsupportedAlgorithm: not a public key we read
        raise KeyFileError(
            f"{path}: not an Ed25519 public key in PEM (SubjectPublicKeyInfo), "
            "as `vtx keygen` writes"
        ) from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"{path}: {_kind(key)} public key, not Ed25519")
    return key


def resolve_signing_key(
    signing_key: SigningKey | None, token_key: bytes
) -> Ed25519PrivateKey | None:
    """The signing key a split was given (a key, a file, or None: unsigned), refused when it
    is the token key: one secret for two purposes would make a leak of either cost both."""
    if signing_key is None:
        return None
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    if isinstance(signing_key, str | Path):
        where = str(signing_key)
        if _read_key_file(signing_key, "signing key").strip() == token_key:
            raise _token_key_refused(where)
        key = load_signing_key(signing_key)
        assert key is not None
    elif isinstance(signing_key, Ed25519PrivateKey):
        where, key = "signing key", signing_key
    else:
        raise TypeError(
            f"signing_key must be an Ed25519PrivateKey or a path, not {type(signing_key).__name__}"
        )
    if _is_token_key(key, token_key):
        raise _token_key_refused(where)
    return key


def _is_token_key(key: Ed25519PrivateKey, token_key: bytes) -> bool:
    """Whether the token key's bytes are this signing key: raw, in hex, or as a key file."""
    from cryptography.hazmat.primitives import serialization

    raw = key.private_bytes_raw()
    if token_key in (raw, raw.hex().encode("ascii")):
        return True
    try:  # a key file of the same key, in whatever layout cryptography reads
        other = serialization.load_pem_private_key(token_key, password=None)
    except Exception:  # not a key at all: the ordinary case
        return False
    return getattr(other, "private_bytes_raw", lambda: None)() == raw


def _token_key_refused(where: str) -> KeyFileError:
    return KeyFileError(
        f"{where}: the signing key is the token key (--key-file, VTX_KEY_FILE); "
        f"sign with a key of its own ({_MAKE_ONE})"
    )


def _read_key_file(path: str | Path, what: str) -> bytes:
    """A key file's bytes; a file larger than any key file (a device, a data file given by
    mistake) is refused after reading `_MAX_KEY_FILE` bytes, not read to its end."""
    try:
        with Path(path).open("rb") as fh:
            data = fh.read(_MAX_KEY_FILE + 1)
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read {what}: {os_reason(exc)}") from None
    if len(data) > _MAX_KEY_FILE:
        raise KeyFileError(f"{path}: larger than {_MAX_KEY_FILE} bytes: not a {what} file")
    return data


def _kind(key: object) -> str:
    """'an RSA', 'an EC', 'a DSA', 'an Ed448', ...: what a loaded key is, for a message."""
    name = type(key).__name__.removeprefix("_")
    for suffix in ("PrivateKey", "PublicKey"):
        name = name.removesuffix(suffix)
    name = {"EllipticCurve": "EC"}.get(name, name) or "another"
    return f"{'an' if name[0] in 'AEFHILMNORSX' else 'a'} {name}"


def generate(signing_key_path: str | Path, public_key_path: str | Path) -> str:
    """Make a new Ed25519 key pair: the signing key at `signing_key_path` (PEM PKCS8,
    unencrypted, mode 0600), the public key at `public_key_path` (PEM SubjectPublicKeyInfo,
    mode 0644). Returns the key id.

    Neither file may exist (a symbolic link counts, dangling or not): `OutputError`, and
    nothing is written. Each is created with ``O_CREAT | O_EXCL | O_NOFOLLOW``, so a file or
    link that appears meanwhile is not written through either.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private_path, public_path = Path(signing_key_path), Path(public_key_path)
    if private_path.absolute() == public_path.absolute():
        raise OutputError(f"{private_path}: the signing key and the public key need two files")
    for path in (private_path, public_path):
        if os.path.lexists(path):
            raise _exists(path)
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _create(private_path, private_pem, _PRIVATE_MODE)
    try:
        _create(public_path, public_pem, _PUBLIC_MODE)
    except BaseException:
        private_path.unlink(missing_ok=True)  # ours: made a moment ago with O_EXCL
        raise
    return key_id(key.public_key())


def _create(path: Path, content: bytes, mode: int) -> None:
    """Write a new file `path` with exactly `mode`; never an existing file or a link."""
    flags = (
        os.O_WRONLY
        | os.O_CREAT
        | os.O_EXCL
        | getattr(os, "O_NOFOLLOW", 0)
        | getattr(os, "O_CLOEXEC", 0)
    )
    try:
        fd = os.open(path, flags, mode)
    except FileExistsError:
        raise _exists(path) from None
    except OSError as exc:
        raise output_failed(exc, path, "create key file") from None
    try:
        os.fchmod(fd, mode)  # the umask may have taken bits the mode needs (0644 for a .pub)
        view = memoryview(content)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except OSError as exc:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise output_failed(exc, path, "write key file") from None
    os.close(fd)


def _exists(path: Path) -> OutputError:
    what = "is a symbolic link" if path.is_symlink() else "exists"
    return OutputError(
        f"{path}: {what}; vtx keygen never overwrites a file or writes through "
        "a link (remove it, or choose another path)"
    )


__all__ = [
    "SIGNING_KEY_ENV",
    "generate",
    "load_public_key",
    "load_signing_key",
    "resolve_signing_key",
]
