"""End-to-end tests of the Python client against real wsgate processes."""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any, Dict, List

import pytest

import wsgate
from conftest import BASE_CONFIG, REPO, Server

WAIT = 15.0


_made: List[wsgate.Client] = []


def run(coro: Any) -> Any:
    """Runs a test's coroutine, bounded; the clients it made with client() are
    closed at its end, also when it fails."""
    async def main() -> Any:
        try:
            return await asyncio.wait_for(coro, 120)
        finally:
            while _made:
                await _made.pop().close()
    return asyncio.run(main())


def client(s: Server, sub: str, **kw: Any) -> wsgate.Client:
    kw.setdefault("token", lambda: s.token(sub))
    c = wsgate.Client(s.url, min_backoff=0.02, max_backoff=0.2, **kw)
    _made.append(c)
    return c


class Inbox:
    def __init__(self) -> None:
        self.items: List[Any] = []
        self.changed = asyncio.Event()

    def push(self, x: Any) -> None:
        self.items.append(x)
        self.changed.set()

    async def take(self, n: int, within: float = WAIT) -> List[Any]:
        async def wait() -> None:
            while len(self.items) < n:
                self.changed.clear()
                await self.changed.wait()
        try:
            await asyncio.wait_for(wait(), within)
        except asyncio.TimeoutError:
            raise AssertionError(f"got {len(self.items)} of {n} items within {within}s: {self.items}") from None
        out, self.items = self.items[:n], self.items[n:]
        return out


def events(c: wsgate.Client, kind: str) -> Inbox:
    box = Inbox()
    c.on(kind, box.push)
    return box


def texts(msgs: List[Dict[str, Any]]) -> str:
    return ",".join(m["payload"]["text"] for m in msgs)


def seq(p: str, n: int) -> str:
    return ",".join(f"{p}{i}" for i in range(1, n + 1))


async def publish_n(c: wsgate.Client, ch: str, p: str, n: int) -> None:
    for i in range(1, n + 1):
        await c.publish(ch, {"text": f"{p}{i}"})


async def connected(*cs: wsgate.Client) -> None:
    for c in cs:
        await c.connect()


async def subscribed(c: wsgate.Client, channel: str) -> "tuple[Inbox, Inbox]":
    """Connects c and subscribes it to channel: its messages and its error events."""
    await c.connect()
    box, errs = Inbox(), events(c, "error")
    await c.subscribe(channel, on_message=box.push)
    return box, errs


async def nothing_more(c: wsgate.Client, inbox: Inbox) -> None:
    """After a ping round trip anything in flight to c has arrived: inbox got
    nothing more."""
    await c.ping()
    assert inbox.items == []


async def kicked(s: Server, c: wsgate.Client) -> Any:
    """Kicks c's connection by the admin API; returns its disconnected event."""
    disc = events(c, "disconnected")
    assert c.welcome is not None
    s.kick(c.welcome["conn_id"])
    (d,) = await disc.take(1)
    return d


class Gate:
    """Holds a client away: the token getter blocks after its first call until released."""

    def __init__(self, s: Server, sub: str) -> None:
        self.calls, self.s, self.sub = 0, s, sub
        self.opened = asyncio.Event()

    async def token(self) -> str:
        self.calls += 1
        if self.calls > 1:
            await self.opened.wait()
        return self.s.token(self.sub)


async def gated_subscriber(s: Server, sub: str, pub_sub: str, channel: str, before: int, **kw: Any) -> Any:
    """A client held by a Gate, subscribed to channel (kw go to subscribe), and
    a connected publisher that has sent it `before` messages: (gate, client,
    publisher, inbox, subscription)."""
    g = Gate(s, sub)
    a, pub = client(s, sub, token=g.token), client(s, pub_sub)
    await connected(a, pub)
    inbox = Inbox()
    subscription = await a.subscribe(channel, on_message=inbox.push, **kw)
    await publish_n(pub, channel, "before", before)
    await inbox.take(before)
    return g, a, pub, inbox, subscription


def test_credential_placements(server: Server) -> None:
    async def main() -> None:
        for cred in ("header", "subprotocol", "ticket"):
            c = client(server, f"py-{cred}", credential=cred)
            w = await c.connect()
            assert w["user"] == f"py-{cred}" and w["expires_at"] > time.time() * 1000
            await c.ping()
            await c.close()
    run(main())


def test_pubsub_presence_history_errors(server: Server) -> None:
    async def main() -> None:
        a, b = client(server, "py-alice"), client(server, "py-bob")
        await connected(a, b)
        inbox = Inbox()
        sub = await a.subscribe("chat:py", on_message=inbox.push)
        await b.subscribe("chat:py")
        await publish_n(b, "chat:py", "m", 3)
        assert texts(await inbox.take(3)) == seq("m", 3)
        assert sub.position.offset == 3
        assert len(await sub.presence()) == 2
        h = await sub.history(since=wsgate.Position(1, sub.position.epoch))
        assert [p["offset"] for p in h["publications"]] == [2, 3]
        with pytest.raises(wsgate.ServerError) as e:
            await a.subscribe("nope:x")
        assert e.value.code == "unknown_namespace"
        with pytest.raises(wsgate.ServerError) as e:
            await a.command("add", {"a": 1})
        assert e.value.code == "command_unavailable"
        await sub.unsubscribe()
        await publish_n(b, "chat:py", "after", 1)
        await nothing_more(a, inbox)
    run(main())


