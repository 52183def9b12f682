// wsgate.js: browser client for wsgate message integrity (no dependencies).
//
// Signs outgoing messages in hmac mode (key handed out by the ticket/token
// endpoint) or pop mode (ECDSA P-256 key kept non-extractable in WebCrypto,
// or Ed25519 where the browser supports it), builds the pop handshake
// parameters and verifies server-signed messages against the server's JWKS.
// Wire format: docs/integrity.md. Served by wsgate at /client/wsgate.js.

const enc = new TextEncoder();
const dec = new TextDecoder("utf-8", { fatal: true });

export const VERSION = 1;
export const MAX_SAFE_INTEGER = Number.MAX_SAFE_INTEGER; // seq and ts stay exact

// ---- base64url (no padding, strict) --------------------------------------

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const B64REV = new Map([...B64].map((c, i) => [c, i]));

export function b64urlEncode(bytes) {
  const b = toBytes(bytes);
  let out = "";
  let i = 0;
  for (; i + 2 < b.length; i += 3) {
    const n = (b[i] << 16) | (b[i + 1] << 8) | b[i + 2];
    out += B64[n >> 18] + B64[(n >> 12) & 63] + B64[(n >> 6) & 63] + B64[n & 63];
  }
  if (b.length - i === 1) {
    const n = b[i] << 16;
    out += B64[n >> 18] + B64[(n >> 12) & 63];
  } else if (b.length - i === 2) {
    const n = (b[i] << 16) | (b[i + 1] << 8);
    out += B64[n >> 18] + B64[(n >> 12) & 63] + B64[(n >> 6) & 63];
  }
  return out;
}

export function b64urlDecode(str) {
  if (typeof str !== "string" || str.length % 4 === 1) throw new Error("wsgate: bad base64url");
  const out = new Uint8Array(Math.floor((str.length * 3) / 4));
  let bits = 0, acc = 0, o = 0;
  for (const c of str) {
    const v = B64REV.get(c);
    if (v === undefined) throw new Error("wsgate: bad base64url");
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 0xff;
    }
  }
  if (bits > 0 && (acc & ((1 << bits) - 1)) !== 0) throw new Error("wsgate: non-canonical base64url");
  return out;
}

function toBytes(x) {
  if (x instanceof Uint8Array) return x;
  if (x instanceof ArrayBuffer) return new Uint8Array(x);
  if (ArrayBuffer.isView(x)) return new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
  if (typeof x === "string") return enc.encode(x);
  throw new TypeError("wsgate: want bytes or string");
}

export function randomBytes(n) {
  return crypto.getRandomValues(new Uint8Array(n));
}

// ---- signing inputs (LP = 4-byte big-endian length + bytes; U64 = 8 bytes BE) --

class Builder {
  constructor() { this.parts = []; this.n = 0; }
  lp(x) {
    const b = toBytes(x);
    const l = new Uint8Array(4);
    new DataView(l.buffer).setUint32(0, b.length);
    this.parts.push(l, b);
    this.n += 4 + b.length;
    return this;
  }
  u64(v) {
    if (!Number.isSafeInteger(v) || v < 0) throw new Error("wsgate: integer out of range");
    const b = new Uint8Array(8);
    const dv = new DataView(b.buffer);
    dv.setUint32(0, Math.floor(v / 2 ** 32));
    dv.setUint32(4, v >>> 0);
    this.parts.push(b);
    this.n += 8;
    return this;
  }
  bytes() {
    const out = new Uint8Array(this.n);
    let o = 0;
    for (const p of this.parts) { out.set(p, o); o += p.length; }
    return out;
  }
}

// signingInput(header, subject, connId, body): header = {alg, kid, type, seq, ts, nonce: Uint8Array}.
export function signingInput(h, subject, connId, body) {
  return new Builder().lp("wsgate-msg-v1").lp(h.alg).lp(h.kid).lp(h.type).u64(h.seq).u64(h.ts)
    .lp(h.nonce).lp(subject).lp(connId).lp(body).bytes();
}

