"""End-to-end encryption in the Python client (docs/encryption.md): the shared
test vector byte for byte, then a real wsgate process relaying envelopes
between Python clients, and between a Python and a JavaScript client."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import subprocess
from typing import Any, Dict, List

import pytest

import wsgate
from wsgate import encryption as e2e
from conftest import REPO, Server
import test_client
from test_client import run, subscribed

VECTOR = json.load(open(os.path.join(REPO, "internal", "state", "encrypt", "testdata", "vector.json")))
K1 = wsgate.EncryptionKey("app1", b"a" * 32)
K2 = wsgate.EncryptionKey("app2", b"b" * 32)


def is_vault(ch: str) -> bool:
    return ch.startswith("vault:")


def test_vector() -> None:
    secret = bytes.fromhex(VECTOR["master_secret_hex"])
    ck = e2e.channel_key(secret, VECTOR["key_id"], VECTOR["channel"])
    assert ck.hex() == VECTOR["channel_key_hex"]
    nonce = bytes.fromhex(VECTOR["nonce_hex"])
    pt = VECTOR["plaintext"].encode()
    env = e2e.seal_envelope(ck, VECTOR["key_id"], VECTOR["channel"], pt, nonce)
    assert env.hex() == VECTOR["envelope_hex"]
    ring = wsgate.Keyring([(VECTOR["key_id"], "base64:" + base64.b64encode(secret).decode())])
    assert ring.seal(VECTOR["channel"], pt, nonce).hex() == VECTOR["envelope_hex"]
    assert ring.open(VECTOR["channel"], env) == (pt, VECTOR["key_id"])
    assert e2e.open_envelope(ck, VECTOR["channel"], env) == pt
    # Another channel, a flipped bit anywhere, a truncated envelope: nothing opens.
    with pytest.raises(e2e.EnvelopeError):
        ring.open("trades:gbpusd", env)
    for i in range(len(env)):
        bad = bytearray(env)
        bad[i] ^= 1
        with pytest.raises(e2e.EnvelopeError):
            ring.open(VECTOR["channel"], bytes(bad))
    with pytest.raises(e2e.EnvelopeError):
        ring.open(VECTOR["channel"], env[:-17])
    fresh = ring.seal(VECTOR["channel"], b"{}")
    assert fresh[7:19] != nonce and ring.open(VECTOR["channel"], fresh)[0] == b"{}"


def test_payload_encoding_and_keyring_checks() -> None:
    env = bytes.fromhex(VECTOR["envelope_hex"])
    assert e2e.decode_payload(e2e.encode_payload(env)) == env
    good = e2e.encode_payload(env)
    for bad in [good.rstrip("="), good[:-2] + "B=", "-_" + good[2:], good + "\n", {"x": 1}, 7, "AQ=="]:
        with pytest.raises(e2e.EnvelopeError):
            e2e.decode_payload(bad)
    for keys in ([], [("bad id", b"x" * 32)], [("k", b"x" * 31)], [("k", b"x" * 32), ("k", b"y" * 32)], [("k", "a password")]):
        with pytest.raises(ValueError):
            wsgate.Keyring(keys)
    with pytest.raises(ValueError):
        wsgate.Client("ws://127.0.0.1:1/ws", token=lambda: "t", encryption=wsgate.Encryption([K1], None))  # type: ignore[arg-type]


def client(s: Server, sub: str, keys: Any = None, **kw: Any) -> wsgate.Client:
    """test_client's client, sealing vault: channels with keys (none: keyless)."""
    return test_client.client(s, sub, encryption=wsgate.Encryption(keys, is_vault) if keys is not None else None, **kw)


async def holders(s: Server, ch: str, reader: str, writer: str) -> Any:
    """Two clients holding K1 on ch: (reader, writer, the reader's messages and
    errors); the reader is subscribed, the writer connected."""
    rc, wc = client(s, reader, [K1]), client(s, writer, [K1])
    box, errs = await subscribed(rc, ch)
    await wc.connect()
    return rc, wc, box, errs


