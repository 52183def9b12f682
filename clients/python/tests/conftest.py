"""Starts real wsgate servers for the tests: the binary is built once from this
repository (or taken from $WSGATETEST_BIN) and run with `serve --dev` and a config
file; URL, admin token and secret are read from the dev banner."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from typing import Any, Dict, Iterator, Optional

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
MASTER_KEY = "base64:" + base64.b64encode(bytes([7]) * 32).decode()
# A fixed token key next to the random dev key: tokens stay valid across a
# restart (the dev key changes on every start).
TOKEN_KEY = "base64:" + base64.b64encode(bytes([9]) * 32).decode()

BASE_CONFIG = f"""insecure_plaintext: true
abuse: {{max_strikes: 1000}}
auth:
  keys: [{{id: test, algorithms: [HS256], secret: "{TOKEN_KEY}"}}]
channels:
  namespaces:
    chat: {{client_publish: true, history_size: 100, history_ttl: 10m, presence: true, join_leave: true}}
    small: {{client_publish: true, history_size: 3, history_ttl: 10m}}
    secure: {{client_publish: true, history_size: 10, history_ttl: 10m, integrity: hmac}}
    signed: {{client_publish: true, history_size: 10, history_ttl: 10m, sign_output: true}}
    vault: {{client_publish: true, history_size: 100, history_ttl: 10m, encryption: end_to_end}}
integrity:
  master_keys: [{{id: k1, secret: "{MASTER_KEY}"}}]
"""

_ALL = ["chat:*", "small:*", "secure:*", "signed:*", "vault:*"]
CLAIMS = {"channels": {"sub": _ALL, "pub": _ALL}}


def _b64u(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def mint(secret: str, sub: str, ttl: int = 3600, claims: Optional[Dict[str, Any]] = None) -> str:
    key = base64.b64decode(secret[7:]) if secret.startswith("base64:") else secret.encode()
    now = int(time.time())
    head = _b64u(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "test"}).encode())
    body = _b64u(json.dumps({"sub": sub, "iat": now, "nbf": now - 1, "exp": now + ttl, "jti": os.urandom(8).hex(),
                             **(CLAIMS if claims is None else claims)}).encode())
    sig = _b64u(hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest())
    return f"{head}.{body}.{sig}"


class Server:
    def __init__(self, binary: str, config: str = BASE_CONFIG, listen: str = "127.0.0.1:0") -> None:
        self.dir = tempfile.mkdtemp(prefix="wsgate-py-")
        cfg = os.path.join(self.dir, "wsgate.yaml")
        with open(cfg, "w") as f:
            f.write(config)
        self.proc = subprocess.Popen([binary, "serve", "--dev", "--dev-unsafe-config", "--config", cfg, "--listen", listen,
                                      "--admin-listen", "127.0.0.1:0", "--log-level", "warn"],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        out = ""
        found: Dict[str, str] = {}
        done = threading.Event()

        def read() -> None:
            nonlocal out
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                out += line
                for k, rx in (("url", r"WebSocket URL:\s+(\S+)"), ("admin", r"Admin listener:\s+(\S+)\s+\(admin token: ([^)\s]+)\)"),
                              ("secret", r"Dev HMAC secret:\s+(\S+)")):
                    m = re.search(rx, line)
                    if m:
                        found[k] = m.group(1)
                        if k == "admin":
                            found["admin_token"] = m.group(2)
                if len(found) == 4:
                    done.set()
            done.set()

        threading.Thread(target=read, daemon=True).start()
        if not done.wait(60) or len(found) != 4:
            self.proc.kill()
            raise RuntimeError("no dev banner within 60 s:\n" + out)
        self.url, self.admin, self.admin_token, self.secret = found["url"], found["admin"], found["admin_token"], found["secret"]
        self.listen = self.url.split("://", 1)[1].split("/", 1)[0]

    def token(self, sub: str, ttl: int = 3600, claims: Optional[Dict[str, Any]] = None) -> str:
        return mint(TOKEN_KEY, sub, ttl, claims)

    def kick(self, conn_id: str) -> None:
        req = urllib.request.Request(f"{self.admin}/api/v1/connections/{conn_id}/kick", method="POST", data=b"",
                                     headers={"Authorization": "Bearer " + self.admin_token})
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 200

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def binary() -> Iterator[str]:
    b = os.environ.get("WSGATETEST_BIN")
    if b:
        yield b
        return
    d = tempfile.mkdtemp(prefix="wsgate-py-bin-")
    b = os.path.join(d, "wsgate")
    subprocess.run(["go", "build", "-o", b, "./cmd/wsgate"], cwd=REPO, check=True, timeout=600)
    yield b
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def server(binary: str) -> Iterator[Server]:
    s = Server(binary)
    yield s
    s.stop()
