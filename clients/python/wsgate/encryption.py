"""End-to-end encrypted channels (docs/encryption.md, "End to end"); needs the
``cryptography`` package.

Envelope: 0x01 | len(key id) | key id | 12-byte nonce | AES-256-GCM ciphertext+tag,
AAD = the header (version, len, key id) followed by the channel name. Channel key:
HKDF-SHA256(ikm = master secret, salt = key id, info = "wsgate-enc-v1|" + channel).
A publication's payload is the envelope in standard padded base64, a JSON string."""

from __future__ import annotations

import base64
import binascii
import os
import re
import threading
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

__all__ = ["Encryption", "EncryptionKey", "Keyring", "ChannelKeyring", "EnvelopeError", "delivered_keyrings", "channel_key", "seal_envelope",
           "open_envelope", "parse_envelope", "encode_payload", "decode_payload"]

VERSION = 0x01
NONCE_SIZE = 12
TAG_SIZE = 16
MIN_SECRET_BYTES = 32
_INFO_PREFIX = b"wsgate-enc-v1|"
_CACHE_MAX = 4096
_KEY_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_B64_RE = re.compile(r"^[A-Za-z0-9+/]*={0,2}$")


class EnvelopeError(ValueError):
    """An envelope that does not open: malformed, an unknown key id, or failed authentication."""

    def __init__(self, reason: str, key_id: str = "") -> None:
        super().__init__(reason)
        self.reason, self.key_id = reason, key_id


def _secret(s: Union[bytes, bytearray, memoryview, str]) -> bytes:
    if isinstance(s, str):
        if not s.startswith("base64:"):
            raise ValueError('wsgate: an encryption secret is bytes or "base64:…"')
        return _b64decode(s[7:])
    return bytes(s)


def _check_key_id(key_id: str) -> None:
    if not isinstance(key_id, str) or not _KEY_ID_RE.match(key_id):
        raise ValueError(f"wsgate: key id {key_id!r}: 1-64 of [A-Za-z0-9._-]")


def _b64decode(s: str) -> bytes:
    """Strict standard padded base64: one spelling per value, as the server checks."""
    if len(s) % 4 or not _B64_RE.match(s):
        raise EnvelopeError("not base64")
    try:
        b = base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError):
        raise EnvelopeError("not base64") from None
    if base64.b64encode(b).decode("ascii") != s:
        raise EnvelopeError("non-canonical base64")
    return b


def channel_key(secret: Union[bytes, str], key_id: str, channel: str) -> bytes:
    """The channel's 32-byte data key under the master key (key_id, secret)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF
    _check_key_id(key_id)
    return HKDF(hashes.SHA256(), 32, salt=key_id.encode("ascii"), info=_INFO_PREFIX + channel.encode()).derive(_secret(secret))


def _header(key_id: str) -> bytes:
    return bytes([VERSION, len(key_id)]) + key_id.encode("ascii")


def parse_envelope(env: bytes) -> Tuple[str, bytes, bytes, bytes]:
    """(key id, header, nonce, ciphertext with tag); EnvelopeError when env is not an envelope."""
    if len(env) < 2 or env[0] != VERSION:
        raise EnvelopeError("malformed envelope")
    n = env[1]
    if not 1 <= n <= 64 or len(env) < 2 + n + NONCE_SIZE + TAG_SIZE:
        raise EnvelopeError("malformed envelope")
    key_id = env[2:2 + n].decode("latin-1")
    if not _KEY_ID_RE.match(key_id):
        raise EnvelopeError("malformed envelope")
    return key_id, env[:2 + n], env[2 + n:2 + n + NONCE_SIZE], env[2 + n + NONCE_SIZE:]


def seal_envelope(key: bytes, key_id: str, channel: str, plaintext: bytes, nonce: Optional[bytes] = None) -> bytes:
    """Seals plaintext for channel under the channel key; nonce defaults to 12 random bytes."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    _check_key_id(key_id)
    nonce = os.urandom(NONCE_SIZE) if nonce is None else nonce
    if len(nonce) != NONCE_SIZE:
        raise ValueError("wsgate: nonce must be 12 bytes")
    h = _header(key_id)
    return h + nonce + AESGCM(key).encrypt(nonce, plaintext, h + channel.encode())


