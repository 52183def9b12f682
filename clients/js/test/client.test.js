// End-to-end tests of the JavaScript client (Node 20 + the ws package)
// against real wsgate processes started by the tests.
import { test, before, after, afterEach } from "node:test";
import assert from "node:assert/strict";
import { HandshakeError, ServerError, TimeoutError, QueueFullError, ClosedError } from "../wsgate.js";
import { start, baseConfig, waitFor, Inbox, MASTER_KEY, client, closeClients, subscribed, kicked, nothingMore } from "./server.js";

let srv;
before(async () => { srv = await start(); });
after(async () => { if (srv) await srv.stop(); });
afterEach(closeClients); // every test's clients, also when it fails midway

const texts = (msgs) => msgs.map((m) => m.payload.text).join(",");
const seq = (p, n) => Array.from({ length: n }, (_, i) => `${p}${i + 1}`).join(",");
async function publishN(c, ch, p, n) { for (let i = 1; i <= n; i++) await c.publish(ch, { text: `${p}${i}` }); }

// gate holds a client away: the token getter blocks after its first call until opened.
function gated(s, sub) {
  let calls = 0;
  let open;
  const opened = new Promise((r) => { open = r; });
  return { release: () => open(), token: async () => { if (++calls > 1) await opened; return s.token(sub); } };
}

// gatedSubscriber: a gated client subscribed to channel (opts go to subscribe)
// and a connected publisher that has sent it `before` messages.
async function gatedSubscriber(s, sub, pubSub, channel, before, opts = {}) {
  const g = gated(s, sub);
  const a = client(s, sub, { token: g.token });
  const pub = client(s, pubSub);
  await pub.connect();
  const { inbox, sub: subscription } = await subscribed(a, channel, opts);
  await publishN(pub, channel, "before", before);
  await inbox.take(before);
  return { g, a, pub, inbox, subscription };
}

test("credential placements: ticket, subprotocol, header", async () => {
  for (const credential of ["ticket", "subprotocol", "header"]) {
    const c = client(srv, `cred-${credential}`, { credential });
    const w = await c.connect();
    assert.equal(w.user, `cred-${credential}`);
    assert.ok(w.expires_at > Date.now());
    await c.ping();
    c.close();
  }
});

test("publish/subscribe, presence, history, typed errors", async () => {
  const a = client(srv, "alice");
  const b = client(srv, "bob");
  await b.connect();
  const { inbox, sub } = await subscribed(a, "chat:lobby");
  await b.subscribe("chat:lobby");
  await publishN(b, "chat:lobby", "m", 3);
  assert.equal(texts(await inbox.take(3)), seq("m", 3));
  assert.equal(sub.position.offset, 3);
  assert.equal((await sub.presence()).length, 2);
  const h = await sub.history({ since: { offset: 1, epoch: sub.position.epoch } });
  assert.deepEqual(h.publications.map((p) => p.offset), [2, 3]);
  await assert.rejects(a.subscribe("nope:x"), (e) => e instanceof ServerError && e.code === "unknown_namespace");
  await assert.rejects(a.command("add", { a: 1 }), (e) => e instanceof ServerError && e.code === "command_unavailable");
  await sub.unsubscribe();
  await publishN(b, "chat:lobby", "after", 1);
  await nothingMore(a, inbox);
});

test("kick: reconnect with backoff and recover exactly the missed messages", async () => {
  const { g, a, pub, inbox } = await gatedSubscriber(srv, "kicked", "publisher", "chat:k", 2);
  const d = await kicked(srv, a);
  assert.equal(d.code, 1008);
  assert.equal(d.reason, "kicked");
  assert.equal(d.willReconnect, true);
  await publishN(pub, "chat:k", "away", 5);
  a.send("chat", { channel: "chat:k", text: "queued" }); // queued while disconnected
  const back = waitFor(a, "connected");
  g.release();
  await back;
  assert.equal(texts(await inbox.take(6)), seq("away", 5) + ",queued");
  await publishN(pub, "chat:k", "live", 1);
  assert.equal(texts(await inbox.take(1)), "live1");
  await nothingMore(a, inbox);
});

