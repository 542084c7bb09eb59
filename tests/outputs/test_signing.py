"""Signed manifests (filter/outputs/signing.py, filter/outputs/signing_keys.py, `vtx keygen`,
`vtx split --signing-key`, `vtx verify --public-key`)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from filter import KeyFileError, split
from filter.audit.verify import verify_output
from filter.cli import vtx
from filter.engines.run import split_protobuf
from filter.errors import OutputError
from filter.outputs.signing import DOMAIN, key_id
from filter.outputs.signing_keys import load_public_key, load_signing_key
from tests import manifests
from tests.conftest import KEY, MINI_CATALOGUE
from tests.engines.test_protobuf_split import TEST_SET
from tests.formats.protobuf.test_readers_protobuf import delimited, make_payload


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def keys(tmp_path: Path, runner: CliRunner) -> tuple[Path, Path]:
    """A key pair made by `vtx keygen --out`: (signing key, public key)."""
    made = runner.invoke(vtx, ["keygen", "--out", str(tmp_path / "signing")])
    assert made.exit_code == 0, made.output
    return tmp_path / "signing.key", tmp_path / "signing.pub"


@pytest.fixture
def signed(batch_file: Path, key_file: Path, keys, tmp_path: Path, runner) -> tuple[Path, Path]:
    """A signed after-sales split of the sample batch through the CLI: (export, onshore)."""
    args = [a for a in split_args(batch_file, tmp_path, key_file) if a != "--quiet"]
    result = runner.invoke(vtx, [*args, "--signing-key", str(keys[0])])
    assert result.exit_code == 0, result.output
    assert f"signed:  both manifests, key {key_id(load_public_key(keys[1]))}" in result.stdout
    return tmp_path / "export", tmp_path / "onshore"


def split_args(batch_file: Path, root: Path, key_file: Path) -> list[str]:
    return [
        "split",
        str(batch_file),
        "--export",
        str(root / "export"),
        "--onshore",
        str(root / "onshore"),
        "--scenario",
        "after-sales",
        "--catalogue",
        str(MINI_CATALOGUE),
        "--key-file",
        str(key_file),
        "--quiet",
    ]


def verify(runner: CliRunner, export: Path, onshore: Path | None, *options: str) -> Result:
    args = ["verify", str(export), "--catalogue", str(MINI_CATALOGUE), *options]
    return runner.invoke(vtx, args + (["--onshore", str(onshore)] if onshore else []))


def verify_lines(result: Result) -> list[str]:
    """The failure lines of a `vtx verify` that failed (exit 3), checked for their form."""
    assert result.exit_code == 3, result.output
    lines = result.stderr.splitlines()
    assert lines and all(line.startswith("vtx: verify: ") for line in lines)
    return lines


def assert_one_line_error(result: Result, code: int, fragment: str) -> None:
    assert result.exit_code == code, result.output
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("vtx: error: ")
    assert fragment in result.stderr, result.stderr
    assert "Traceback" not in result.output


def assert_nothing_published(root: Path) -> None:
    assert not (root / "export").exists() and not (root / "onshore").exists()


#: Where an output keeps its signature, as verify's messages name it.
SIGNATURE = "_manifest.parquet's signature"


def edit_manifest(directory: Path, change) -> None:
    manifests.edit(directory, change)


# --- vtx keygen -----------------------------------------------------------------------------


def test_keygen_writes_the_pair_with_its_modes(tmp_path: Path, runner) -> None:
    saved = os.umask(0o077)  # a strict umask must not take the public key's read bits
    try:
        made = runner.invoke(
            vtx,
            [
                "keygen",
                "--signing-key",
                str(tmp_path / "a.pem"),
                "--public-key",
                str(tmp_path / "a.pub.pem"),
            ],
        )
    finally:
        os.umask(saved)
    assert made.exit_code == 0, made.output
    private, public = tmp_path / "a.pem", tmp_path / "a.pub.pem"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert stat.S_IMODE(public.stat().st_mode) == 0o644
    assert private.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS8, unencrypted
    assert public.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")  # SubjectPublicKeyInfo
    signing_key, public_key = load_signing_key(private), load_public_key(public)
    assert isinstance(signing_key, ed25519.Ed25519PrivateKey)
    raw = serialization.Encoding.Raw, serialization.PublicFormat.Raw
    assert signing_key.public_key().public_bytes(*raw) == public_key.public_bytes(*raw)
    assert made.stdout.splitlines()[0] == f"key id {key_id(public_key)}"
    assert len(key_id(public_key)) == 16


def test_keygen_never_overwrites_nor_writes_through_a_link(tmp_path: Path, runner) -> None:
    (tmp_path / "old.key").write_text("precious")
    taken = runner.invoke(vtx, ["keygen", "--out", str(tmp_path / "old")])
    assert_one_line_error(taken, 1, "exists; vtx keygen never overwrites")
    assert (tmp_path / "old.key").read_text() == "precious"
    assert not (tmp_path / "old.pub").exists()
    # A link at the path, dangling or to a file, is not followed: nothing is written through it.
    (tmp_path / "linked.key").symlink_to(tmp_path / "elsewhere")
    dangling = runner.invoke(vtx, ["keygen", "--out", str(tmp_path / "linked")])
    assert_one_line_error(dangling, 1, "is a symbolic link")
    assert not (tmp_path / "elsewhere").exists() and not (tmp_path / "linked.pub").exists()
    (tmp_path / "victim").write_text("keep")
    (tmp_path / "to-file.pub").symlink_to(tmp_path / "victim")
    through = runner.invoke(vtx, ["keygen", "--out", str(tmp_path / "to-file")])
    assert_one_line_error(through, 1, "is a symbolic link")
    assert (tmp_path / "victim").read_text() == "keep"
    assert not (tmp_path / "to-file.key").exists()  # no signing key left without its public key
    usage = runner.invoke(vtx, ["keygen", "--out", str(tmp_path / "x"), "--public-key", "p"])
    assert_one_line_error(usage, 2, "give --out PREFIX, or --signing-key FILE and --public-key")
    assert_one_line_error(runner.invoke(vtx, ["keygen"]), 2, "give --out PREFIX")


def test_keygen_creates_each_file_exclusively(tmp_path: Path, monkeypatch) -> None:
    # The check before writing could race with another process: the file itself is opened
    # with O_EXCL and O_NOFOLLOW, so a link that appears in between is not written through.
    from filter.outputs import signing_keys

    monkeypatch.setattr(signing_keys.os.path, "lexists", lambda path: False)
    (tmp_path / "late.pub").symlink_to(tmp_path / "target")
    with pytest.raises(OutputError, match="is a symbolic link"):
        signing_keys.generate(tmp_path / "late.key", tmp_path / "late.pub")
    assert not (tmp_path / "target").exists() and not (tmp_path / "late.key").exists()


# --- signed splits verify -------------------------------------------------------------------


def test_a_signed_parquet_split_verifies(signed, keys, runner) -> None:
    export, onshore = signed
    for side in signed:
        record = json.loads(manifests.signature(side))
        assert record["algorithm"] == "ed25519"
        assert record["key_id"] == key_id(load_public_key(keys[1]))
    ok = verify(runner, export, onshore, "--public-key", str(keys[1]))
    assert ok.exit_code == 0, ok.output
    assert ok.stdout.endswith(f"; signed by key {key_id(load_public_key(keys[1]))}\n")
    assert verify(runner, export, onshore, "--require-signature").exit_code == 0
    assert verify(runner, export, None).exit_code == 0  # no key asked for: the signature is allowed


def test_the_signature_is_the_documented_one(signed, keys) -> None:
    # What a receiver can check with any Ed25519 library, from the format in the module doc.
    public_key = load_public_key(keys[1])
    for side in signed:
        content = json.loads(manifests.manifest_text(side))
        canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        record = json.loads(manifests.signature(side))
        public_key.verify(
            base64.b64decode(record["signature"]),
            b"vtx-manifest-signature-v1\n" + canonical.encode("ascii"),
        )
        assert DOMAIN == b"vtx-manifest-signature-v1\n"


def test_a_signed_protobuf_split_verifies(tmp_path: Path, key_file, keys, runner) -> None:
    from filter.formats.protobuf.descriptors import load_schema

    payload = load_schema(TEST_SET, "testfleet.Payload")
    stream = tmp_path / "kv.bin"
    stream.write_bytes(delimited(make_payload(payload), make_payload(payload, "LSV2")))
    for output_format in ("parquet", "protobuf"):
        root = tmp_path / output_format
        done = runner.invoke(
            vtx,
            [
                "split",
                str(stream),
                "--export",
                str(root / "e"),
                "--onshore",
                str(root / "o"),
                "--scenario",
                "after-sales",
                "--key-file",
                str(key_file),
                "--descriptor-set",
                str(TEST_SET),
                "--message",
                "testfleet.Payload",
                "--output-format",
                output_format,
                "--quiet",
            ],
            env={"VTX_SIGNING_KEY_FILE": str(keys[0])},  # the signing key from the env
        )
        assert done.exit_code == 0, done.output
        ok = runner.invoke(
            vtx,
            ["verify", str(root / "e"), "--onshore", str(root / "o"), "--public-key", str(keys[1])],
        )
        assert ok.exit_code == 0, ok.output
    # The Python API takes a loaded key as well as a path.
    signing_key = load_signing_key(keys[0])
    split_protobuf(
        stream,
        tmp_path / "api" / "e",
        tmp_path / "api" / "o",
        "after-sales",
        key=KEY,
        message="testfleet.Payload",
        descriptor_set=TEST_SET,
        signing_key=signing_key,
    )
    report = verify_output(tmp_path / "api" / "e", tmp_path / "api" / "o", public_key=keys[1])
    assert report.ok, report.failures


def test_an_unsigned_split_has_no_signature(batch_file, key_file, tmp_path, runner) -> None:
    done = runner.invoke(
        vtx, split_args(batch_file, tmp_path, key_file), env={"VTX_SIGNING_KEY_FILE": ""}
    )
    assert done.exit_code == 0, done.output
    assert manifests.signature(tmp_path / "export") is None
    assert verify(runner, tmp_path / "export", tmp_path / "onshore").exit_code == 0


# --- what fails -----------------------------------------------------------------------------


def test_a_consistent_manifest_edit_fails_only_the_signature(signed, keys, runner) -> None:
    export, onshore = signed
    # Relabel an exported column's class, and its class count with it: nothing else verify
    # checks can tell (the parts, hashes and catalogue are untouched) ...

    def relabel(manifest) -> None:
        column = next(c for c in manifest["columns"] if c["class"] == "after_sales")
        column["class"] = "used_car"
        manifest["class_counts"]["after_sales"] -= 1
        manifest["class_counts"]["used_car"] = manifest["class_counts"].get("used_car", 0) + 1

    edit_manifest(export, relabel)
    assert verify(runner, export, onshore).exit_code == 0
    # ... but the signature can.
    lines = verify_lines(verify(runner, export, onshore, "--public-key", str(keys[1])))
    assert lines == [
        f"vtx: verify: {export}: {SIGNATURE}: the signature of key "
        f"{key_id(load_public_key(keys[1]))} does not match the manifest in "
        "_manifest.parquet: the manifest changed since it was signed"
    ]


def test_the_signature_covers_content_not_layout(signed, keys, runner) -> None:
    export, onshore = signed
    # Re-indented, names in another order: the same content, still valid.
    manifest = json.loads(manifests.manifest_text(export))
    manifests.write_text(export, json.dumps(dict(reversed(manifest.items()))))
    assert verify(runner, export, onshore, "--public-key", str(keys[1])).exit_code == 0
    # A number written as a float is another value.
    edit_manifest(export, lambda m: m.update(rows=float(m["rows"])))
    assert verify(runner, export, None, "--public-key", str(keys[1])).exit_code == 3
    # A name given twice could be read either way by other parsers: refused.
    text = manifests.manifest_text(onshore)
    manifests.write_text(
        onshore, text.replace('{\n  "schema_version": 3,', '{"rows": 0, "schema_version": 3,', 1)
    )
    lines = verify_lines(verify(runner, onshore, None, "--public-key", str(keys[1])))
    assert any("an object holds the name 'rows' twice" in line for line in lines)


def test_another_key_fails_naming_both_key_ids(signed, tmp_path, runner) -> None:
    export, onshore = signed
    runner.invoke(vtx, ["keygen", "--out", str(tmp_path / "other")])
    other = tmp_path / "other.pub"
    signer = json.loads(manifests.signature(export))["key_id"]
    lines = verify_lines(verify(runner, export, onshore, "--public-key", str(other)))
    given = key_id(load_public_key(other))
    assert lines == [
        f"vtx: verify: {side}: {SIGNATURE}: signed by key {signer}, not by the given "
        f"public key {given}"
        for side in (export, onshore)
    ]


def test_a_signature_file_with_a_false_key_id_fails(signed, keys, tmp_path, runner) -> None:
    # Signed by another key under this key's id: the id is a name, not trusted.
    export, _onshore = signed
    runner.invoke(vtx, ["keygen", "--out", str(tmp_path / "forger")])
    forger = load_signing_key(tmp_path / "forger.key")
    assert forger is not None
    record = json.loads(manifests.signature(export))
    message = (
        DOMAIN
        + json.dumps(
            json.loads(manifests.manifest_text(export)),
            sort_keys=True,
            separators=(",", ":"),
        ).encode()
    )
    record["signature"] = base64.b64encode(forger.sign(message)).decode()
    manifests.write_signature(export, json.dumps(record, indent=2) + "\n")
    lines = verify_lines(verify(runner, export, None, "--public-key", str(keys[1])))
    assert "does not match the manifest in _manifest.parquet" in lines[0]


def test_unsigned_outputs_fail_when_a_signature_is_required(
    batch_file, key_file, keys, tmp_path, runner
) -> None:
    export, onshore = tmp_path / "export", tmp_path / "onshore"
    assert runner.invoke(vtx, split_args(batch_file, tmp_path, key_file)).exit_code == 0
    lines = verify_lines(verify(runner, export, onshore, "--require-signature"))
    assert lines == [
        f"vtx: verify: {side}: {SIGNATURE} is missing: the output is not "
        "signed (--require-signature needs a signed output)"
        for side in (export, onshore)
    ]
    with_key = verify_lines(verify(runner, export, None, "--public-key", str(keys[1])))
    assert with_key == [
        f"vtx: verify: {export}: {SIGNATURE} is missing: the output is "
        "not signed (--public-key needs a signed output)"
    ]
    report = verify_output(export, onshore, MINI_CATALOGUE, require_signature=True)
    assert not report.ok and len(report.failures) == 2


def test_a_removed_signature_fails_with_the_public_key(signed, keys, runner) -> None:
    export, onshore = signed
    manifests.write_signature(onshore, None)
    lines = verify_lines(verify(runner, export, onshore, "--public-key", str(keys[1])))
    assert lines == [
        f"vtx: verify: {onshore}: {SIGNATURE} is missing: the output is not "
        "signed (--public-key needs a signed output)"
    ]


@pytest.mark.parametrize(
    "tamper",
    [
        lambda text: text.replace('"ed25519"', '"ed25519" '),  # data in the whitespace
        lambda text: text.replace('"format"', '"smuggled": "31.2304,121.4737",\n  "format"'),
        lambda text: text + "LSV00000000000001\n",
        lambda text: "not json",
    ],
)
def test_a_signature_file_must_be_exactly_what_vtx_writes(signed, runner, tamper) -> None:
    # The one file verify allows besides the manifest and the parts: nothing may ride in it,
    # whether or not a key is given.
    export, _onshore = signed
    record = manifests.signature(export)
    assert record is not None
    manifests.write_signature(export, tamper(record.decode("ascii")))
    lines = verify_lines(verify(runner, export, None))
    assert len(lines) == 1 and f"{SIGNATURE}: not a vtx signature: " in lines[0]
    assert "31.2304" not in lines[0] and "LSV0000" not in lines[0]


def test_signing_happens_in_staging_so_nothing_half_signed_publishes(
    batch_file, keys, tmp_path, monkeypatch
) -> None:
    import filter.outputs.pair

    real, calls = filter.outputs.pair.sign_manifest, []

    def fail_second(directory, key):
        calls.append(directory)
        if len(calls) == 2:
            raise OutputError(f"{directory}: cannot write signature: No space left on device")
        return real(directory, key)

    monkeypatch.setattr(filter.outputs.pair, "sign_manifest", fail_second)
    with pytest.raises(OutputError, match="No space left"):
        split(
            batch_file,
            tmp_path / "export",
            tmp_path / "onshore",
            "after-sales",
            key=KEY,
            catalogue=MINI_CATALOGUE,
            signing_key=keys[0],
        )
    assert len(calls) == 2
    assert_nothing_published(tmp_path)
    assert not [p for p in tmp_path.iterdir() if ".vtx-staging-" in p.name]


# --- keys refused ---------------------------------------------------------------------------


def test_the_token_key_is_refused_as_signing_key(
    batch_file, key_file, keys, tmp_path, runner
) -> None:
    args = split_args(batch_file, tmp_path, key_file)
    same_file = runner.invoke(vtx, [*args, "--signing-key", str(key_file)])
    assert_one_line_error(same_file, 2, f"{key_file}: the signing key is the token key")
    # An Ed25519 key file given as both keys is refused too, not used for both purposes.
    both = runner.invoke(
        vtx, [*split_args(batch_file, tmp_path, keys[0]), "--signing-key", str(keys[0])]
    )
    assert_one_line_error(both, 2, "the signing key is the token key")
    copy = tmp_path / "copy.key"
    shutil.copy(key_file, copy)
    assert_one_line_error(
        runner.invoke(vtx, [*args, "--signing-key", str(copy)]),
        2,
        "the signing key is the token key",
    )
    assert_nothing_published(tmp_path)
    # The library refuses a loaded key whose raw bytes are the token key.
    signing_key = load_signing_key(keys[0])
    assert signing_key is not None
    with pytest.raises(KeyFileError, match="the signing key is the token key"):
        split(
            batch_file,
            tmp_path / "export",
            tmp_path / "onshore",
            "after-sales",
            key=signing_key.private_bytes_raw(),
            catalogue=MINI_CATALOGUE,
            signing_key=signing_key,
        )
    assert_nothing_published(tmp_path)


def pem(private_key) -> bytes:
    return private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (lambda: pem(rsa.generate_private_key(65537, 1024)), "an RSA private key, not Ed25519"),
        (lambda: pem(ec.generate_private_key(ec.SECP256R1())), "an EC private key, not Ed25519"),
        (lambda: b"not a key at all\n", "not an Ed25519 private key in PEM (PKCS8)"),
        (
            lambda: ed25519.Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(b"secret"),
            ),
            "an encrypted private key",
        ),
        (
            lambda: (
                ed25519.Ed25519PrivateKey.generate()
                .public_key()
                .public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                )
            ),
            "a public key, not a signing key",
        ),
    ],
)
def test_a_key_that_is_not_an_ed25519_signing_key_is_refused(
    batch_file, key_file, tmp_path, runner, content, fragment
) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_bytes(content())
    result = runner.invoke(
        vtx, [*split_args(batch_file, tmp_path, key_file), "--signing-key", str(bad)]
    )
    assert_one_line_error(result, 2, f"{bad}: {fragment}")
    assert_nothing_published(tmp_path)


def test_verify_refuses_a_public_key_it_cannot_use(signed, keys, tmp_path, runner) -> None:
    export, _onshore = signed
    assert_one_line_error(
        verify(runner, export, None, "--public-key", str(keys[0])),
        2,
        "a private key; give the public key",
    )
    rsa_public = tmp_path / "rsa.pub"
    rsa_public.write_bytes(
        rsa.generate_private_key(65537, 1024)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    assert_one_line_error(
        verify(runner, export, None, "--public-key", str(rsa_public)),
        2,
        "an RSA public key, not Ed25519",
    )
    assert_one_line_error(
        verify(runner, export, None, "--public-key", str(tmp_path / "no")),
        2,
        "cannot read public key",
    )
    assert_one_line_error(
        verify(runner, export, None, "--public-key", "/dev/zero"),
        2,
        "/dev/zero: larger than 65536 bytes: not a public key file",
    )


# --- the real command -----------------------------------------------------------------------


def test_installed_vtx_keygen_split_verify(batch_file, key_file, tmp_path) -> None:
    exe = shutil.which("vtx", path=os.path.dirname(sys.executable)) or shutil.which("vtx")
    command = [exe] if exe else [sys.executable, "-m", "filter"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*command, *args], capture_output=True, text=True, timeout=120, check=False
        )

    made = run("keygen", "--out", str(tmp_path / "egress"))
    assert made.returncode == 0, made.stderr
    done = run(
        *split_args(batch_file, tmp_path, key_file), "--signing-key", str(tmp_path / "egress.key")
    )
    assert done.returncode == 0, done.stderr
    checked = run(
        "verify",
        str(tmp_path / "export"),
        "--onshore",
        str(tmp_path / "onshore"),
        "--catalogue",
        str(MINI_CATALOGUE),
        "--public-key",
        str(tmp_path / "egress.pub"),
    )
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.strip().endswith(
        made.stdout.splitlines()[0].replace("key id ", "signed by key ")
    )
    edit_manifest(tmp_path / "export", lambda m: m.update(scenario="used-car"))
    failed = run(
        "verify",
        str(tmp_path / "export"),
        "--catalogue",
        str(MINI_CATALOGUE),
        "--public-key",
        str(tmp_path / "egress.pub"),
    )
    assert failed.returncode == 3
    assert "the manifest changed since it was signed" in failed.stderr
    assert "Traceback" not in failed.stderr
