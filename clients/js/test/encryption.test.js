// End-to-end encryption in the JavaScript client (docs/encryption.md): the
// shared test vector byte for byte, then real wsgate processes relaying
// envelopes between clients that seal and open them.
import { test, before, after, afterEach } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import {
  Client, Keyring, NotEncryptedError, channelKey, sealEnvelope, openEnvelope, parseEnvelope, b64Encode, b64Decode,
} from "../wsgate.js";
import { start, baseConfig, client as serverClient, closeClients, subscribed, kicked } from "./server.js";

const hex = (b) => Buffer.from(b).toString("hex");
const unhex = (s) => new Uint8Array(Buffer.from(s, "hex"));
const vector = JSON.parse(readFileSync(new URL("../../../internal/state/encrypt/testdata/vector.json", import.meta.url), "utf8"));

test("test vector: channel key and envelope byte for byte, and back", async () => {
  const secret = unhex(vector.master_secret_hex);
  const ck = await channelKey(secret, vector.key_id, vector.channel);
  assert.equal(hex(ck), vector.channel_key_hex);
  const env = await sealEnvelope(ck, vector.key_id, vector.channel, new TextEncoder().encode(vector.plaintext), unhex(vector.nonce_hex));
  assert.equal(hex(env), vector.envelope_hex);
  const ring = new Keyring([{ id: vector.key_id, secret: "base64:" + Buffer.from(secret).toString("base64") }]);
  assert.equal(hex(await ring.seal(vector.channel, new TextEncoder().encode(vector.plaintext), unhex(vector.nonce_hex))), vector.envelope_hex);
  const { plaintext, keyId } = await ring.open(vector.channel, unhex(vector.envelope_hex));
  assert.equal(new TextDecoder().decode(plaintext), vector.plaintext);
  assert.equal(keyId, vector.key_id);
  // Another channel, a flipped bit anywhere, a truncated envelope: nothing opens.
  await assert.rejects(ring.open("trades:gbpusd", unhex(vector.envelope_hex)));
  for (let i = 0; i < env.length; i++) {
    const bad = env.slice();
    bad[i] ^= 1;
    await assert.rejects(ring.open(vector.channel, bad), `bit flipped at byte ${i}`);
  }
  await assert.rejects(openEnvelope(ck, vector.channel, env.subarray(0, env.length - 17)));
  assert.throws(() => parseEnvelope(new Uint8Array([1])));
  // A fresh seal uses a random nonce and opens.
  const again = await ring.seal(vector.channel, new Uint8Array([123, 125]));
  assert.notEqual(hex(again.subarray(7, 19)), vector.nonce_hex);
  assert.equal(new TextDecoder().decode((await ring.open(vector.channel, again)).plaintext), "{}");
});

test("standard base64: round trips, rejects non-canonical spellings", () => {
  for (let n = 0; n < 40; n++) {
    const b = new Uint8Array(n).map((_, i) => (i * 37 + n) & 0xff);
    const s = b64Encode(b);
    assert.equal(s, Buffer.from(b).toString("base64"));
    assert.deepEqual(b64Decode(s), b);
  }
  for (const bad of ["QQ", "QR==", "Q===", "QQ=A", "-_==", "QUJD\n"]) assert.throws(() => b64Decode(bad), bad);
});

test("keyring: validates ids, secret lengths and duplicates", () => {
  const secret = new Uint8Array(32);
  assert.throws(() => new Keyring([]));
  assert.throws(() => new Keyring([{ id: "bad id", secret }]));
  assert.throws(() => new Keyring([{ id: "k", secret: new Uint8Array(31) }]));
  assert.throws(() => new Keyring([{ id: "k", secret }, { id: "k", secret }]));
  assert.throws(() => new Keyring([{ id: "k", secret: "a password" }]));
  assert.throws(() => new Client("ws://127.0.0.1:1/ws", { token: async () => "t", encryption: { keys: [{ id: "k", secret }] } }), TypeError);
});

let srv;
before(async () => { srv = await start(); });
after(async () => { if (srv) await srv.stop(); });

const K1 = { id: "app1", secret: new Uint8Array(32).fill(0x61) };
const K2 = { id: "app2", secret: new Uint8Array(32).fill(0x62) };
const isVault = (ch) => ch.startsWith("vault:");
// client: a client of srv that seals vault: channels with keys (null: keyless).
const client = (sub, keys) => serverClient(srv, sub, { encryption: keys ? { keys, channels: isVault } : null });
afterEach(closeClients); // every test's clients, also when it fails midway