export function handshakeInput(alg, jkt, host, path, ts, nonce) {
  return new Builder().lp("wsgate-pop-handshake-v1").lp(alg).lp(jkt).lp(host.toLowerCase()).lp(path)
    .u64(ts).lp(nonce).bytes();
}

export function serverSigningInput(alg, kid, ts, body) {
  return new Builder().lp("wsgate-srv-v1").lp(alg).lp(kid).u64(ts).lp(body).bytes();
}

// ---- keys -----------------------------------------------------------------

const ALGS = {
  ES256: { gen: { name: "ECDSA", namedCurve: "P-256" }, sign: { name: "ECDSA", hash: "SHA-256" }, sigLen: 64 },
  EdDSA: { gen: { name: "Ed25519" }, sign: { name: "Ed25519" }, sigLen: 64 },
};

// importHmacKey takes the base64url key from the ticket/token endpoint.
export async function importHmacKey(keyB64) {
  const raw = b64urlDecode(keyB64);
  if (raw.length !== 32) throw new Error("wsgate: hmac key must be 32 bytes");
  return crypto.subtle.importKey("raw", raw, { name: "HMAC", hash: "SHA-256" }, false, ["sign", "verify"]);
}

// ed25519Supported reports whether this browser's WebCrypto does Ed25519.
export async function ed25519Supported() {
  try {
    await crypto.subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"]);
    return true;
  } catch {
    return false;
  }
}

// generatePopKey makes a key pair whose private half cannot be exported
// (script on the page can use it, but not copy it elsewhere).
export async function generatePopKey(alg = "ES256") {
  const a = ALGS[alg];
  if (!a) throw new Error("wsgate: unsupported alg " + alg);
  const kp = await crypto.subtle.generateKey(a.gen, false, ["sign", "verify"]);
  return { alg, privateKey: kp.privateKey, publicKey: kp.publicKey };
}

// canonicalJwk returns the RFC 7638 form (required members, sorted, no spaces).
export function canonicalJwk(jwk) {
  if (jwk.kty === "EC" && jwk.crv === "P-256") {
    return `{"crv":"P-256","kty":"EC","x":"${jwk.x}","y":"${jwk.y}"}`;
  }
  if (jwk.kty === "OKP" && jwk.crv === "Ed25519") {
    return `{"crv":"Ed25519","kty":"OKP","x":"${jwk.x}"}`;
  }
  throw new Error("wsgate: unsupported JWK");
}

export async function publicJwk(publicKey) {
  const j = await crypto.subtle.exportKey("jwk", publicKey);
  return canonicalJwk(j);
}

// thumbprint is the RFC 7638 SHA-256 thumbprint (cnf.jkt) of a JWK (object or JSON).
export async function thumbprint(jwk) {
  const c = canonicalJwk(typeof jwk === "string" ? JSON.parse(jwk) : jwk);
  return b64urlEncode(await crypto.subtle.digest("SHA-256", enc.encode(c)));
}

export async function importPublicJwk(jwk, alg) {
  const j = typeof jwk === "string" ? JSON.parse(jwk) : jwk;
  const a = ALGS[alg];
  if (!a) throw new Error("wsgate: unsupported alg " + alg);
  const params = alg === "ES256" ? { name: "ECDSA", namedCurve: "P-256" } : { name: "Ed25519" };
  return crypto.subtle.importKey("jwk", { kty: j.kty, crv: j.crv, x: j.x, y: j.y }, params, true, ["verify"]);
}

export async function sign(alg, key, data) {
  if (alg === "HS256") return new Uint8Array(await crypto.subtle.sign("HMAC", key, toBytes(data)));
  const a = ALGS[alg];
  if (!a) throw new Error("wsgate: unsupported alg " + alg);
  return new Uint8Array(await crypto.subtle.sign(a.sign, key, toBytes(data)));
}

export async function verify(alg, key, data, sig) {
  const s = toBytes(sig);
  if (alg === "HS256") return s.length === 32 && crypto.subtle.verify("HMAC", key, s, toBytes(data));
  const a = ALGS[alg];
  if (!a || s.length !== a.sigLen) return false;
  return crypto.subtle.verify(a.sign, key, s, toBytes(data));
}

// ---- envelopes ---------------------------------------------------------------