def open_envelope(key: bytes, channel: str, env: bytes) -> bytes:
    """The plaintext of env; EnvelopeError when it does not open."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    key_id, h, nonce, ct = parse_envelope(env)
    try:
        return AESGCM(key).decrypt(nonce, ct, h + channel.encode())
    except InvalidTag:
        raise EnvelopeError("message authentication failed", key_id) from None


@dataclass(frozen=True)
class EncryptionKey:
    """An application master key: id (1-64 of [A-Za-z0-9._-]) and secret (>= 32 bytes, or "base64:…")."""

    id: str
    secret: Union[bytes, str]


KeyLike = Union[EncryptionKey, Tuple[str, Union[bytes, str]]]


class Keyring:
    """Master keys: the first seals, every one opens. Thread-safe; derived channel
    keys are cached (at most 4096; the cache starts over past that)."""

    def __init__(self, keys: Sequence[KeyLike]) -> None:
        if not keys:
            raise ValueError("wsgate: encryption needs at least one key")
        self._secrets: Dict[str, bytes] = {}
        self._ids: List[str] = []
        for k in keys:
            kid, sec = (k.id, k.secret) if isinstance(k, EncryptionKey) else k
            _check_key_id(kid)
            s = _secret(sec)
            if len(s) < MIN_SECRET_BYTES:
                raise ValueError(f"wsgate: key {kid}: secret has {len(s)} bytes, needs at least {MIN_SECRET_BYTES}")
            if kid in self._secrets:
                raise ValueError(f"wsgate: key id {kid} listed twice")
            self._secrets[kid] = s
            self._ids.append(kid)
        self._cache: Dict[Tuple[str, str], Any] = {}
        self._lock = threading.Lock()
        import cryptography  # noqa: F401 - fail at construction, not at the first message

    @property
    def sealing_key_id(self) -> str:
        return self._ids[0]

    @property
    def key_ids(self) -> List[str]:
        return list(self._ids)

    def _aead(self, key_id: str, channel: str) -> Any:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        with self._lock:
            a = self._cache.get((key_id, channel))
        if a is not None:
            return a
        s = self._secrets.get(key_id)
        if s is None:
            raise EnvelopeError(f"unknown key id {key_id}", key_id)
        a = AESGCM(channel_key(s, key_id, channel))
        with self._lock:
            if len(self._cache) >= _CACHE_MAX:
                self._cache.clear()
            self._cache[(key_id, channel)] = a
        return a

    def seal(self, channel: str, plaintext: bytes, nonce: Optional[bytes] = None) -> bytes:
        """An envelope of plaintext for channel under the first key."""
        kid = self._ids[0]
        nonce = os.urandom(NONCE_SIZE) if nonce is None else nonce
        if len(nonce) != NONCE_SIZE:
            raise ValueError("wsgate: nonce must be 12 bytes")
        h = _header(kid)
        return h + nonce + self._aead(kid, channel).encrypt(nonce, plaintext, h + channel.encode())

    def open(self, channel: str, env: bytes) -> Tuple[bytes, str]:
        """(plaintext, key id); EnvelopeError when env does not open."""
        from cryptography.exceptions import InvalidTag
        kid, h, nonce, ct = parse_envelope(env)
        try:
            return self._aead(kid, channel).decrypt(nonce, ct, h + channel.encode()), kid
        except InvalidTag:
            raise EnvelopeError("message authentication failed", kid) from None


class ChannelKeyring(Keyring):
    """The keys the ticket endpoint delivers for one channel: that channel's
    32-byte data keys, used without derivation; no other channel opens."""

    def __init__(self, channel: str, keys: Sequence[KeyLike]) -> None:
        super().__init__(keys)
        for kid, s in self._secrets.items():
            if len(s) != 32:
                raise ValueError(f"wsgate: channel key {kid} must be 32 bytes")
        self._channel = channel

    def _aead(self, key_id: str, channel: str) -> Any:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        s = self._secrets.get(key_id)
        if s is None or channel != self._channel:
            raise EnvelopeError(f"unknown key id {key_id}", key_id)
        return AESGCM(s)


def delivered_keyrings(e: Any) -> Tuple[Dict[str, Keyring], Dict[str, Keyring]]:
    """(per namespace, per channel) keyrings from a ticket reply's
    {"keys":[{id, namespace|channel, key}]}; namespace keys act as master keys."""
    from .integrity import unb64
    ns: Dict[str, List[KeyLike]] = {}
    ch: Dict[str, List[KeyLike]] = {}
    for k in (e.get("keys") or []) if isinstance(e, dict) else []:
        if not isinstance(k, dict):
            raise ValueError("wsgate: bad encryption key in the ticket reply")
        entry = (k.get("id", ""), unb64(k.get("key", "")))
        if k.get("namespace") and not k.get("channel"):
            ns.setdefault(k["namespace"], []).append(entry)
        elif k.get("channel") and not k.get("namespace"):
            ch.setdefault(k["channel"], []).append(entry)
        else:
            raise ValueError("wsgate: bad encryption key in the ticket reply")
    return ({n: Keyring(v) for n, v in ns.items()}, {c: ChannelKeyring(c, v) for c, v in ch.items()})


def encode_payload(env: bytes) -> str:
    """The publication payload (a JSON string) for an envelope."""
    return base64.b64encode(env).decode("ascii")


def decode_payload(payload: Any) -> bytes:
    """The envelope in a publication payload; EnvelopeError when it is not one."""
    if not isinstance(payload, str):
        raise EnvelopeError("not an envelope")
    env = _b64decode(payload)
    parse_envelope(env)
    return env


@dataclass
class Encryption:
    """Client(encryption=…): seal and open the payloads of end_to_end channels.

    keys: application keys, the first seals, every key opens. channels: whether
    a channel is sealed with keys (its namespace has ``encryption: end_to_end``);
    required with keys. from_server: fetch, at every connection, the keys the
    ticket endpoint delivers for the end_to_end channels the token grants;
    channels with delivered keys use those."""

    keys: Sequence[KeyLike] = ()
    channels: Optional[Callable[[str], bool]] = None
    from_server: bool = False
