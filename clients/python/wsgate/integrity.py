"""Signed messages (docs/integrity.md): the hmac-mode Signer, pop-mode Signer
(Ed25519, needs the ``cryptography`` package) and server signature checks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import struct
import threading
import time
from typing import Any, Callable, Dict, Optional, Tuple

__all__ = ["Signer", "b64", "unb64", "signing_input", "verify_server"]

MAX_SAFE_INTEGER = 2**53 - 1


def b64(b: bytes) -> str:
    """base64url without padding."""
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode("ascii")


def unb64(s: str) -> bytes:
    """Strict base64url without padding: one spelling per value."""
    if "=" in s or any(c not in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_" for c in s):
        raise ValueError("not unpadded base64url")
    b = base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
    if b64(b) != s:
        raise ValueError("non-canonical base64url")
    return b


def _lp(x: bytes) -> bytes:
    return struct.pack(">I", len(x)) + x


def signing_input(alg: str, kid: str, typ: str, seq: int, ts: int, nonce: bytes,
                  subject: str, conn_id: str, body: bytes) -> bytes:
    return (_lp(b"wsgate-msg-v1") + _lp(alg.encode()) + _lp(kid.encode()) + _lp(typ.encode())
            + struct.pack(">Q", seq) + struct.pack(">Q", ts) + _lp(nonce)
            + _lp(subject.encode()) + _lp(conn_id.encode()) + _lp(body))


def handshake_input(alg: str, jkt: str, host: str, path: str, ts: int, nonce: bytes) -> bytes:
    return (_lp(b"wsgate-pop-handshake-v1") + _lp(alg.encode()) + _lp(jkt.encode())
            + _lp(host.lower().encode()) + _lp(path.encode()) + struct.pack(">Q", ts) + _lp(nonce))


class Signer:
    """Seals messages for one connection at a time (``bind(conn_id)`` per
    connection; seq restarts at 1). Thread-safe; seal in the order you send."""

    def __init__(self, alg: str, kid: str, subject: str, sign: Callable[[bytes], bytes],
                 jwk: Optional[bytes] = None, now: Callable[[], int] = lambda: int(time.time() * 1000),
                 random: Callable[[int], bytes] = os.urandom) -> None:
        if not subject:
            raise ValueError("wsgate: signer needs a subject")
        self.alg, self.kid, self.subject, self._sign, self.jwk = alg, kid, subject, sign, jwk
        self._now, self._random = now, random
        self._lock = threading.Lock()
        self.conn_id = ""
        self.seq = 0

    @classmethod
    def hmac(cls, kid: str, key: str, subject: str, **kw: Any) -> "Signer":
        """key: base64url 32 bytes, as the ticket endpoint hands it out."""
        k = unb64(key)
        if not kid or len(k) != 32:
            raise ValueError("wsgate: hmac signer needs a kid and a 32-byte key")
        return cls("HS256", kid, subject, lambda m: hmac.new(k, m, hashlib.sha256).digest(), **kw)

    @classmethod
    def pop_ed25519(cls, private_key: Any, subject: str, **kw: Any) -> "Signer":
        """private_key: cryptography's Ed25519PrivateKey; its thumbprint must be the token's cnf.jkt."""
        from cryptography.hazmat.primitives import serialization  # optional dependency
        raw = private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        jwk = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": b64(raw)}, separators=(",", ":")).encode()
        kid = b64(hashlib.sha256(jwk).digest())
        return cls("EdDSA", kid, subject, private_key.sign, jwk=jwk, **kw)

    @property
    def thumbprint(self) -> str:
        return "" if self.alg == "HS256" else self.kid

    def bind(self, conn_id: str) -> None:
        with self._lock:
            self.conn_id, self.seq = conn_id, 0

    def seal(self, msg: str) -> str:
        """msg: the exact JSON text of an object with a string "type"."""
        obj = json.loads(msg)
        if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
            raise ValueError("wsgate: message must be a JSON object with a string type")
        body = msg.encode("utf-8")
        nonce = self._random(16)
        with self._lock:
            if not self.conn_id:
                raise ValueError("wsgate: seal before bind(conn_id)")
            if self.seq >= MAX_SAFE_INTEGER:
                raise ValueError("wsgate: seq exhausted; reconnect")
            seq, ts = self.seq + 1, self._now()
            mac = self._sign(signing_input(self.alg, self.kid, obj["type"], seq, ts, nonce, self.subject, self.conn_id, body))
            self.seq = seq
        return ('{"type":%s,"sig":{"v":1,"alg":"%s","kid":%s,"seq":%d,"ts":%d,"nonce":"%s","body":"%s","mac":"%s"}}'
                % (json.dumps(obj["type"]), self.alg, json.dumps(self.kid), seq, ts, b64(nonce), b64(body), b64(mac)))

    def handshake_params(self, host: str, path: str) -> Dict[str, str]:
        """pop_key, pop_ts, pop_nonce, pop_proof for the WebSocket URL's query."""
        if self.alg == "HS256" or self.jwk is None:
            raise ValueError("wsgate: handshake proof needs a pop signer")
        ts, nonce = self._now(), self._random(16)
        proof = self._sign(handshake_input(self.alg, self.kid, host, path, ts, nonce))
        return {"pop_key": b64(self.jwk), "pop_ts": str(ts), "pop_nonce": b64(nonce), "pop_proof": b64(proof)}


def verify_server(jwks: Dict[str, Any], text: str) -> Tuple[str, int]:
    """Checks a server-signed message ({"type":"signed",…}) against the JWKS
    from /.well-known/wsgate-keys.json; returns (body, ts). Needs ``cryptography``."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    m = json.loads(text)
    s = m.get("sig") if isinstance(m, dict) else None
    if m.get("type") != "signed" or not isinstance(s, dict) or s.get("v") != 1 or s.get("alg") != "EdDSA":
        raise ValueError("wsgate: not a server-signed message")
    key = next((k for k in jwks.get("keys", []) if k.get("kid") == s.get("kid") and k.get("crv") == "Ed25519"), None)
    if key is None:
        raise ValueError("wsgate: unknown server key")
    body = unb64(s["body"])
    data = _lp(b"wsgate-srv-v1") + _lp(b"EdDSA") + _lp(s["kid"].encode()) + struct.pack(">Q", s["ts"]) + _lp(body)
    Ed25519PublicKey.from_public_bytes(unb64(key["x"])).verify(unb64(s["mac"]), data)
    return body.decode("utf-8"), int(s["ts"])