def test_kick_reconnect_recovers_exactly(server: Server) -> None:
    async def main() -> None:
        g, a, pub, inbox, _ = await gated_subscriber(server, "py-kicked", "py-pub", "chat:pk", 2)
        conn = events(a, "connected")
        d = await kicked(server, a)
        assert (d.code, d.reason, d.will_reconnect) == (1008, "kicked", True)
        await publish_n(pub, "chat:pk", "away", 5)
        a.send("chat", channel="chat:pk", text="queued")
        g.opened.set()
        await conn.take(1)
        assert texts(await inbox.take(6)) == seq("away", 5) + ",queued"
        await publish_n(pub, "chat:pk", "live", 1)
        assert texts(await inbox.take(1)) == "live1"
        await nothing_more(a, inbox)
    run(main())


def test_beyond_history_recovery_failed(server: Server) -> None:
    async def main() -> None:
        rfs = Inbox()
        g, a, pub, inbox, sub = await gated_subscriber(server, "py-gap", "py-pub2", "small:pg", 1, on_recovery_failed=rfs.push)
        await kicked(server, a)
        await publish_n(pub, "small:pg", "away", 10)
        g.opened.set()
        (rf,) = await rfs.take(1)
        assert rf.previous.offset == 1 and rf.position.offset == 11
        await publish_n(pub, "small:pg", "live", 1)
        assert texts(await inbox.take(1)) == "live1"
        assert sub.position.offset == 12
    run(main())


def test_token_refresh_keeps_subscription(server: Server) -> None:
    async def main() -> None:
        a = client(server, "py-short", token=lambda: server.token("py-short", ttl=3))
        w = await a.connect()
        inbox = Inbox()
        await a.subscribe("chat:pt", on_message=inbox.push)
        refreshed, disc = events(a, "refreshed"), events(a, "disconnected")
        for r in await refreshed.take(2):
            assert r.expires_at > w["expires_at"]
        assert time.time() * 1000 > w["expires_at"]
        assert disc.items == []
        assert a.welcome is not None and a.welcome["conn_id"] == w["conn_id"]
        pub = client(server, "py-pub3")
        await pub.connect()
        await publish_n(pub, "chat:pt", "m", 1)
        await inbox.take(1)
    run(main())


def test_401_no_loop(server: Server) -> None:
    async def main() -> None:
        for cred in ("header", "ticket"):
            calls = 0

            def tok() -> str:
                nonlocal calls
                calls += 1
                return "not.a.jwt"
            c = client(server, "x", credential=cred, token=tok)
            with pytest.raises(wsgate.HandshakeError) as e:
                await c.connect()
            assert e.value.status == 401 and e.value.terminal
            assert calls == 1 and c.state == "closed"
    run(main())


def test_signed_hmac(server: Server) -> None:
    async def main() -> None:
        a = client(server, "py-signer", integrity="hmac")
        inbox, _ = await subscribed(a, "secure:ps")
        await publish_n(a, "secure:ps", "signed", 2)
        assert texts(await inbox.take(2)) == seq("signed", 2)
        plain = client(server, "py-plain")
        await plain.connect()
        with pytest.raises(wsgate.ServerError) as e:
            await plain.publish("secure:ps", {"text": "x"})
        assert e.value.code == "integrity_unsigned"
        # A forged key (a tampering proxy): the refusal has no ref, so it is an error event.
        f = client(server, "py-forger", integrity="hmac")
        orig = f._ticket

        async def forged(tok: str) -> Dict[str, Any]:
            t = await orig(tok)
            t["integrity"]["key"] = wsgate.integrity.b64(bytes([1]) * 32)
            return t
        f._ticket = forged  # type: ignore[method-assign]
        await f.connect()
        errs = events(f, "error")
        with pytest.raises(wsgate.TimeoutError):
            await f.publish("secure:ps", {"text": "forged"}, timeout=1.5)
        (ev,) = await errs.take(1)
        assert isinstance(ev.error, wsgate.ServerError) and ev.error.code == "integrity_bad_signature"
        await nothing_more(a, inbox)
    run(main())


def test_bounded_queue_and_closed(server: Server) -> None:
    async def main() -> None:
        g = Gate(server, "py-queuer")
        a = client(server, "py-queuer", token=g.token, queue_size=2)
        await a.connect()
        conn = events(a, "connected")
        await kicked(server, a)
        a.send("chat", text="1")
        a.send("chat", text="2")
        await asyncio.sleep(0)  # let the two sends queue
        with pytest.raises(wsgate.QueueFullError):
            a.send("chat", text="3")
        g.opened.set()
        await conn.take(1)
        await a.close()
        with pytest.raises(wsgate.ClosedError):
            await a.ping()
    run(main())