test("beyond history: recovery_failed event, then live again", async () => {
  const rfs = new Inbox();
  const { g, a, pub, inbox, subscription: sub } = await gatedSubscriber(srv, "gap", "publisher2", "small:g", 1, { onRecoveryFailed: (rf) => rfs.push(rf) });
  await kicked(srv, a);
  await publishN(pub, "small:g", "away", 10);
  g.release();
  const [rf] = await rfs.take(1);
  assert.equal(rf.previous.offset, 1);
  assert.equal(rf.position.offset, 11);
  await publishN(pub, "small:g", "live", 1);
  assert.equal(texts(await inbox.take(1)), "live1");
  assert.equal(sub.position.offset, 12);
});

test("token refresh in band keeps the subscription", async () => {
  const a = client(srv, "short", { token: async () => srv.token("short", { ttl: 3 }) });
  const w = await a.connect();
  const inbox = new Inbox();
  await a.subscribe("chat:t", { onMessage: (m) => inbox.push(m) });
  let dropped = null;
  a.on("disconnected", (d) => { dropped = d; });
  for (let i = 0; i < 2; i++) {
    const r = await waitFor(a, "refreshed");
    assert.ok(r.expiresAt > w.expires_at);
  }
  assert.ok(Date.now() > w.expires_at, "the first token has expired by the second refresh");
  assert.equal(dropped, null);
  assert.equal(a.welcome.conn_id, w.conn_id);
  const pub = client(srv, "publisher3");
  await pub.connect();
  await publishN(pub, "chat:t", "m", 1);
  await inbox.take(1);
});

test("401: no reconnect loop (ticket and header)", async () => {
  for (const credential of ["ticket", "header"]) {
    let calls = 0;
    const c = client(srv, "x", { credential, token: async () => { calls++; return "not.a.jwt"; } });
    await assert.rejects(c.connect(), (e) => e instanceof HandshakeError && e.status === 401 && e.terminal);
    assert.equal(calls, 1);
    assert.equal(c.state, "closed");
  }
});

test("signed messages (hmac): accepted; unsigned and forged refused", async () => {
  const a = client(srv, "signer", { integrity: "hmac" });
  const { inbox } = await subscribed(a, "secure:s");
  await publishN(a, "secure:s", "signed", 2);
  assert.equal(texts(await inbox.take(2)), seq("signed", 2));
  const plain = client(srv, "plain");
  await plain.connect();
  await assert.rejects(plain.publish("secure:s", { text: "x" }), (e) => e instanceof ServerError && e.code === "integrity_unsigned");
  // A key that is not the user's: the refusal carries no ref (the server cannot
  // trust an id inside a body it failed to verify), so it is an "error" event.
  const forgedFetch = async (url, init) => {
    const r = await fetch(url, init);
    const body = await r.json();
    body.integrity.key = Buffer.alloc(32, 1).toString("base64url");
    return new Response(JSON.stringify(body), { status: r.status });
  };
  const f = client(srv, "forger", { integrity: "hmac", fetch: forgedFetch });
  await f.connect();
  const err = waitFor(f, "error", (d) => d.error instanceof ServerError);
  await assert.rejects(f.publish("secure:s", { text: "forged" }, { timeout: 1500 }), (e) => e instanceof TimeoutError);
  assert.equal((await err).error.code, "integrity_bad_signature");
  await nothingMore(a, inbox);
  assert.ok(MASTER_KEY);
});

test("bounded queue while disconnected; closed client refuses", async () => {
  const g = gated(srv, "queuer");
  const a = client(srv, "queuer", { token: g.token, queueSize: 2 });
  await a.connect();
  await kicked(srv, a);
  a.send("chat", { text: "1" });
  a.send("chat", { text: "2" });
  assert.throws(() => a.send("chat", { text: "3" }), QueueFullError);
  const back = waitFor(a, "connected");
  g.release();
  await back;
  a.close();
  await assert.rejects(a.ping(), ClosedError);
});