// holders(ch, reader, writer): two clients holding K1 on ch: the reader
// subscribed (r: its inbox and errors), the writer connected.
async function holders(ch, readerSub, writerSub) {
  const reader = client(readerSub, [K1]);
  const writer = client(writerSub, [K1]);
  const r = await subscribed(reader, ch);
  await writer.connect();
  return { reader, writer, r };
}

test("two clients exchange sealed messages; the server and a keyless client see only envelopes", async () => {
  const ch = "vault:desk";
  const { reader: alice, writer: bob, r: a } = await holders(ch, "alice", "bob");
  const eve = client("eve", null);
  const mallory = client("mallory", [{ id: "app1", secret: new Uint8Array(32).fill(0x6d) }]);
  const e = await subscribed(eve, ch);
  const m = await subscribed(mallory, ch);
  const secretText = "PLAINTEXT-MARKER-js";
  await bob.publish(ch, { note: secretText, n: 1 });
  const [got] = await a.inbox.take(1);
  assert.deepEqual(got.payload, { note: secretText, n: 1 });
  assert.equal(got.from, "bob");
  // eve has no key: the payload is the envelope, a base64 string naming app1.
  const [raw] = await e.inbox.take(1);
  assert.equal(typeof raw.payload, "string");
  assert.ok(!raw.payload.includes(secretText) && !Buffer.from(raw.payload, "base64").toString("latin1").includes(secretText));
  assert.equal(parseEnvelope(b64Decode(raw.payload)).keyId, "app1");
  // mallory has a key with the right id and the wrong secret: an error event, no message.
  const [err] = await m.errors.take(1);
  assert.ok(err instanceof NotEncryptedError, String(err));
  assert.equal(err.channel, ch);
  assert.equal(err.offset, got.offset);
  assert.equal(err.keyId, "app1");
  assert.equal(m.inbox.items.length, 0);
  // History opens for alice, fails as a whole for mallory, is envelopes for eve.
  const h = await alice.history(ch);
  assert.deepEqual(h.publications.map((p) => p.payload.note), [secretText]);
  await assert.rejects(mallory.history(ch), NotEncryptedError);
  assert.equal(typeof (await eve.history(ch)).publications[0].payload, "string");
  // Channels outside the predicate are not sealed.
  await alice.subscribe("chat:open", { onMessage: (x) => a.inbox.push(x) });
  await alice.publish("chat:open", { text: "clear" });
  assert.deepEqual((await a.inbox.take(1))[0].payload, { text: "clear" });
});

test("a tampered envelope is refused at the receiving client, the stream goes on", async () => {
  const ch = "vault:tamper";
  const { writer: bob, r: a } = await holders(ch, "alice2", "bob2");
  // A well-formed envelope sealed for another channel, and one with a flipped
  // ciphertext byte: the server cannot tell (it relays both), alice refuses both.
  const ring = new Keyring([K1]);
  const other = await ring.seal("vault:elsewhere", new TextEncoder().encode('{"x":1}'));
  const flipped = await ring.seal(ch, new TextEncoder().encode('{"x":2}'));
  flipped[flipped.length - 1] ^= 1;
  const raw = client("mallory2", null);
  await raw.connect();
  await raw.publish(ch, b64Encode(other));
  await raw.publish(ch, b64Encode(flipped));
  // What is not an envelope at all the server refuses itself.
  await assert.rejects(raw.publish(ch, "not base64!"), (e) => e.code === "invalid_message");
  await assert.rejects(raw.publish(ch, { x: "plaintext" }), (e) => e.code === "invalid_message");
  const errs = await a.errors.take(2);
  assert.ok(errs.every((e) => e instanceof NotEncryptedError), errs.join("; "));
  assert.deepEqual(errs.map((e) => e.offset), [1, 2]);
  await bob.publish(ch, { x: 3 });
  const [m] = await a.inbox.take(1);
  assert.deepEqual(m.payload, { x: 3 });
  assert.equal(m.offset, 3);
  assert.equal(a.inbox.items.length, 0);
});

