"""The reconnecting asyncio client. Shared behaviour: docs/clients.md."""

from __future__ import annotations

import asyncio
import builtins
import inspect
import json
import logging
import random
import re
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Dict, List, Optional, Sequence, Tuple, Union

import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatusCode

from .encryption import (Encryption, EncryptionKey, EnvelopeError, Keyring, KeyLike, decode_payload, delivered_keyrings,
                         encode_payload)
from .integrity import Signer, verify_server, unb64

log = logging.getLogger("wsgate")

SUBPROTOCOL = "wsgate.v1"
HANDSHAKE_TIMEOUT = 10.0
_TOKEN_RE = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")

TokenGetter = Callable[[], Union[str, Awaitable[str]]]


# ---- errors (same names as the Go and JavaScript clients) ------------------------


class WsgateError(Exception):
    """Base of the client's errors."""


class HandshakeError(WsgateError):
    """The server refused the connection (or the ticket) with an HTTP status."""

    def __init__(self, status: int, code: str = "", retry_after: float = 0.0) -> None:
        super().__init__(f"wsgate: handshake refused: {status} {code}".rstrip())
        self.status, self.code, self.retry_after = status, code, retry_after

    @property
    def terminal(self) -> bool:
        """401, and 403 other than a ban (a ban carries Retry-After), cannot be retried."""
        if self.status in (0, 401):
            return True
        return self.status == 403 and not (self.code == "banned" or (self.code == "" and self.retry_after > 0))


class ServerError(WsgateError):
    """An error reply {"type":"error","code":…} to a request."""

    def __init__(self, reply: Dict[str, Any]) -> None:
        self.code: str = reply.get("code", "")
        self.message: str = reply.get("message", "")
        self.path: str = reply.get("path", "")
        self.retry_after: float = reply.get("retry_after_ms", 0) / 1000.0
        super().__init__(f"wsgate: server error: {self.code}" + (f": {self.message}" if self.message else ""))