// encodeEnvelope(header, body bytes, mac bytes) -> JSON text.
export function encodeEnvelope(h, body, mac) {
  return `{"type":${JSON.stringify(h.type)},"sig":{"v":1,"alg":"${h.alg}","kid":${JSON.stringify(h.kid)},` +
    `"seq":${h.seq},"ts":${h.ts},"nonce":"${b64urlEncode(h.nonce)}","body":"${b64urlEncode(body)}",` +
    `"mac":"${b64urlEncode(mac)}"}}`;
}

// Signer seals messages for one connection at a time.
//   const s = await Signer.hmac({kid, key, subject});          // key: base64url from the endpoint
//   const s = await Signer.pop({...await generatePopKey(), subject});
//   s.bind(connId);  const frame = await s.seal({type: "chat.send", text: "hi"});
export class Signer {
  constructor({ alg, kid, key, subject, publicKey = null, jwk = null, now = () => Date.now(), random = randomBytes }) {
    if (!subject) throw new Error("wsgate: signer needs a subject");
    Object.assign(this, { alg, kid, key, subject, publicKey, jwk, now, random });
    this.connId = "";
    this.seq = 0;
    this._chain = Promise.resolve();
  }

  static async hmac({ kid, key, subject, ...opts }) {
    return new Signer({ alg: "HS256", kid, key: await importHmacKey(key), subject, ...opts });
  }

  static async pop({ alg, privateKey, publicKey, subject, ...opts }) {
    const jwk = await publicJwk(publicKey);
    return new Signer({ alg, kid: await thumbprint(jwk), key: privateKey, subject, publicKey, jwk, ...opts });
  }

  // thumbprint is the cnf.jkt the token must carry (pop only).
  get thumbprint() { return this.alg === "HS256" ? "" : this.kid; }

  bind(connId) {
    this.connId = connId;
    this.seq = 0;
  }

  // seal(msg): msg is a JSON object or its exact JSON text (sent byte for byte).
  // Calls are serialised so seq order equals the order seal() resolves in.
  seal(msg) {
    const p = this._chain.then(() => this._seal(msg));
    this._chain = p.catch(() => {});
    return p;
  }

  async _seal(msg) {
    const text = typeof msg === "string" ? msg : JSON.stringify(msg);
    const parsed = JSON.parse(text);
    if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed) || typeof parsed.type !== "string") {
      throw new Error("wsgate: message must be a JSON object with a string type");
    }
    if (!this.connId) throw new Error("wsgate: seal before bind(connId)");
    if (this.seq >= MAX_SAFE_INTEGER) throw new Error("wsgate: seq exhausted; reconnect");
    const body = enc.encode(text);
    const h = { alg: this.alg, kid: this.kid, type: parsed.type, seq: this.seq + 1, ts: this.now(), nonce: this.random(16) };
    const mac = await sign(this.alg, this.key, signingInput(h, this.subject, this.connId, body));
    this.seq = h.seq;
    return encodeEnvelope(h, body, mac);
  }

  // handshakeParams(host, path): pop_key, pop_ts, pop_nonce, pop_proof for the
  // WebSocket URL's query. host is the URL's host (with port if not default).
  async handshakeParams(host, path) {
    if (this.alg === "HS256") throw new Error("wsgate: handshake proof needs a pop signer");
    const ts = this.now();
    const nonce = this.random(16);
    const proof = await sign(this.alg, this.key, handshakeInput(this.alg, this.kid, host, path, ts, nonce));
    return new URLSearchParams({
      pop_key: b64urlEncode(this.jwk), pop_ts: String(ts), pop_nonce: b64urlEncode(nonce), pop_proof: b64urlEncode(proof),
    });
  }
}

// ---- server-signed messages ----------------------------------------------------

// importServerKeys(jwks) -> Map kid -> CryptoKey (Ed25519 keys only).
export async function importServerKeys(jwks) {
  const set = typeof jwks === "string" ? JSON.parse(jwks) : jwks;
  const keys = new Map();
  for (const k of set.keys || []) {
    if (k.kty !== "OKP" || k.crv !== "Ed25519" || !k.kid) continue;
    keys.set(k.kid, await crypto.subtle.importKey("jwk", { kty: "OKP", crv: "Ed25519", x: k.x }, { name: "Ed25519" }, true, ["verify"]));
  }
  return keys;
}

