"""Standalone auditor: verifies credit-ledger checkpoints and Merkle proofs (standard library only).

Copy this one file to any machine with Python 3.11+; it imports nothing outside the standard library.

What it trusts: only the operator's Ed25519 public key (hex, given with ``--public-key`` and
obtained out of band). Everything else (checkpoints, proofs, leaves) is treated as hostile.

What it checks:

* ``checkpoint CP.json --public-key HEX``: the checkpoint is well formed, names the key
  (``key_id`` = first 16 hex digits of SHA-256 of the raw public key) and carries a valid
  Ed25519 signature (RFC 8032, verified here in pure Python) over
  ``b"credit-ledger checkpoint v1\\n" + JSON{key_id, root, size, time}`` (sorted keys, no spaces),
  or for a version 2 checkpoint (``"v": 2``) over ``b"credit-ledger checkpoint v2\\n" +
  JSON{key_id, prev, receipts, receipts_head, root, size, time}``: it also signs the position and
  chain link of the submission register's newest receipt, and the hash of the checkpoint filed
  before it (``prev``).
  A version 3 checkpoint is a C2SP checkpoint note (c2sp.org/tlog-checkpoint, signed-note):
  the origin, the size, the base64 root, the lines ``credit-ledger time|receipts|prev ...``, a
  blank line and the signature lines. The operator's line is named by the origin, its key id
  SHA-256(origin || 0x0A || 0x01 || public key)[:4], its signature Ed25519 over the note text.
  The file may hold the note itself (as ``GET /checkpoint`` serves it) or the JSON line
  ``{"v": 3, "note": ...}``. ``--public-key`` may be the operator's vkey instead of hex.
* ``--witness VKEY`` (repeated) ``--min-witnesses K``, with any command: the policy "at least K
  (default: all) of these witnesses". Each checkpoint must carry at least K valid timestamped
  cosignatures (c2sp.org/tlog-cosignature: Ed25519 over ``cosignature/v1\ntime T\n`` and the
  note text) of those witnesses; a version 1 or 2 checkpoint carries none.
* ``inclusion PROOF.json --checkpoint CP.json --public-key HEX``: the checkpoint as above, then
  that the leaf ``{"position", "stream", "version", "event_hash"}`` sits at ``index`` in the tree
  the checkpoint signs: the RFC 9162 2.1.3.2 inclusion path must lead from
  SHA-256(0x00 || leaf JSON) to the signed root, for the signed size.
* ``consistency OLD.json NEW.json PROOF.json --public-key HEX``: both checkpoints as above, then
  that the older tree is a prefix of the newer one (RFC 9162 2.1.4.2), i.e. the operator only
  appended between them and rewrote or dropped nothing.

What it cannot check alone: that an ``event_hash`` matches the event's content (that needs the
event and ``ledger.domain.integrity``), or that the operator shows everyone the same tree: compare
checkpoints with other auditors and demand consistency proofs between them to catch a split view.

Each command prints one verdict line and exits 0 when everything holds, 1 with the reason if not
(2 for a malformed command line).

This file is longer than the project's 400 lines a module: it is the one file an auditor copies,
so it holds everything it checks (signatures, notes, proofs) and nothing else.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

DOMAIN = b"credit-ledger checkpoint v1\n"
DOMAIN_V2 = b"credit-ledger checkpoint v2\n"
_V1_FIELDS = {"size", "root", "time", "key_id", "signature"}
_V2_FIELDS = _V1_FIELDS | {"v", "receipts", "receipts_head", "prev"}
DASH = "\u2014 "  # an em dash and a space begin every signature line of a note
ED25519, COSIGNATURE = 0x01, 0x04  # the signature types of signed-note (log) and tlog-cosignature
_sha256 = hashlib.sha256
_NODE_HASHER = hashlib.sha256(b"\x01")


class Invalid(Exception):
    """The material does not verify; the message says why."""


# --- RFC 9162 Merkle tree hashing and proof verification ----------------------------------------


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 || data)."""
    return _sha256(b"\x00" + data).digest()