class CloseError(WsgateError):
    """How the server ended a connection."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"wsgate: connection closed: {code} {reason}")
        self.code, self.reason = code, reason


class TimeoutError(WsgateError, builtins.TimeoutError):  # noqa: A001 - same name in every client
    """A request got no reply in time."""


class ClosedError(WsgateError):
    """The client was closed."""


class QueueFullError(WsgateError):
    """Disconnected, and the send queue is full; nothing queued was dropped."""


class DisconnectedError(WsgateError):
    """The connection a request was sent on ended before the reply."""


class RecoveryFailedError(WsgateError):
    """Reaches "error" listeners when a subscription has no on_recovery_failed."""

    def __init__(self, rf: "RecoveryFailed") -> None:
        super().__init__(f"wsgate: recovery failed on {rf.channel}")
        self.recovery = rf


class NotEncryptedError(WsgateError):
    """A payload of an end-to-end channel did not open (sealed under a key this
    client lacks, tampered, or not an envelope at all). The message is dropped and
    this reaches "error" listeners; history() raises it."""

    def __init__(self, channel: str, offset: int, epoch: str, key_id: str = "", reason: str = "") -> None:
        super().__init__(f"wsgate: end-to-end payload does not open: {channel} offset {offset}" + (f": {reason}" if reason else ""))
        self.channel, self.offset, self.epoch, self.key_id, self.reason = channel, offset, epoch, key_id, reason


# ---- values ----------------------------------------------------------------------


@dataclass
class Position:
    offset: int = 0
    epoch: str = ""


@dataclass
class RecoveryFailed:
    channel: str
    position: Position
    previous: Position


@dataclass
class Event:
    """A client event: connecting, connected, disconnected, error, refreshed."""

    kind: str
    welcome: Optional[Dict[str, Any]] = None
    code: int = 0
    reason: str = ""
    will_reconnect: bool = False
    delay: float = 0.0
    error: Optional[BaseException] = None
    expires_at: int = 0


def _backoff(lo: float, hi: float, attempt: int) -> float:
    """Exponential backoff with full jitter, capped."""
    return random.uniform(0, min(hi, lo * (2 ** min(attempt, 30))))


async def _call(fn: TokenGetter) -> str:
    v = fn()
    if inspect.isawaitable(v):
        v = await v
    return str(v)


class _Conn:
    def __init__(self, ws: Any, welcome: Dict[str, Any], signer: Optional[Signer], jwks: Optional[Dict[str, Any]]) -> None:
        self.ws, self.welcome, self.signer, self.jwks = ws, welcome, signer, jwks
        self.welcome_at = time.time()
        self.lock = asyncio.Lock()  # orders seal + send


@dataclass
class _Pending:
    future: "asyncio.Future[Dict[str, Any]]"
    conn: Optional[_Conn] = None
    on_reply: Optional[Callable[[Optional[Dict[str, Any]], Optional[BaseException]], None]] = None


class Subscription:
    """A channel subscription that survives reconnects."""

    def __init__(self, client: "Client", channel: str, since: Optional[Position], token: Optional[TokenGetter],
                 on_message: Optional[Callable[[Dict[str, Any]], Any]],
                 on_recovery_failed: Optional[Callable[[RecoveryFailed], Any]],
                 on_join: Optional[Callable[[Dict[str, Any]], Any]], on_leave: Optional[Callable[[Dict[str, Any]], Any]],
                 on_error: Optional[Callable[[BaseException], Any]]) -> None:
        self.client, self.channel, self._token = client, channel, token
        self.on_message, self.on_recovery_failed = on_message, on_recovery_failed
        self.on_join, self.on_leave, self.on_error = on_join, on_leave, on_error
        self._pos = Position(since.offset, since.epoch) if since else Position()
        self._has_pos = since is not None
        self._first: Optional["asyncio.Future[None]"] = None

    @property
    def position(self) -> Position:
        """The last position delivered; save it to resume with since=."""
        return Position(self._pos.offset, self._pos.epoch)

    async def unsubscribe(self, timeout: Optional[float] = None) -> None:
        c = self.client
        if c._subs.get(self.channel) is not self:
            return
        del c._subs[self.channel]
        if c._cur is None:
            return
        try:
            await c.request("unsubscribe", timeout=timeout, channel=self.channel)
        except ServerError as e:
            if e.code != "not_subscribed":
                raise

    async def publish(self, payload: Any, timeout: Optional[float] = None) -> Position:
        return await self.client.publish(self.channel, payload, timeout=timeout)

    async def history(self, since: Optional[Position] = None, limit: int = 0, timeout: Optional[float] = None) -> Dict[str, Any]:
        return await self.client.history(self.channel, since=since, limit=limit, timeout=timeout)

    async def presence(self, timeout: Optional[float] = None) -> List[Dict[str, Any]]:
        return await self.client.presence(self.channel, timeout=timeout)


class Client:
    """A wsgate connection that stays up.

        client = Client("wss://host/ws", token=get_jwt)
        await client.connect()
        sub = await client.subscribe("chat:lobby", on_message=print, on_recovery_failed=resync)
        await sub.publish({"text": "hi"})
        await client.close()

    Handlers (on_message, listeners added with on()) are called in order on the
    client's reader task; a coroutine they return is scheduled as a task.
    """

    def __init__(self, url: str, *, token: TokenGetter, credential: str = "header",
                 ssl_context: Optional[ssl.SSLContext] = None, cafile: Optional[str] = None,
                 min_backoff: float = 0.25, max_backoff: float = 30.0, request_timeout: float = 10.0,
                 queue_size: int = 256, integrity: str = "", pop_key: Any = None, verify_server: bool = False,
                 ticket_url: str = "", extra_headers: Optional[Dict[str, str]] = None,
                 max_size: int = 1 << 20, encryption: Optional[Encryption] = None) -> None:
        if credential not in ("header", "subprotocol", "ticket"):
            raise ValueError("wsgate: credential must be header, subprotocol or ticket")
        if integrity not in ("", "hmac", "pop"):
            raise ValueError("wsgate: integrity must be '', 'hmac' or 'pop'")
        if integrity == "pop" and pop_key is None:
            raise ValueError("wsgate: pop integrity needs pop_key (an Ed25519PrivateKey)")
        u = urllib.parse.urlsplit(url)
        q = urllib.parse.parse_qs(u.query)
        if "token" in q or "access_token" in q:
            raise ValueError("wsgate: never put a token in the URL")
        if u.scheme not in ("ws", "wss"):
            raise ValueError("wsgate: url scheme must be ws or wss")
        self.url, self.credential, self.integrity = url, credential, integrity
        app_keys = encryption is not None and (bool(encryption.keys) or not encryption.from_server)
        if app_keys and not callable(encryption.channels):  # type: ignore[union-attr]
            raise ValueError("wsgate: Encryption.channels (channel -> bool) is required with keys")
        # The application's end-to-end keys and which channels they seal, and the
        # keys the ticket endpoint delivered at the last connection (from_server).
        self._e2e: Optional[Keyring] = Keyring(encryption.keys) if app_keys else None  # type: ignore[union-attr]
        self._e2e_channels = encryption.channels if encryption is not None else None
        self._e2e_from_server = encryption is not None and encryption.from_server
        self._delivered: Optional[Tuple[Dict[str, Keyring], Dict[str, Keyring]]] = None
        self._token, self._pop_key, self._verify = token, pop_key, verify_server
        if ssl_context is None and u.scheme == "wss":
            ssl_context = ssl.create_default_context(cafile=cafile)  # verification on
        self._ssl = ssl_context
        origin = ("https" if u.scheme == "wss" else "http") + "://" + u.netloc
        self._origin = origin
        self._ticket_url = ticket_url or origin + "/v1/tickets"
        self._min, self._max = min_backoff, max(max_backoff, min_backoff)
        self._req_timeout, self._queue_size = request_timeout, queue_size
        self._headers = dict(extra_headers or {})
        self._max_size = max_size
        self.state = "disconnected"
        self.welcome: Optional[Dict[str, Any]] = None
        self.error: Optional[BaseException] = None
        self._listeners: Dict[str, List[Callable[[Event], Any]]] = {}
        self._subs: Dict[str, Subscription] = {}
        self._pending: Dict[int, _Pending] = {}
        self._queue: List[Any] = []
        self._next_id = 0
        self._cur: Optional[_Conn] = None
        self._closed = False
        self._task: Optional["asyncio.Task[None]"] = None
        self._first: Optional["asyncio.Future[Dict[str, Any]]"] = None
        self._bg: set = set()

    # -- events --------------------------------------------------------------------

    def on(self, kind: str, fn: Callable[[Event], Any]) -> Callable[[], None]:
        """Adds a listener for connecting, connected, disconnected, error or refreshed; returns a remover."""
        self._listeners.setdefault(kind, []).append(fn)
        return lambda: self._listeners[kind].remove(fn)

    def _emit(self, ev: Event) -> None:
        for fn in list(self._listeners.get(ev.kind, [])):
            self._run_handler(fn, ev)

    def _run_handler(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            r = fn(*args)
            if inspect.isawaitable(r):
                t = asyncio.ensure_future(r)
                self._bg.add(t)
                t.add_done_callback(self._bg.discard)
        except Exception:  # a handler's bug must not kill the connection
            log.exception("wsgate: handler raised")

    # -- lifecycle -----------------------------------------------------------------

    async def connect(self) -> Dict[str, Any]:
        """Connects; returns the first welcome. Retries transient failures, raises
        HandshakeError on a terminal refusal (401/403)."""
        if self._closed:
            raise ClosedError("wsgate: client closed")
        if self._first is None:
            self._first = asyncio.get_running_loop().create_future()
            self._task = asyncio.create_task(self._run())
        return await asyncio.shield(self._first)

    async def close(self) -> None:
        """Closes with 1000; pending requests fail with ClosedError; no reconnect."""
        if self._closed:
            return
        self._stop(ClosedError("wsgate: client closed"))
        cur = self._cur
        self._cur = None
        if cur is not None:
            await cur.ws.close(1000)
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass

    def _stop(self, err: BaseException) -> None:
        self._closed = True
        self.state = "closed"
        if self.error is None:
            self.error = err
        pend, self._pending = self._pending, {}
        for p in pend.values():
            self._fail(p, err)
        self._queue = []
        for s in self._subs.values():
            if s._first is not None and not s._first.done():
                s._first.set_exception(err)
        if self._first is not None and not self._first.done():
            self._first.set_exception(err)

    def _fail(self, p: _Pending, err: BaseException) -> None:
        if p.on_reply is not None:
            p.on_reply(None, err)
        elif not p.future.done():
            p.future.set_exception(err)

    async def _run(self) -> None:
        attempt = 0
        while not self._closed:
            self.state = "connecting"
            self._emit(Event("connecting"))
            try:
                cn = await self._open()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - every failure is classified below
                if self._closed:
                    return
                if isinstance(e, HandshakeError) and e.terminal:
                    self._stop(e)
                    self._emit(Event("disconnected", reason=e.code, error=e))
                    return
                delay = _backoff(self._min, self._max, attempt)
                attempt += 1
                if isinstance(e, HandshakeError) and e.retry_after > delay:
                    delay = e.retry_after
                self.state = "disconnected"
                self._emit(Event("disconnected", error=e, will_reconnect=True, delay=delay))
                await asyncio.sleep(delay)
                continue
            attempt = 0
            await self._activate(cn)
            if self._first is not None and not self._first.done():
                self._first.set_result(cn.welcome)
            refresher = asyncio.create_task(self._refresh_loop(cn))
            try:
                await self._read(cn)
            finally:
                refresher.cancel()
            if self._cur is cn:
                self._cur = None
            code, reason = cn.ws.close_code or 1006, cn.ws.close_reason or ""
            for i, p in list(self._pending.items()):
                if p.conn is cn:
                    del self._pending[i]
                    self._fail(p, DisconnectedError("wsgate: disconnected before the reply"))
            if self._closed:
                return
            self.state = "disconnected"
            delay, again = 0.0, True
            if code in (1001, 1012, 4001):
                pass  # going away / restart: at once; 4001: _open asks the getter for a new token
            elif code in (1002, 1003, 1007, 1009):
                again = False
            else:
                delay = _backoff(self._min, self._max, attempt)
                attempt += 1
            err = CloseError(code, reason)
            if not again:
                self._stop(err)
            self._emit(Event("disconnected", code=code, reason=reason, error=err, will_reconnect=again, delay=delay))
            if not again:
                return
            await asyncio.sleep(delay)

    async def _http(self, url: str, method: str = "GET", token: str = "") -> Any:
        def do() -> Any:
            req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
            if token:
                req.add_header("Authorization", "Bearer " + token)
            try:
                with urllib.request.urlopen(req, timeout=HANDSHAKE_TIMEOUT, context=self._ssl if url.startswith("https") else None) as r:
                    return r.status, dict(r.headers), r.read(1 << 20)
            except urllib.error.HTTPError as e:
                return e.code, dict(e.headers or {}), e.read(4096)
        return await asyncio.to_thread(do)

    async def _ticket(self, tok: str) -> Dict[str, Any]:
        status, headers, body = await self._http(self._ticket_url, "POST", tok)
        try:
            obj = json.loads(body or b"null")
        except ValueError:
            obj = None
        if status != 200:
            ra = _retry_after(headers, obj)
            raise HandshakeError(status, (obj or {}).get("error", "") if isinstance(obj, dict) else "", ra)
        if not isinstance(obj, dict) or not obj.get("ticket"):
            raise WsgateError("wsgate: bad ticket reply")
        return obj

    async def _open(self) -> _Conn:
        tok = await asyncio.wait_for(_call(self._token), HANDSHAKE_TIMEOUT)
        if not _TOKEN_RE.match(tok):
            raise HandshakeError(0, "invalid_token_syntax")
        u = urllib.parse.urlsplit(self.url)
        query = urllib.parse.parse_qsl(u.query)
        headers = dict(self._headers)
        protocols = [SUBPROTOCOL]
        hmac_key = None
        if self.credential == "ticket" or self.integrity == "hmac" or self._e2e_from_server:
            t = await self._ticket(tok)
            if self.credential == "ticket":
                query.append(("ticket", t["ticket"]))
            hmac_key = t.get("integrity")
            if self._e2e_from_server:
                # No keys in the reply clears them: the token grants none (any more).
                self._delivered = delivered_keyrings(t.get("encryption"))
        if self.credential == "subprotocol":
            protocols = [SUBPROTOCOL, "bearer", tok]
        elif self.credential == "header":
            headers["Authorization"] = "Bearer " + tok
        if self.integrity == "pop":
            probe = Signer.pop_ed25519(self._pop_key, "pending")
            query.extend(probe.handshake_params(u.netloc, u.path or "/").items())
        jwks = None
        if self._verify:
            _, _, body = await self._http(self._origin + "/.well-known/wsgate-keys.json")
            jwks = json.loads(body)
        target = urllib.parse.urlunsplit((u.scheme, u.netloc, u.path, urllib.parse.urlencode(query), ""))
        try:
            ws = await websockets.connect(  # type: ignore[attr-defined]
                target, subprotocols=protocols, extra_headers=headers, ssl=self._ssl if u.scheme == "wss" else None,
                open_timeout=HANDSHAKE_TIMEOUT, max_size=self._max_size, compression=None)
        except InvalidStatusCode as e:
            # websockets 10 does not read the refusal's body: the code is
            # unknown, Retry-After comes from the header.
            raise HandshakeError(e.status_code, "", _retry_after(dict(e.headers), None)) from None
        try:
            if ws.subprotocol != SUBPROTOCOL:
                raise WsgateError(f"wsgate: server answered subprotocol {ws.subprotocol!r}")
            w = json.loads(await asyncio.wait_for(ws.recv(), HANDSHAKE_TIMEOUT))
            if not isinstance(w, dict) or w.get("type") != "welcome" or not w.get("conn_id"):
                raise WsgateError("wsgate: expected a welcome message")
            signer = None
            if self.integrity == "hmac":
                if not isinstance(hmac_key, dict):
                    raise WsgateError("wsgate: the ticket endpoint returned no integrity key")
                signer = Signer.hmac(hmac_key["kid"], hmac_key["key"], w["user"])
            elif self.integrity == "pop":
                signer = Signer.pop_ed25519(self._pop_key, w["user"])
            if signer is not None:
                signer.bind(w["conn_id"])
        except BaseException:
            await ws.close()
            raise
        return _Conn(ws, w, signer, jwks)

    async def _activate(self, cn: _Conn) -> None:
        self.welcome = cn.welcome
        for s in list(self._subs.values()):
            await self._resubscribe(cn, s)
        q, self._queue = self._queue, []
        for rid, typ, msg in q:
            p = self._pending.get(rid) if rid else None
            if rid and p is None:
                continue  # its caller gave up
            if p is not None:
                p.conn = cn
            await self._write(cn, typ, msg)
        self._cur = cn
        self.state = "connected"
        self._emit(Event("connected", welcome=cn.welcome, expires_at=cn.welcome.get("expires_at", 0)))

    async def _refresh_loop(self, cn: _Conn) -> None:
        exp = int(cn.welcome.get("expires_at") or 0)
        skew = cn.welcome.get("server_time", 0) / 1000.0 - cn.welcome_at
        while exp > 0:
            left = exp / 1000.0 - (time.time() + skew)
            await asyncio.sleep(max(left - min(30.0, left / 3), 0))
            try:
                r = await self.request("refresh", token=await _call(self._token))
                if r.get("type") != "refreshed" or not r.get("expires_at"):
                    raise WsgateError("wsgate: unexpected refresh reply")
                exp = int(r["expires_at"])
                self._emit(Event("refreshed", expires_at=exp))
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001
                self._emit(Event("error", error=e))
                # Again halfway to expiry; at expiry the server closes with 4001
                # and the reconnect asks the getter for a new token anyway.
                left = exp / 1000.0 - (time.time() + skew)
                if left <= 1:
                    return
                await asyncio.sleep(left / 2)

    async def _write(self, cn: _Conn, typ: str, msg: str) -> None:
        async with cn.lock:
            frame = cn.signer.seal(msg) if cn.signer is not None and typ != "ping" else msg
            try:
                await cn.ws.send(frame)
            except ConnectionClosed:
                pass  # the reader sees the close and fails what was pending

    async def _send(self, typ: str, msg: str, rid: int = 0) -> None:
        if self._closed:
            raise ClosedError("wsgate: client closed")
        cn = self._cur
        if cn is None:
            if len(self._queue) >= self._queue_size:
                raise QueueFullError("wsgate: send queue full while disconnected")
            self._queue.append((rid, typ, msg))
            return
        p = self._pending.get(rid)
        if p is not None:
            p.conn = cn
        await self._write(cn, typ, msg)

    # -- reading -------------------------------------------------------------------

    async def _read(self, cn: _Conn) -> None:
        try:
            async for data in cn.ws:
                if isinstance(data, str):
                    self._handle(cn, data)
        except ConnectionClosed:
            pass

    def _handle(self, cn: _Conn, data: str) -> None:
        try:
            m = json.loads(data)
        except ValueError:
            self._emit(Event("error", error=WsgateError("wsgate: malformed server message")))
            return
        if not isinstance(m, dict):
            return
        if m.get("type") == "signed":
            try:
                if self._verify and cn.jwks is not None:
                    m = json.loads(verify_server(cn.jwks, data)[0])
                else:
                    m = json.loads(unb64(m["sig"]["body"]))
            except Exception as e:  # noqa: BLE001
                self._emit(Event("error", error=WsgateError(f"wsgate: dropped a server-signed message: {e}")))
                return
        typ = m.get("type")
        if typ == "message":
            try:
                self._open_payload(m)
            except NotEncryptedError as e:
                self._emit(Event("error", error=e))  # dropped: nothing undecryptable is delivered
                return
            self._deliver(m)
            return
        if typ in ("joined", "left"):
            s = self._subs.get(m.get("channel", ""))
            h = s and (s.on_join if typ == "joined" else s.on_leave)
            if h:
                self._run_handler(h, m)
            return
        ref = m.get("ref")
        if isinstance(ref, int) and ref in self._pending and self._pending[ref].conn is cn:
            p = self._pending.pop(ref)
            if p.on_reply is not None:
                p.on_reply(m, None)
            elif not p.future.done():
                if typ == "error":
                    p.future.set_exception(ServerError(m))
                else:
                    p.future.set_result(m)
            return
        if typ == "recovery_failed":
            s = self._subs.get(m.get("channel", ""))
            if s is not None:
                self._sub_ack(s, True, m, None)
        elif typ == "error":
            self._emit(Event("error", error=ServerError(m)))

    def _deliver(self, m: Dict[str, Any]) -> None:
        s = self._subs.get(m.get("channel", ""))
        if s is None:
            return
        off, epoch = m.get("offset", 0), m.get("epoch", "")
        if s._has_pos and epoch == s._pos.epoch and off <= s._pos.offset:
            return  # already delivered
        s._pos, s._has_pos = Position(off, epoch), True
        if s.on_message:
            self._run_handler(s.on_message, m)

    # -- subscriptions ---------------------------------------------------------------

    async def _resubscribe(self, cn: _Conn, s: Subscription) -> None:
        since = s._has_pos
        self._next_id += 1
        rid = self._next_id
        fut: "asyncio.Future[Dict[str, Any]]" = asyncio.get_running_loop().create_future()
        self._pending[rid] = _Pending(fut, cn, lambda r, e: self._sub_ack(s, since, r, e))
        fields: Dict[str, Any] = {"type": "subscribe", "id": rid, "channel": s.channel}
        if since:
            fields["since"] = {"offset": s._pos.offset, "epoch": s._pos.epoch}
        try:
            if s._token is not None:
                fields["token"] = await _call(s._token)
        except Exception as e:  # noqa: BLE001
            self._pending.pop(rid, None)
            self._sub_ack(s, since, None, e)
            return
        await self._write(cn, "subscribe", json.dumps(fields))

    def _sub_ack(self, s: Subscription, sent_since: bool, r: Optional[Dict[str, Any]], err: Optional[BaseException]) -> None:
        if self._subs.get(s.channel) is not s:
            return
        first = s._first if s._first is not None and not s._first.done() else None
        if err is not None or r is None:
            if first is not None and not isinstance(err, DisconnectedError):
                del self._subs[s.channel]
                first.set_exception(err or WsgateError("wsgate: no reply"))
            return
        typ = r.get("type")
        if typ == "ack":
            # A recovered ack is followed by the missed messages, which move the position.
            if not (sent_since and r.get("recovered")) and isinstance(r.get("offset"), int):
                s._pos, s._has_pos = Position(r["offset"], r.get("epoch", "")), True
            if first is not None:
                first.set_result(None)
        elif typ == "recovery_failed":
            prev = s._pos
            s._pos, s._has_pos = Position(r.get("offset", 0), r.get("epoch", "")), True
            if first is not None:
                first.set_result(None)
            rf = RecoveryFailed(s.channel, s.position, prev)
            if s.on_recovery_failed:
                self._run_handler(s.on_recovery_failed, rf)
            else:
                self._emit(Event("error", error=RecoveryFailedError(rf)))
        else:
            del self._subs[s.channel]
            e = ServerError(r) if typ == "error" else WsgateError(f"wsgate: unexpected subscribe reply {typ}")
            if first is not None:
                first.set_exception(e)
            elif s.on_error:
                self._run_handler(s.on_error, e)
            else:
                self._emit(Event("error", error=e))

    async def subscribe(self, channel: str, *, since: Optional[Position] = None, token: Optional[TokenGetter] = None,
                        on_message: Optional[Callable[[Dict[str, Any]], Any]] = None,
                        on_recovery_failed: Optional[Callable[[RecoveryFailed], Any]] = None,
                        on_join: Optional[Callable[[Dict[str, Any]], Any]] = None,
                        on_leave: Optional[Callable[[Dict[str, Any]], Any]] = None,
                        on_error: Optional[Callable[[BaseException], Any]] = None,
                        timeout: Optional[float] = None) -> Subscription:
        """Subscribes and waits for the server's ack (after the next connect when
        disconnected). Renewed with the last position on every reconnect."""
        if self._closed:
            raise ClosedError("wsgate: client closed")
        if channel in self._subs:
            raise WsgateError(f"wsgate: already subscribed to {channel}")
        s = Subscription(self, channel, since, token, on_message, on_recovery_failed, on_join, on_leave, on_error)
        s._first = asyncio.get_running_loop().create_future()
        self._subs[channel] = s
        if self._cur is not None:
            await self._resubscribe(self._cur, s)
        try:
            await asyncio.wait_for(asyncio.shield(s._first), timeout or self._req_timeout)
        except asyncio.TimeoutError:
            if self._subs.get(channel) is s:
                del self._subs[channel]
            raise TimeoutError("wsgate: subscribe timed out") from None
        return s

    # -- requests ------------------------------------------------------------------

    async def request(self, type: str, *, timeout: Optional[float] = None, **fields: Any) -> Dict[str, Any]:  # noqa: A002
        """Sends {type, id, **fields}; returns the reply; raises ServerError,
        TimeoutError, DisconnectedError or ClosedError."""
        self._next_id += 1
        rid = self._next_id
        fut: "asyncio.Future[Dict[str, Any]]" = asyncio.get_running_loop().create_future()
        self._pending[rid] = _Pending(fut)
        try:
            await self._send(type, json.dumps({**fields, "type": type, "id": rid}), rid)
            return await asyncio.wait_for(asyncio.shield(fut), timeout if timeout is not None else self._req_timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(f"wsgate: {type} timed out") from None
        finally:
            self._pending.pop(rid, None)
            self._queue = [q for q in self._queue if q[0] != rid]

    def send(self, type: str, **fields: Any) -> "asyncio.Task[None]":  # noqa: A002
        """A message without reply (e.g. chat), queued while disconnected. Raises
        QueueFullError / ClosedError at once; returns the task writing it."""
        if self._closed:
            raise ClosedError("wsgate: client closed")
        if self._cur is None and len(self._queue) >= self._queue_size:
            raise QueueFullError("wsgate: send queue full while disconnected")
        t = asyncio.ensure_future(self._send(type, json.dumps({**fields, "type": type})))
        self._bg.add(t)
        t.add_done_callback(self._bg.discard)
        return t

    # -- end-to-end encryption -------------------------------------------------------

    def set_encryption_keys(self, keys: Sequence[KeyLike]) -> None:
        """Replaces the end-to-end keys (rotation): the first seals from now on, every key opens."""
        if self._e2e_channels is None:
            raise WsgateError("wsgate: the client was made without Encryption.channels")
        self._e2e = Keyring(keys)

    def _keyring(self, channel: str) -> Optional[Keyring]:
        """The keys sealing channel, None when it is not end-to-end: the server's
        for the channel or its namespace first, then the application's."""
        if self._delivered is not None:
            ns, ch = self._delivered
            r = ch.get(channel)
            if r is None and ":" in channel:
                r = ns.get(channel.split(":", 1)[0])
            if r is not None:
                return r
        if self._e2e is not None and self._e2e_channels is not None and self._e2e_channels(channel):
            return self._e2e
        return None

    def _seal_payload(self, channel: str, payload: Any) -> Any:
        ring = self._keyring(channel)
        if ring is None:
            return payload
        text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        return encode_payload(ring.seal(channel, text))

    def _open_payload(self, m: Dict[str, Any]) -> None:
        """Replaces m["payload"] with its plaintext when m's channel is end-to-end;
        raises NotEncryptedError when it does not open."""
        channel = m.get("channel", "")
        ring = self._keyring(channel) if isinstance(channel, str) else None
        if ring is None:
            return
        key_id = ""
        try:
            env = decode_payload(m.get("payload"))
            pt, key_id = ring.open(channel, env)
            m["payload"] = json.loads(pt)
        except (EnvelopeError, ValueError) as e:
            key_id = key_id or getattr(e, "key_id", "")
            raise NotEncryptedError(channel, m.get("offset", 0), m.get("epoch", ""), key_id, str(e)) from None

    async def publish(self, channel: str, payload: Any, timeout: Optional[float] = None) -> Position:
        payload = self._seal_payload(channel, payload)
        r = await self.request("publish", timeout=timeout, channel=channel, payload=payload)
        return Position(r.get("offset", 0), r.get("epoch", ""))

    async def history(self, channel: str, since: Optional[Position] = None, limit: int = 0,
                      timeout: Optional[float] = None) -> Dict[str, Any]:
        f: Dict[str, Any] = {"channel": channel}
        if since is not None:
            f["since"] = {"offset": since.offset, "epoch": since.epoch}
        if limit:
            f["limit"] = limit
        h = await self.request("history", timeout=timeout, **f)
        for p in h.get("publications") or []:
            if isinstance(p, dict):
                p.setdefault("channel", channel)
                self._open_payload(p)  # never a mix of opened and unopened payloads
        return h

    async def presence(self, channel: str, timeout: Optional[float] = None) -> List[Dict[str, Any]]:
        return list((await self.request("presence", timeout=timeout, channel=channel)).get("users", []))

    async def command(self, name: str, payload: Any, timeout: Optional[float] = None) -> Any:
        return (await self.request("command", timeout=timeout, name=name, payload=payload)).get("result")

    async def ping(self, timeout: Optional[float] = None) -> None:
        await self.request("ping", timeout=timeout)


def _retry_after(headers: Dict[str, str], body: Any) -> float:
    h = {k.lower(): v for k, v in headers.items()}.get("retry-after", "")
    try:
        s = int(h)
        if s > 0:
            return float(min(s, 3600))
    except ValueError:
        pass
    if isinstance(body, dict) and isinstance(body.get("retry_after_s"), (int, float)) and body["retry_after_s"] > 0:
        return float(min(body["retry_after_s"], 3600))
    return 0.0


__all__ = ["Client", "Subscription", "Event", "Position", "RecoveryFailed", "WsgateError", "HandshakeError",
           "ServerError", "CloseError", "TimeoutError", "ClosedError", "QueueFullError", "DisconnectedError",
           "RecoveryFailedError", "NotEncryptedError", "Encryption", "EncryptionKey", "SUBPROTOCOL"]