// verifyServer(keys, text) -> {body: string, ts} or throws. window (ms, optional)
// also rejects a ts that far from the local clock.
export async function verifyServer(keys, text, window = 0) {
  const m = JSON.parse(text);
  const s = m && m.sig;
  if (!m || m.type !== "signed" || !s || s.v !== 1 || s.alg !== "EdDSA" || typeof s.kid !== "string") {
    throw new Error("wsgate: not a server-signed message");
  }
  const key = keys.get(s.kid);
  if (!key) throw new Error("wsgate: unknown server key " + s.kid);
  const body = b64urlDecode(s.body);
  const ok = await verify("EdDSA", key, serverSigningInput("EdDSA", s.kid, s.ts, body), b64urlDecode(s.mac));
  if (!ok) throw new Error("wsgate: bad server signature");
  if (window > 0 && Math.abs(Date.now() - s.ts) > window) throw new Error("wsgate: stale server signature");
  return { body: dec.decode(body), ts: s.ts };
}

// ---- WebSocket client ----------------------------------------------------------

// WsgateClient connects with a ticket, waits for the welcome message to learn
// the connection id, then seals everything it sends.
//   const c = new WsgateClient("wss://host/ws", {ticket, signer, serverKeys});
//   await c.connect(); c.onmessage = (obj) => ...; await c.send({type: "chat.send", text: "hi"});
export class WsgateClient {
  constructor(url, {
    ticket = "", ticketParam = "ticket", signer = null, serverKeys = null, requireSigned = false,
    welcomeType = "welcome", connIdField = "conn_id", WebSocketImpl = globalThis.WebSocket,
  } = {}) {
    Object.assign(this, { url, ticket, ticketParam, signer, serverKeys, requireSigned, welcomeType, connIdField, WebSocketImpl });
    this.onmessage = () => {};
    this.onerror = () => {};
    this.onclose = () => {};
    this.connId = "";
    this.ws = null;
  }

  async connect() {
    const u = new URL(this.url);
    if (this.ticket) u.searchParams.set(this.ticketParam, this.ticket);
    if (this.signer && this.signer.alg !== "HS256") {
      for (const [k, v] of await this.signer.handshakeParams(u.host, u.pathname)) u.searchParams.set(k, v);
    }
    const ws = new this.WebSocketImpl(u.toString());
    this.ws = ws;
    return new Promise((resolve, reject) => {
      let welcomed = false;
      ws.onmessage = async (ev) => {
        let obj;
        try {
          obj = await this._receive(ev.data);
        } catch (err) {
          this.onerror(err);
          return;
        }
        if (!welcomed && obj.type === this.welcomeType) {
          welcomed = true;
          this.connId = String(obj[this.connIdField] || "");
          if (this.signer) this.signer.bind(this.connId);
          resolve(obj);
          return;
        }
        this.onmessage(obj);
      };
      ws.onerror = (e) => { if (!welcomed) reject(new Error("wsgate: connection failed")); this.onerror(e); };
      ws.onclose = (e) => { if (!welcomed) reject(new Error(`wsgate: closed ${e.code} ${e.reason || ""}`)); this.onclose(e); };
    });
  }

  async _receive(data) {
    const text = typeof data === "string" ? data : dec.decode(toBytes(data));
    const obj = JSON.parse(text);
    if (obj && obj.type === "signed" && this.serverKeys) {
      return JSON.parse((await verifyServer(this.serverKeys, text)).body);
    }
    if (this.requireSigned) throw new Error("wsgate: unsigned server message");
    return obj;
  }

  async send(msg) {
    if (!this.ws) throw new Error("wsgate: not connected");
    const frame = this.signer ? await this.signer.seal(msg) : (typeof msg === "string" ? msg : JSON.stringify(msg));
    this.ws.send(frame);
    return frame;
  }

  close(code = 1000, reason = "") {
    if (this.ws) this.ws.close(code, reason);
  }
}
