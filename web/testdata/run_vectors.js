// Runs the shared test vectors against wsgate.js. Used by the headless
// Chromium test (browser_test.go); also runs under node for quick checks:
//   node web/testdata/run_vectors.js
import * as w from "../wsgate.js";

const hex = (b) => [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
const fromHex = (s) => new Uint8Array(s.match(/../g).map((x) => parseInt(x, 16)));
const te = new TextEncoder();
// messageInput: a message vector's (hmac or pop) signing input.
const messageInput = (x) => w.signingInput({ alg: x.alg, kid: x.kid, type: x.type, seq: x.seq, ts: x.ts, nonce: w.b64urlDecode(x.nonce_b64) },
  x.subject, x.conn_id, te.encode(x.body));

export async function run(v) {
  const res = { passed: 0, failed: 0, skipped: 0, errors: [], produced: {} };
  const check = (cond, name) => {
    if (cond) res.passed++;
    else { res.failed++; res.errors.push(name); }
  };
  const step = async (name, fn) => {
    try { await fn(); } catch (e) { res.failed++; res.errors.push(name + ": " + (e && e.stack || e)); }
  };

  for (const h of v.hmac) {
    await step(h.name, async () => {
      // HKDF is the server's job; checked here only to pin the vector.
      const ikm = await crypto.subtle.importKey("raw", fromHex(h.master_key_hex), "HKDF", false, ["deriveBits"]);
      const bits = await crypto.subtle.deriveBits({ name: "HKDF", hash: "SHA-256", salt: te.encode(h.hkdf_salt), info: te.encode(h.hkdf_info) }, ikm, 256);
      check(w.b64urlEncode(bits) === h.derived_key_b64, h.name + " hkdf");
      const input = messageInput(h);
      check(hex(input) === h.signing_input_hex, h.name + " signing input");
      const key = await w.importHmacKey(h.derived_key_b64);
      check(w.b64urlEncode(await w.sign("HS256", key, input)) === h.mac_b64, h.name + " mac");
      const s = await w.Signer.hmac({ kid: h.kid, key: h.derived_key_b64, subject: h.subject, now: () => h.ts, random: () => w.b64urlDecode(h.nonce_b64) });
      s.bind(h.conn_id);
      s.seq = h.seq - 1;
      check((await s.seal(h.body)) === h.envelope, h.name + " envelope");
    });
  }

  for (const p of v.pop) {
    await step(p.name, async () => {
      check((await w.thumbprint(p.jwk)) === p.jkt, p.name + " thumbprint");
      const input = messageInput(p);
      check(hex(input) === p.signing_input_hex, p.name + " signing input");
      if (p.alg === "EdDSA" && !(await w.ed25519Supported())) { res.skipped++; return; }
      const pub = await w.importPublicJwk(p.jwk, p.alg);
      check(await w.verify(p.alg, pub, input, w.b64urlDecode(p.mac_b64)), p.name + " verify");
      const bad = input.slice(); bad[bad.length - 2] ^= 1;
      check(!(await w.verify(p.alg, pub, bad, w.b64urlDecode(p.mac_b64))), p.name + " verify tampered");
      if (p.deterministic) {
        const j = JSON.parse(p.jwk);
        const priv = await crypto.subtle.importKey("jwk", { kty: "OKP", crv: "Ed25519", x: j.x, d: w.b64urlEncode(fromHex(p.private_hex)) }, { name: "Ed25519" }, false, ["sign"]);
        const s = await w.Signer.pop({ alg: p.alg, privateKey: priv, publicKey: pub, subject: p.subject, now: () => p.ts, random: () => w.b64urlDecode(p.nonce_b64) });
        check(s.thumbprint === p.jkt, p.name + " signer thumbprint");
        s.bind(p.conn_id);
        s.seq = p.seq - 1;
        check((await s.seal(p.body)) === p.envelope, p.name + " envelope");
      }
    });
  }

  for (const hs of v.pop_handshake) {
    await step("handshake " + hs.name, async () => {
      const input = w.handshakeInput(hs.alg, hs.jkt, hs.host, hs.path, hs.ts, w.b64urlDecode(hs.nonce_b64));
      check(hex(input) === hs.signing_input_hex, hs.name + " handshake input");
      check(w.b64urlEncode(hs.jwk) === hs.pop_key, hs.name + " pop_key");
      if (hs.alg === "EdDSA" && !(await w.ed25519Supported())) { res.skipped++; return; }
      const pub = await w.importPublicJwk(hs.jwk, hs.alg);
      check(await w.verify(hs.alg, pub, input, w.b64urlDecode(hs.proof_b64)), hs.name + " handshake proof");
    });
  }

  for (const sv of v.server) {
    await step(sv.name, async () => {
      check(hex(w.serverSigningInput("EdDSA", sv.kid, sv.ts, te.encode(sv.body))) === sv.signing_input_hex, sv.name + " input");
      if (!(await w.ed25519Supported())) { res.skipped++; return; }
      const keys = await w.importServerKeys(sv.jwks);
      const out = await w.verifyServer(keys, sv.envelope);
      check(out.body === sv.body && out.ts === sv.ts, sv.name + " verify");
      const m = JSON.parse(sv.envelope);
      m.sig.body = w.b64urlEncode(te.encode(sv.body.replace("bob", "eve")));
      let rejected = false;
      try { await w.verifyServer(keys, JSON.stringify(m)); } catch { rejected = true; }
      check(rejected, sv.name + " tampered rejected");
    });
  }

  await step("base64url strictness", async () => {
    let threw = false;
    try { w.b64urlDecode("AB"); } catch { threw = true; } // "AB" has non-zero trailing bits
    check(threw, "non-canonical base64url rejected");
    check(w.b64urlEncode(w.b64urlDecode("AA")) === "AA", "base64url round trip");
  });

  // Envelopes produced with fresh keys, for the Go side to verify.
  await step("produce", async () => {
    const h = v.hmac[0];
    const hs = await w.Signer.hmac({ kid: h.kid, key: h.derived_key_b64, subject: h.subject });
    hs.bind("c_browser");
    res.produced.hmac = [await hs.seal({ type: "chat.send", text: "from the browser ✓" }), await hs.seal('{"type":"ping"}')];
    // pop: a signer with a fresh key pair: its thumbprint, handshake and one message.
    const pop = async (keys, text) => {
      const s = await w.Signer.pop({ ...keys, subject: h.subject });
      s.bind("c_browser");
      return { jkt: s.thumbprint, handshake: (await s.handshakeParams("ws.example.com", "/ws")).toString(), msgs: [await s.seal({ type: "chat.send", text })] };
    };

    const ec = await w.generatePopKey("ES256");
    let exportable = true;
    try { await crypto.subtle.exportKey("jwk", ec.privateKey); } catch { exportable = false; }
    check(!exportable, "P-256 private key is non-extractable");
    res.produced.p256 = await pop(ec, "p256");
    if (await w.ed25519Supported()) res.produced.ed25519 = await pop(await w.generatePopKey("EdDSA"), "ed25519");
  });

  // WsgateClient against a fake socket: welcome -> bind -> sealed send; signed server push.
  await step("WsgateClient", async () => {
    const h = v.hmac[0];
    const sv = v.server[0];
    const sent = [];
    let sock;
    class FakeWS {
      constructor(url) { this.url = url; sock = this; setTimeout(() => this.onmessage({ data: '{"type":"welcome","conn_id":"c_fake"}' }), 0); }
      send(d) { sent.push(d); }
      close() {}
    }
    const signer = await w.Signer.hmac({ kid: h.kid, key: h.derived_key_b64, subject: h.subject });
    const serverKeys = (await w.ed25519Supported()) ? await w.importServerKeys(sv.jwks) : null;
    const c = new w.WsgateClient("wss://ws.example.com/ws", { ticket: "t123", signer, serverKeys, WebSocketImpl: FakeWS });
    const welcome = await c.connect();
    check(welcome.conn_id === "c_fake" && signer.connId === "c_fake", "client bound to welcome conn_id");
    check(sock.url === "wss://ws.example.com/ws?ticket=t123", "client url " + sock.url);
    await c.send({ type: "chat.send", text: "x" });
    await c.send({ type: "chat.send", text: "y" });
    const seqs = sent.map((f) => JSON.parse(f).sig.seq);
    check(seqs[0] === 1 && seqs[1] === 2, "auto seq");
    res.produced.client = sent;
    if (serverKeys) {
      const got = new Promise((r) => { c.onmessage = r; });
      sock.onmessage({ data: sv.envelope });
      const obj = await got;
      check(obj.type === "chat.msg" && obj.from === "bob", "client verifies server push");
    }
  });

  return res;
}

// node entry point
if (typeof process !== "undefined" && process.argv && import.meta.url === `file://${process.argv[1]}`) {
  const fs = await import("node:fs");
  const v = JSON.parse(fs.readFileSync(new URL("../../internal/conn/integrity/testdata/vectors.json", import.meta.url), "utf8"));
  const r = await run(v);
  console.log(JSON.stringify({ ...r, produced: undefined }, null, 1));
  console.log(`${r.passed} passed, ${r.failed} failed, ${r.skipped} skipped`);
  process.exit(r.failed ? 1 : 0);
}