def verify_inclusion(leaf: bytes, index: int, size: int, path: Sequence[bytes], root: bytes) -> bool:
    """RFC 9162 2.1.3.2: ``path`` leads from the leaf hash at ``index`` to ``root`` of ``size``."""
    if not 0 <= index < size or any(len(p) != 32 for p in path):
        return False
    fn, sn, r = index, size - 1, leaf
    node = _NODE_HASHER.copy  # SHA-256 already fed 0x01: copying it beats re-hashing the prefix
    for p in path:
        if sn == 0:
            return False
        h = node()
        if fn & 1 or fn == sn:  # p is a left sibling
            h.update(p)
            h.update(r)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:  # p is a right sibling
            h.update(r)
            h.update(p)
        r = h.digest()
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def verify_consistency(m: int, n: int, old_root: bytes, new_root: bytes, path: Sequence[bytes]) -> bool:
    """RFC 9162 2.1.4.2: ``path`` shows the tree of size ``m`` is a prefix of that of size ``n``."""
    if not 0 <= m <= n or any(len(p) != 32 for p in path):
        return False
    if m == n:
        return not path and old_root == new_root
    if m == 0:  # the empty tree (root SHA-256 of nothing) is a prefix of every tree
        return not path and old_root == _sha256(b"").digest()
    if not path:
        return False
    nodes = [old_root, *path] if m & (m - 1) == 0 else list(path)
    fn, sn = m - 1, n - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = nodes[0]
    for c in nodes[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = _sha256(b"\x01" + c + fr).digest()
            sr = _sha256(b"\x01" + c + sr).digest()
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = _sha256(b"\x01" + sr + c).digest()
        fn, sn = fn >> 1, sn >> 1
    return fr == old_root and sr == new_root and sn == 0


# --- Ed25519 signature verification, RFC 8032 section 5.1.7 (after its section 6 reference) ----

_P = 2**255 - 19  # the field prime
_L = 2**252 + 27742317777372353535851937790883648493  # the order of the base point
_D = -121665 * pow(121666, _P - 2, _P) % _P  # the curve constant d
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)  # a square root of -1
Point = tuple[int, int, int, int]  # extended homogeneous coordinates (X, Y, Z, T), x=X/Z, y=Y/Z


def _add(p: Point, q: Point) -> Point:
    """Point addition on edwards25519 (a complete formula: also right for doubling)."""
    a = (p[1] - p[0]) * (q[1] - q[0]) % _P
    b = (p[1] + p[0]) * (q[1] + q[0]) % _P
    c = 2 * p[3] * q[3] * _D % _P
    d = 2 * p[2] * q[2] % _P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _mul(s: int, p: Point) -> Point:
    """[s]P by double-and-add (timing leaks do not matter: nothing here is secret)."""
    q: Point = (0, 1, 1, 0)  # the neutral element
    while s:
        if s & 1:
            q = _add(q, p)
        p = _add(p, p)
        s >>= 1
    return q