def test_429_retry_after(binary: str) -> None:
    s = Server(binary, BASE_CONFIG + "limits: {handshake_rate: {rate: 0.5, burst: 1}}\n")

    async def main() -> None:
        first = client(s, "py-spender")
        await first.connect()
        a = client(s, "py-patient")
        disc = events(a, "disconnected")
        t0 = time.monotonic()
        await a.connect()
        took = time.monotonic() - t0
        (d,) = await disc.take(1)
        assert isinstance(d.error, wsgate.HandshakeError) and d.error.status == 429
        assert d.error.retry_after >= 1 and d.delay >= d.error.retry_after
        assert took >= d.error.retry_after
    try:
        run(main())
    finally:
        s.stop()


def test_restart_1001_new_epoch(binary: str) -> None:
    s1 = Server(binary)
    servers = [s1]

    async def main() -> None:
        a = wsgate.Client(s1.url, token=lambda: s1.token("py-restart"), min_backoff=0.05, max_backoff=0.3)
        await a.connect()
        rfs = Inbox()
        await a.subscribe("chat:pr", on_recovery_failed=rfs.push)
        await a.publish("chat:pr", {"text": "x"})
        disc = events(a, "disconnected")
        await asyncio.to_thread(s1.stop)
        (d,) = await disc.take(1)
        assert d.code == 1001 and d.delay == 0
        servers.append(await asyncio.to_thread(Server, binary, BASE_CONFIG, s1.listen))
        (rf,) = await rfs.take(1, 30)
        assert rf.position.epoch != rf.previous.epoch
        await a.close()
    try:
        run(main())
    finally:
        for s in servers:
            s.stop()


def integrity_vectors() -> Dict[str, Any]:
    """The signing test vectors every wsgate client checks itself against."""
    with open(os.path.join(REPO, "internal", "conn", "integrity", "testdata", "vectors.json")) as f:
        v: Dict[str, Any] = json.load(f)
    return v


def test_vectors_hmac() -> None:
    for h in integrity_vectors()["hmac"]:
        s = wsgate.Signer.hmac(h["kid"], h["derived_key_b64"], h["subject"], now=lambda: h["ts"],
                               random=lambda n: wsgate.integrity.unb64(h["nonce_b64"]))
        s.bind(h["conn_id"])
        s.seq = h["seq"] - 1
        assert s.seal(h["body"]) == h["envelope"], h["name"]


def test_pop_ed25519(binary: str) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    s = Server(binary, BASE_CONFIG.replace("integrity:\n", "integrity:\n  mode: pop\n"))

    async def main() -> None:
        key = Ed25519PrivateKey.generate()
        jkt = wsgate.Signer.pop_ed25519(key, "x").thumbprint
        claims = {"cnf": {"jkt": jkt}, "channels": {"sub": ["chat:*"], "pub": ["chat:*"]}}
        a = client(s, "py-popper", integrity="pop", pop_key=key, token=lambda: s.token("py-popper", claims=claims))
        inbox, _ = await subscribed(a, "chat:pp")
        await a.publish("chat:pp", {"text": "pop1"})
        assert texts(await inbox.take(1)) == "pop1"
        b = client(s, "py-popper", integrity="pop", pop_key=Ed25519PrivateKey.generate(),
                   token=lambda: s.token("py-popper", claims=claims))
        with pytest.raises(wsgate.HandshakeError) as e:
            await b.connect()
        assert e.value.status == 401
    try:
        run(main())
    finally:
        s.stop()


def test_vectors_pop_ed25519() -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    p = next(x for x in integrity_vectors()["pop"] if x["alg"] == "EdDSA")
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(p["private_hex"]))
    s = wsgate.Signer.pop_ed25519(key, p["subject"], now=lambda: p["ts"], random=lambda n: wsgate.integrity.unb64(p["nonce_b64"]))
    assert s.thumbprint == p["jkt"] and s.jwk == p["jwk"].encode()
    s.bind(p["conn_id"])
    s.seq = p["seq"] - 1
    assert s.seal(p["body"]) == p["envelope"]


def test_verify_server_signed_output(server: Server) -> None:
    async def main() -> None:
        a = client(server, "py-verifier", verify_server=True)
        inbox, errs = await subscribed(a, "signed:pn")
        await publish_n(a, "signed:pn", "s", 2)
        assert texts(await inbox.take(2)) == seq("s", 2)
        assert errs.items == []
    run(main())


def test_4001_reconnects_at_once(server: Server) -> None:
    async def main() -> None:
        calls = 0

        def tok() -> str:
            nonlocal calls
            calls += 1
            if calls == 2:
                raise RuntimeError("token service down")
            return server.token("py-expiring", ttl=2)
        a = client(server, "py-expiring", token=tok)
        inbox, _ = await subscribed(a, "chat:pe")
        disc, conn = events(a, "disconnected"), events(a, "connected")
        (d,) = await disc.take(1)
        assert (d.code, d.will_reconnect, d.delay) == (4001, True, 0)
        await conn.take(1)
        pub = client(server, "py-pub4")
        await pub.connect()
        await publish_n(pub, "chat:pe", "m", 1)
        assert texts(await inbox.take(1)) == "m1"
    run(main())