test("key rotation mid-stream loses nothing; history spans both keys", async () => {
  const ch = "vault:rotate";
  const { reader: rx, writer: tx, r } = await holders(ch, "receiver", "sender");
  const s = await subscribed(client("spy", null), ch);
  for (let i = 1; i <= 3; i++) await tx.publish(ch, { i });
  // Step 1: every reader learns app2; step 2: the sender seals with it.
  rx.setEncryptionKeys([K1, K2]);
  tx.setEncryptionKeys([K2, K1]);
  for (let i = 4; i <= 6; i++) await tx.publish(ch, { i });
  assert.deepEqual((await r.inbox.take(6)).map((m) => m.payload.i), [1, 2, 3, 4, 5, 6]);
  assert.deepEqual((await s.inbox.take(6)).map((m) => parseEnvelope(b64Decode(m.payload)).keyId),
    ["app1", "app1", "app1", "app2", "app2", "app2"]);
  assert.deepEqual((await rx.history(ch)).publications.map((p) => p.payload.i), [1, 2, 3, 4, 5, 6]);
  // Retiring app1: what it sealed no longer opens (an error, never garbage).
  rx.setEncryptionKeys([K2]);
  await assert.rejects(rx.history(ch), (e) => e instanceof NotEncryptedError && e.keyId === "app1");
  assert.deepEqual((await rx.history(ch, { since: { offset: 3, epoch: (await rx.history(ch, { limit: 1 })).epoch } })).publications.map((p) => p.payload.i), [4, 5, 6]);
  assert.equal(r.errors.items.length, 0);
});

test("reconnect: missed sealed messages are recovered and opened", async () => {
  const ch = "vault:recover";
  const { reader: rx, writer: tx, r } = await holders(ch, "recoverer", "sender2");
  await tx.publish(ch, { i: 1 });
  await r.inbox.take(1);
  await kicked(srv, rx);
  for (let i = 2; i <= 4; i++) await tx.publish(ch, { i });
  assert.deepEqual((await r.inbox.take(3)).map((m) => m.payload.i), [2, 3, 4]);
});

test("keys from the ticket endpoint: only for the channels the token grants", async () => {
  const E1 = "base64:" + Buffer.alloc(32, 0x45).toString("base64");
  const s = await start({ config: baseConfig(`encryption: {end_to_end_keys: ["e1=${E1}"]}\n`) });
  try {
    const grant = (pats) => ({ channels: { sub: pats, pub: pats } });
    const ticket = async (pats) => {
      const r = await fetch(new URL("/v1/tickets", s.url.replace(/^ws/, "http")), { method: "POST", headers: { Authorization: `Bearer ${s.token("t", { claims: grant(pats) })}` } });
      assert.equal(r.status, 200);
      assert.equal(r.headers.get("cache-control"), "no-store");
      return r.json();
    };
    const ticketKeys = async (pats) => ((await ticket(pats)).encryption?.keys || [])
      .map((k) => `${k.id}/${k.namespace || k.channel}/${Buffer.from(k.key, "base64url").length}`);
    assert.deepEqual(await ticketKeys(["vault:*"]), ["e1/vault/32"]);
    assert.deepEqual(await ticketKeys(["vault:x", "chat:*"]), ["e1/vault:x/32"]);
    assert.deepEqual(await ticketKeys(["vault:x*", "chat:*"]), []);
    assert.deepEqual(await ticketKeys(["chat:*"]), []);

    const ch = "vault:x";
    const mk = (sub, pats, opts = {}) =>
      serverClient(s, sub, { token: async () => s.token(sub, { claims: grant(pats) }), credential: "header", encryption: { fromServer: true }, ...opts });
    const whole = mk("whole", ["vault:*"]);
    const exact = mk("exact", [ch]);
    const spy = mk("spy", [ch], { encryption: null });
    const w = await subscribed(whole, ch);
    const x = await subscribed(exact, ch);
    const sp = await subscribed(spy, ch);
    await whole.publish(ch, { from: "whole" });
    await exact.publish(ch, { from: "exact" });
    assert.deepEqual((await w.inbox.take(2)).map((m) => m.payload.from), ["whole", "exact"]);
    assert.deepEqual((await x.inbox.take(2)).map((m) => m.payload.from), ["whole", "exact"]);
    assert.deepEqual((await sp.inbox.take(2)).map((m) => parseEnvelope(b64Decode(m.payload)).keyId), ["e1", "e1"]);
    // The namespace key is a master key: an application holding it reads along.
    const nsKey = Buffer.from((await ticket(["vault:*"])).encryption.keys[0].key, "base64url");
    const app = mk("app", ["vault:*"], { encryption: { keys: [{ id: "e1", secret: new Uint8Array(nsKey) }], channels: isVault } });
    await subscribed(app, ch);
    const h = await app.history(ch);
    assert.deepEqual(h.publications.map((p) => p.payload.from), ["whole", "exact"]);
    assert.equal(w.errors.items.length + x.errors.items.length, 0);
    for (const c of [whole, exact, spy, app]) c.close();
  } finally {
    await s.stop();
  }
});