def _decode(s: bytes) -> Point | None:
    """RFC 8032 5.1.3: the point encoded by 32 bytes, or None if they encode no point."""
    y = int.from_bytes(s, "little")
    sign, y = y >> 255, y & ((1 << 255) - 1)
    if y >= _P:
        return None
    x2 = (y * y - 1) * pow(_D * y * y + 1, _P - 2, _P) % _P
    x = pow(x2, (_P + 3) // 8, _P)
    if (x * x - x2) % _P:
        x = x * _SQRT_M1 % _P
    if (x * x - x2) % _P or (x == 0 and sign):
        return None
    if x & 1 != sign:
        x = _P - x
    return (x, y, 1, x * y % _P)


_BX = 15112221349535400772501151409588531511454012693041857206046113283949847762202
_BY = 46316835694926478169428394003475163141307993866256225615783033603165251855960  # 4/5 mod p
_B: Point = (_BX, _BY, 1, _BX * _BY % _P)  # the base point


def ed25519_verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """RFC 8032 5.1.7: is ``signature`` ``public_key``'s valid Ed25519 signature of ``message``?"""
    if len(public_key) != 32 or len(signature) != 64:
        return False
    a, r = _decode(public_key), _decode(signature[:32])
    s = int.from_bytes(signature[32:], "little")
    if a is None or r is None or s >= _L:
        return False
    k = int.from_bytes(hashlib.sha512(signature[:32] + public_key + message).digest(), "little")
    sb, rka = _mul(s, _B), _add(r, _mul(k % _L, a))
    # [S]B == R + [k]A, compared projectively (RFC 8032 allows this cofactorless check).
    return (sb[0] * rka[2] - rka[0] * sb[2]) % _P == 0 and (sb[1] * rka[2] - rka[1] * sb[2]) % _P == 0


# --- The ledger's files ------------------------------------------------------------------------

_HEX = re.compile(r"[0-9a-f]*")
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z")  # RFC 3339, UTC


def canonical(value: dict[str, Any]) -> bytes:
    """Sorted-key JSON without spaces, UTF-8 and unescaped: byte for byte what the ledger hashes
    (orjson with sorted keys) for the strings and integers checkpoints and leaves hold."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _load(path: str) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_bytes())
    except (OSError, ValueError) as exc:
        raise Invalid(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise Invalid(f"{path} does not hold a JSON object")
    return data


def _int(data: dict[str, Any], name: str, what: str) -> int:
    value = data.get(name)
    if type(value) is not int or value < 0:  # type(), not isinstance(): a bool is not an int
        raise Invalid(f"{what}: '{name}' must be a non-negative integer")
    return value


def _str(data: dict[str, Any], name: str, what: str) -> str:
    value = data.get(name)
    if not isinstance(value, str):
        raise Invalid(f"{what}: '{name}' must be a string")
    return value


def _hex(value: object, digits: int, what: str) -> bytes:
    if not isinstance(value, str) or len(value) != digits or not _HEX.fullmatch(value):
        raise Invalid(f"{what} must be {digits} lowercase hex digits")
    return bytes.fromhex(value)


def _path(proof: dict[str, Any], what: str) -> list[bytes]:
    hashes = proof.get("path")
    if not isinstance(hashes, list):
        raise Invalid(f"{what}: 'path' must be a list of hashes")
    return [_hex(h, 64, f"{what}: each path element") for h in hashes]


# --- Signed notes, C2SP checkpoints and cosignatures ----------------------------------------------

Key = tuple[str, int, bytes]  # (key name, key id, 32-byte Ed25519 public key)


def note_key_id(name: str, kind: int, public_key: bytes) -> int:
    """SHA-256(name || 0x0A || signature type || public key), its first 4 bytes, big-endian."""
    return int.from_bytes(_sha256(name.encode() + b"\n" + bytes([kind]) + public_key).digest()[:4], "big")


def _b64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise Invalid(f"{what} is not base64") from None


def parse_vkey(text: str, kind: int) -> Key:
    """A vkey ``name+hex id+base64(type || key)`` of signature type ``kind``, its id checked."""
    parts = text.strip().split("+", 2)  # the base64 key may hold a "+" itself
    if len(parts) != 3 or not re.fullmatch(r"[0-9a-f]{8}", parts[1]) or not parts[0]:
        raise Invalid(f"{text[:80]!r} is not a vkey (name+8 hex digits+base64 key)")
    material = _b64(parts[2], f"the key of vkey {parts[0]}")
    if len(material) != 33 or material[0] != kind:
        raise Invalid(f"vkey {parts[0]} is not an Ed25519 key of signature type 0x{kind:02x}")
    if note_key_id(parts[0], kind, material[1:]) != int(parts[1], 16):
        raise Invalid(f"vkey {parts[0]} names key id {parts[1]}, but its key has another")
    return parts[0], int(parts[1], 16), material[1:]


def parse_note(raw: str, what: str) -> tuple[str, list[tuple[str, int, bytes]]]:
    """A signed note's text and its signature lines (name, key id, signature after the id)."""
    if any(c < " " and c != "\n" for c in raw):
        raise Invalid(f"{what}: a note holds no control character but newlines")
    split = raw.rfind("\n\n")
    if split < 0 or not raw.endswith("\n"):
        raise Invalid(f"{what}: a note is its text, a blank line, then its signature lines")
    text, signatures = raw[: split + 1], []
    for line in raw[split + 2 : -1].split("\n"):
        name, _, encoded = line.removeprefix(DASH).partition(" ")
        raw_sig = _b64(encoded, f"{what}: a signature") if line.startswith(DASH) and name else b""
        if len(raw_sig) < 5 or "+" in name or any(c.isspace() for c in name):
            raise Invalid(f"{what}: {line[:60]!r} is not a signature line ('— name base64')")
        signatures.append((name, int.from_bytes(raw_sig[:4], "big"), raw_sig[4:]))
    if len(signatures) > 100:
        raise Invalid(f"{what}: more than 100 signatures")
    return text, signatures


_NOTE = re.compile(
    r"(\S+)\n(0|[1-9][0-9]*)\n(\S+)\n"  # origin, size, root
    r"credit-ledger time (\S+)\n"
    r"credit-ledger receipts (0|[1-9][0-9]*) ([0-9a-f]{64})\n"
    r"credit-ledger prev ([0-9a-f]{64})\n"
)


def check_note(raw: str, what: str, log_name: str, public_key: bytes) -> dict[str, Any]:
    """A version 3 checkpoint note's fields, if its lines are well formed and the key signed it."""
    text, signatures = parse_note(raw, what)
    found = _NOTE.fullmatch(text)
    if found is None or not _TIME.fullmatch(found.group(4)):
        raise Invalid(
            f"{what}: not a credit-ledger checkpoint note (origin, size, root, time, receipts, prev)"
        )
    origin, size, root = found.group(1), int(found.group(2)), _b64(found.group(3), f"{what}: the root")
    if len(root) != 32 or "+" in origin:
        raise Invalid(f"{what}: the root is 32 bytes in base64 and the origin has no '+'")
    if log_name and log_name != origin:
        raise Invalid(f"{what}: a checkpoint of the log {origin}, not of {log_name}")
    expected = note_key_id(origin, ED25519, public_key)
    own = [sig for n, i, sig in signatures if (n, i) == (origin, expected)]
    if not own:
        raise Invalid(f"{what}: signed by no key {origin}+{expected:08x}: not by the given public key")
    if not all(ed25519_verify(public_key, text.encode(), sig) for sig in own):
        raise Invalid(f"{what}: bad signature: this is not the operator's checkpoint")
    return {
        "v": 3, "origin": origin, "size": size, "root": root.hex(), "time": found.group(4),
        "key_id": f"{expected:08x}", "text": text, "signatures": signatures,
    }  # fmt: skip


def check_witnesses(cp: dict[str, Any], what: str, witnesses: Sequence[Key], minimum: int) -> str:
    """Raises Invalid unless ``minimum`` of ``witnesses`` validly cosigned ``cp``; says who did."""
    if not witnesses:
        return ""
    if cp.get("v") != 3:
        raise Invalid(f"{what}: a version {cp.get('v', 1)} checkpoint carries no witness cosignatures")
    cosigned = []
    for name, key_id, public_key in witnesses:
        lines = [sig for n, i, sig in cp["signatures"] if (n, i) == (name, key_id)]
        if not lines:
            continue
        for sig in lines:
            stamp = int.from_bytes(sig[:8], "big")
            message = f"cosignature/v1\ntime {stamp}\n".encode() + cp["text"].encode()
            if len(sig) != 72 or not ed25519_verify(public_key, message, sig[8:]):
                raise Invalid(f"{what}: the cosignature of witness {name} does not verify: altered or forged")
        cosigned.append(name)
    counted = f"{len(cosigned)} of {len(witnesses)} witnesses ({', '.join(cosigned) or 'none'})"
    if len(cosigned) < minimum:
        raise Invalid(f"{what}: cosigned by {counted}; the policy wants at least {minimum}")
    return f"; cosigned by {counted}, at least {minimum} required"


def check_checkpoint(path: str, public_key: bytes, log_name: str = "") -> dict[str, Any]:
    """The checkpoint in ``path`` if it is well formed and signed by ``public_key`` (for a v3 note:
    under ``log_name``, if given, else under the note's own origin)."""
    try:
        raw = Path(path).read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise Invalid(f"cannot read {path}: {exc}") from exc
    if not raw.lstrip().startswith("{"):  # a checkpoint note as GET /checkpoint serves it
        return check_note(raw, path, log_name, public_key)
    cp = _load(path)
    if cp.get("v") == 3:
        if set(cp) != {"v", "note"} or not isinstance(cp["note"], str):
            raise Invalid(f"{path}: a version 3 checkpoint is {{'v': 3, 'note': TEXT}}")
        return check_note(cp["note"], path, log_name, public_key)
    version = cp.get("v", 1)
    expected = _V1_FIELDS if version == 1 else _V2_FIELDS
    if type(version) is not int or version not in (1, 2) or set(cp) != expected:
        raise Invalid(f"{path}: checkpoint fields are {sorted(cp)}")
    body = {name: cp[name] for name in sorted(set(cp) - {"signature", "v"})}
    if version == 2:
        _int(cp, "receipts", path)
        _hex(cp["receipts_head"], 64, f"{path}: receipts_head")
        _hex(cp["prev"], 64, f"{path}: prev")
    _int(cp, "size", path)
    _hex(cp["root"], 64, f"{path}: root")
    _hex(cp["key_id"], 16, f"{path}: key_id")
    signature = _hex(cp["signature"], 128, f"{path}: signature")
    if not _TIME.fullmatch(_str(cp, "time", path)):
        raise Invalid(f"{path}: time must be an RFC 3339 UTC timestamp ending in Z")
    if body["key_id"] != hashlib.sha256(public_key).hexdigest()[:16]:
        raise Invalid(f"{path}: signed by key {body['key_id']}, not by the given public key")
    message = (DOMAIN if version == 1 else DOMAIN_V2) + canonical(body)
    if not ed25519_verify(public_key, message, signature):
        raise Invalid(f"{path}: bad signature: this is not the operator's checkpoint")
    return cp


def check_inclusion(path: str, cp: dict[str, Any]) -> str:
    """What the proof in ``path`` shows, if it leads from its leaf to the checkpoint's root."""
    proof = _load(path)
    leaf = proof.get("leaf")
    if not isinstance(leaf, dict) or set(leaf) != {"position", "stream", "version", "event_hash"}:
        raise Invalid(f"{path}: 'leaf' must hold exactly position, stream, version, event_hash")
    for name in ("position", "version"):
        _int(leaf, name, f"{path}: leaf")
    for name in ("stream", "event_hash"):
        _str(leaf, name, f"{path}: leaf")
    index, size = _int(proof, "index", path), _int(proof, "size", path)
    if size != cp["size"]:
        raise Invalid(f"{path}: proof is for a tree of {size}, the checkpoint signs {cp['size']}")
    data = canonical(leaf)  # the leaf's canonical bytes
    if not verify_inclusion(leaf_hash(data), index, size, _path(proof, path), bytes.fromhex(cp["root"])):
        raise Invalid(f"{path}: the inclusion proof does not lead to the checkpoint's root")
    return (
        f"stream {leaf['stream']} version {leaf['version']} (position {leaf['position']})"
        f" is leaf {index} of the signed tree of {size}"
    )


def check_consistency(path: str, old: dict[str, Any], new: dict[str, Any]) -> None:
    """Raises Invalid unless the proof in ``path`` shows ``new``'s tree extends ``old``'s."""
    if old["size"] > new["size"]:
        raise Invalid(f"the old checkpoint ({old['size']}) is larger than the new ({new['size']})")
    proof = _load(path)
    m, n = _int(proof, "old_size", path), _int(proof, "new_size", path)
    if (m, n) != (old["size"], new["size"]):
        raise Invalid(f"{path}: proof is for sizes {m} -> {n}, not {old['size']} -> {new['size']}")
    roots = bytes.fromhex(old["root"]), bytes.fromhex(new["root"])
    if not verify_consistency(m, n, *roots, _path(proof, path)):
        raise Invalid(f"{path}: the consistency proof fails: the new tree does not extend the old")


def _keys(args: argparse.Namespace) -> tuple[bytes, str, list[Key], int]:
    """The operator's key (and its name, from a vkey), the policy's witnesses and its K."""
    text = args.public_key.strip()
    if "+" in text:
        log_name, _, public_key = parse_vkey(text, ED25519)
    else:
        if len(text) != 64 or not _HEX.fullmatch(text.lower()):
            raise Invalid("--public-key must be 64 hex digits (a raw Ed25519 public key) or a vkey")
        log_name, public_key = "", bytes.fromhex(text.lower())
    witnesses = [parse_vkey(w, COSIGNATURE) for w in args.witness]
    if len({w[2] for w in witnesses}) != len(witnesses):
        raise Invalid("a witness is given twice (the same key)")
    minimum = len(witnesses) if args.min_witnesses is None else args.min_witnesses
    if (witnesses and not 1 <= minimum <= len(witnesses)) or (not witnesses and args.min_witnesses):
        raise Invalid(f"--min-witnesses must be from 1 to the {len(witnesses)} --witness given")
    return public_key, log_name, witnesses, minimum


def main(argv: Sequence[str] | None = None) -> int:
    """Run one check from the command line; 0 if it holds, 1 (with the reason) if not."""
    parser = argparse.ArgumentParser(description="Verify credit-ledger checkpoints and proofs.")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, files in (
        ("checkpoint", ["checkpoint"]),
        ("inclusion", ["proof"]),
        ("consistency", ["old", "new", "proof"]),
    ):
        sub = commands.add_parser(name)
        for f in files:
            sub.add_argument(f)
        if name == "inclusion":
            sub.add_argument("--checkpoint", required=True)
        sub.add_argument("--public-key", required=True, help="the operator's Ed25519 key: hex, or its vkey")
        sub.add_argument("--witness", action="append", default=[], help="a witness's cosignature vkey")
        sub.add_argument("--min-witnesses", type=int, help="how many witnesses must cosign (default: all)")
    args = parser.parse_args(argv)
    try:
        public_key, log_name, witnesses, minimum = _keys(args)

        def checked(path: str) -> tuple[dict[str, Any], str]:
            cp = check_checkpoint(path, public_key, log_name)
            return cp, check_witnesses(cp, path, witnesses, minimum)

        if args.command == "checkpoint":
            cp, cosigned = checked(args.checkpoint)
            of = f"checkpoint of {cp['origin']}" if cp.get("v") == 3 else "checkpoint"
            verdict = (
                f"{of} signed by key {cp['key_id']}: "
                f"size {cp['size']}, root {cp['root']}, time {cp['time']}{cosigned}"
            )
        elif args.command == "inclusion":
            cp, cosigned = checked(args.checkpoint)
            verdict = check_inclusion(args.proof, cp) + cosigned
        else:
            (old, _), (new, cosigned) = checked(args.old), checked(args.new)
            check_consistency(args.proof, old, new)
            verdict = (
                f"the tree of {new['size']} leaves extends the tree of {old['size']}: append-only{cosigned}"
            )
    except Invalid as exc:
        print(f"INVALID: {exc}")
        return 1
    print(f"VALID: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