def test_exchange_keyless_and_wrong_key(server: Server) -> None:
    async def main() -> None:
        ch = "vault:py-desk"
        alice, bob, a, _ = await holders(server, ch, "alice", "bob")
        eve, mallory = client(server, "eve"), client(server, "mallory", [("app1", b"m" * 32)])
        e, _ = await subscribed(eve, ch)
        m, merrs = await subscribed(mallory, ch)
        marker = "PLAINTEXT-MARKER-py"
        await bob.publish(ch, {"note": marker, "n": 1})
        [got] = await a.take(1)
        assert got["payload"] == {"note": marker, "n": 1} and got["from"] == "bob"
        [raw] = await e.take(1)
        assert isinstance(raw["payload"], str) and marker not in raw["payload"]
        env = e2e.decode_payload(raw["payload"])
        assert marker.encode() not in env and e2e.parse_envelope(env)[0] == "app1"
        [ev] = await merrs.take(1)
        err = ev.error
        assert isinstance(err, wsgate.NotEncryptedError), err
        assert (err.channel, err.offset, err.key_id) == (ch, got["offset"], "app1")
        assert m.items == []
        h = await alice.history(ch)
        assert [p["payload"]["note"] for p in h["publications"]] == [marker]
        with pytest.raises(wsgate.NotEncryptedError):
            await mallory.history(ch)
        assert isinstance((await eve.history(ch))["publications"][0]["payload"], str)
        # Channels outside the predicate are not sealed.
        await alice.subscribe("chat:py-open", on_message=a.push)
        await alice.publish("chat:py-open", {"text": "clear"})
        assert (await a.take(1))[0]["payload"] == {"text": "clear"}
    run(main())


def test_tampered_refused_stream_goes_on(server: Server) -> None:
    async def main() -> None:
        ch = "vault:py-tamper"
        alice, bob, a, errs = await holders(server, ch, "alice2", "bob2")
        raw = client(server, "mallory2")
        await raw.connect()
        ring = wsgate.Keyring([K1])
        other = ring.seal("vault:elsewhere", b'{"x":1}')
        flipped = bytearray(ring.seal(ch, b'{"x":2}'))
        flipped[-1] ^= 1
        await raw.publish(ch, e2e.encode_payload(other))
        await raw.publish(ch, e2e.encode_payload(bytes(flipped)))
        for bad in ("not base64!", {"x": "plaintext"}):
            with pytest.raises(wsgate.ServerError) as ei:
                await raw.publish(ch, bad)
            assert ei.value.code == "invalid_message"
        got = await errs.take(2)
        assert all(isinstance(ev.error, wsgate.NotEncryptedError) for ev in got)
        assert [ev.error.offset for ev in got] == [1, 2]
        await bob.publish(ch, {"x": 3})
        [m] = await a.take(1)
        assert m["payload"] == {"x": 3} and m["offset"] == 3 and a.items == []
    run(main())


def test_rotation_mid_stream(server: Server) -> None:
    async def main() -> None:
        ch = "vault:py-rotate"
        rx, tx, r, rerrs = await holders(server, ch, "receiver", "sender")
        spy = client(server, "spy")
        s, _ = await subscribed(spy, ch)
        for i in range(1, 4):
            await tx.publish(ch, {"i": i})
        rx.set_encryption_keys([K1, K2])  # step 1: readers learn app2
        tx.set_encryption_keys([K2, K1])  # step 2: the sender seals with it
        for i in range(4, 7):
            await tx.publish(ch, {"i": i})
        assert [m["payload"]["i"] for m in await r.take(6)] == [1, 2, 3, 4, 5, 6]
        ids = [e2e.parse_envelope(e2e.decode_payload(m["payload"]))[0] for m in await s.take(6)]
        assert ids == ["app1"] * 3 + ["app2"] * 3
        h = await rx.history(ch)
        assert [p["payload"]["i"] for p in h["publications"]] == [1, 2, 3, 4, 5, 6]
        rx.set_encryption_keys([K2])  # app1 retired: what it sealed does not open
        with pytest.raises(wsgate.NotEncryptedError) as ei:
            await rx.history(ch)
        assert ei.value.key_id == "app1"
        since = wsgate.Position(3, h["epoch"])
        assert [p["payload"]["i"] for p in (await rx.history(ch, since=since))["publications"]] == [4, 5, 6]
        assert rerrs.items == []
    run(main())


def _node_peer() -> List[str]:
    node = shutil.which("node")
    peer = os.path.join(REPO, "clients", "js", "test", "peer.js")
    if node is None or not os.path.isdir(os.path.join(REPO, "clients", "js", "node_modules", "ws")):
        if os.environ.get("WSGATETEST_REQUIRE_EXTERNAL"):
            pytest.fail("node and clients/js/node_modules (npm ci) are required")
        pytest.skip("node or clients/js/node_modules missing (run npm ci in clients/js)")
    return [node, peer]