test("429 with Retry-After: the client waits", async () => {
  const s = await start({ config: baseConfig("limits: {handshake_rate: {rate: 0.5, burst: 1}}\n") });
  try {
    const first = client(s, "spender", { credential: "header" });
    await first.connect();
    const a = client(s, "patient", { credential: "header" });
    const refused = waitFor(a, "disconnected");
    const t0 = Date.now();
    await a.connect();
    const took = Date.now() - t0;
    const d = await refused;
    assert.ok(d.error instanceof HandshakeError && d.error.status === 429, String(d.error));
    assert.ok(d.error.retryAfter >= 1000 && d.delay >= d.error.retryAfter, JSON.stringify(d));
    assert.ok(took >= d.error.retryAfter, `connected after ${took} ms`);
    first.close();
    a.close();
  } finally {
    await s.stop();
  }
});

test("server restart: 1001, reconnect at once, new epoch reported as recovery_failed", async () => {
  const s1 = await start();
  let s2 = null;
  try {
    const a = client(s1, "restarter", { minBackoff: 50, maxBackoff: 300 });
    await a.connect();
    const rfs = new Inbox();
    await a.subscribe("chat:r", { onRecoveryFailed: (rf) => rfs.push(rf) });
    await a.publish("chat:r", { text: "x" });
    const gone = waitFor(a, "disconnected", (d) => d.code !== 0);
    await s1.stop();
    const d = await gone;
    assert.equal(d.code, 1001);
    assert.equal(d.delay, 0);
    s2 = await start({ listen: s1.listen });
    const [rf] = await rfs.take(1, 30000);
    assert.notEqual(rf.position.epoch, rf.previous.epoch);
    a.close();
  } finally {
    await s1.stop();
    if (s2) await s2.stop();
  }
});

test("pop: a key pair named by cnf.jkt signs; another key cannot connect", async () => {
  const { generatePopKey, publicJwk, thumbprint } = await import("../wsgate.js");
  const s = await start({ config: baseConfig("", { integrityMode: "pop" }) });
  try {
    const key = await generatePopKey("ES256");
    const jkt = await thumbprint(await publicJwk(key.publicKey));
    const claims = { cnf: { jkt }, channels: { sub: ["chat:*"], pub: ["chat:*"] } };
    const a = client(s, "popper", { credential: "header", integrity: "pop", popKey: key, token: async () => s.token("popper", { claims }) });
    const { inbox } = await subscribed(a, "chat:pop");
    await a.publish("chat:pop", { text: "pop1" });
    assert.equal(texts(await inbox.take(1)), "pop1");
    const other = await generatePopKey("ES256");
    const b = client(s, "popper", { credential: "header", integrity: "pop", popKey: other, token: async () => s.token("popper", { claims }) });
    await assert.rejects(b.connect(), (e) => e instanceof HandshakeError && e.status === 401);
    a.close();
  } finally {
    await s.stop();
  }
});

test("verifyServer: server-signed output is verified against the JWKS and unwrapped", async () => {
  const a = client(srv, "verifier", { verifyServer: true });
  const { inbox, errors } = await subscribed(a, "signed:news");
  await publishN(a, "signed:news", "s", 2);
  assert.equal(texts(await inbox.take(2)), seq("s", 2));
  assert.deepEqual(errors.items, []);
});

test("4001: refresh impossible, the server expires the token, the client reconnects at once", async () => {
  let calls = 0;
  const a = client(srv, "expiring", { token: async () => { if (++calls === 2) throw new Error("token service down"); return srv.token("expiring", { ttl: 2 }); } });
  const { inbox } = await subscribed(a, "chat:e");
  const d = await waitFor(a, "disconnected");
  assert.equal(d.code, 4001);
  assert.equal(d.willReconnect, true);
  assert.equal(d.delay, 0);
  await waitFor(a, "connected");
  const pub = client(srv, "publisher4");
  await pub.connect();
  await publishN(pub, "chat:e", "m", 1);
  assert.equal(texts(await inbox.take(1)), "m1");
});