def test_python_and_javascript_exchange(server: Server) -> None:
    """A Python and a JavaScript client with the same key read each other's
    sealed messages through wsgate."""
    cmd = _node_peer()

    async def main() -> None:
        ch = "vault:interop"
        py, errs = None, None
        py = client(server, "py", [K2, K1])
        box, errs = await subscribed(py, ch)
        cfg = {"url": server.url, "token": server.token("js"), "channel": ch, "expect": 6,
               "keys": [{"id": "app1", "secret": "base64:" + base64.b64encode(b"a" * 32).decode()},
                        {"id": "app2", "secret": "base64:" + base64.b64encode(b"b" * 32).decode()}],
               "publish": [{"from": "js", "i": i} for i in range(1, 4)]}
        proc = await asyncio.create_subprocess_exec(*cmd, json.dumps(cfg), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            got = await box.take(3, 30)
            assert [m["payload"] for m in got] == [{"from": "js", "i": i} for i in range(1, 4)]
            for i in range(1, 4):
                await py.publish(ch, {"from": "py", "i": i, "text": "héllo"})  # sealed under app2
            out, err = await asyncio.wait_for(proc.communicate(), 40)
            lines: List[Dict[str, Any]] = [json.loads(x) for x in out.decode().splitlines() if x.strip()]
            assert proc.returncode == 0, (out, err)
            assert lines[0] == {"ready": True}
            msgs = [x for x in lines[1:] if "payload" in x]
            assert [x.get("error") for x in lines if "error" in x] == []
            assert [m["payload"] for m in msgs] == ([{"from": "js", "i": i} for i in range(1, 4)]
                                                    + [{"from": "py", "i": i, "text": "héllo"} for i in range(1, 4)])
            assert [m["from"] for m in msgs] == ["js"] * 3 + ["py"] * 3
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert errs.items == []
    run(main())


def test_keys_from_the_ticket_endpoint(binary: str) -> None:
    """encryption.end_to_end_keys: the ticket reply carries keys for exactly the
    end_to_end channels the token grants; from_server clients exchange with them."""
    import urllib.request
    from conftest import BASE_CONFIG
    e1 = "base64:" + base64.b64encode(b"E" * 32).decode()
    s = Server(binary, BASE_CONFIG + f'encryption: {{end_to_end_keys: ["e1={e1}"]}}\n')
    try:
        def grant(*pats: str) -> Dict[str, Any]:
            return {"channels": {"sub": list(pats), "pub": list(pats)}}

        def ticket_keys(*pats: str) -> List[str]:
            req = urllib.request.Request(s.url.replace("ws", "http", 1).rsplit("/", 1)[0] + "/v1/tickets", method="POST", data=b"",
                                         headers={"Authorization": "Bearer " + s.token("t", claims=grant(*pats))})
            with urllib.request.urlopen(req, timeout=10) as r:
                assert r.headers.get("Cache-Control") == "no-store"
                body = json.loads(r.read())
            return [f'{k["id"]}/{k.get("namespace") or k.get("channel")}' for k in (body.get("encryption") or {}).get("keys", [])]

        assert ticket_keys("vault:*") == ["e1/vault"]
        assert ticket_keys("vault:x", "chat:*") == ["e1/vault:x"]
        assert ticket_keys("vault:x*") == [] and ticket_keys("chat:*") == []

        async def main() -> None:
            ch = "vault:x"

            def mk(sub: str, *pats: str, enc: Any = wsgate.Encryption(from_server=True)) -> wsgate.Client:
                return test_client.client(s, sub, token=lambda: s.token(sub, claims=grant(*pats)), encryption=enc)
            whole, exact, spy = mk("whole", "vault:*"), mk("exact", ch), mk("spy", ch, enc=None)
            w, werrs = await subscribed(whole, ch)
            x, xerrs = await subscribed(exact, ch)
            sp, _ = await subscribed(spy, ch)
            await whole.publish(ch, {"from": "whole"})
            await exact.publish(ch, {"from": "exact"})
            assert [m["payload"]["from"] for m in await w.take(2)] == ["whole", "exact"]
            assert [m["payload"]["from"] for m in await x.take(2)] == ["whole", "exact"]
            ids = [e2e.parse_envelope(e2e.decode_payload(m["payload"]))[0] for m in await sp.take(2)]
            assert ids == ["e1", "e1"] and werrs.items == [] and xerrs.items == []
        run(main())
    finally:
        s.stop()
