// wsgate.js: the wsgate client for browsers and Node >= 20 (ES module, no dependencies).
//
// Client keeps a connection up: token getter, credential never in the URL,
// reconnect with exponential backoff and full jitter, the server's answers
// honoured (no loop on 401/403, Retry-After, at once after 1001/1012, new
// token after 4001), in-band token refresh, subscriptions recovered exactly
// once in order or an explicit recovery_failed, requests matched by id.
// Shared behaviour: docs/clients.md. Same names as the Go and Python clients.
//
// The lower layer signs outgoing messages in hmac mode (key handed out by the
// ticket/token endpoint) or pop mode (ECDSA P-256 key kept non-extractable in
// WebCrypto, or Ed25519 where supported), builds the pop handshake parameters
// and verifies server-signed messages against the server's JWKS.
// Wire format: docs/protocol.md, docs/integrity.md. Served by wsgate at
// /client/wsgate.js (a copy of clients/js/wsgate.js kept identical by a test).

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

// ---- reconnecting client ---------------------------------------------------------

export const SUBPROTOCOL = "wsgate.v1";

// Errors. Same names as the Go (client) and Python (wsgate) clients.
export class WsgateError extends Error {
  constructor(message) { super(message); this.name = this.constructor.name; }
}
// HandshakeError: the server refused the connection (or the ticket) with an HTTP status.
export class HandshakeError extends WsgateError {
  constructor(status, code, retryAfter = 0) {
    super(`wsgate: handshake refused: ${status} ${code}${retryAfter ? ` (retry after ${retryAfter} ms)` : ""}`);
    Object.assign(this, { status, code, retryAfter });
  }
  // terminal: reconnecting cannot help (401; 403 other than a ban).
  get terminal() { return this.status === 0 || this.status === 401 || (this.status === 403 && this.code !== "banned"); }
}
// ServerError: an error reply {"type":"error","code":…} to a request.
export class ServerError extends WsgateError {
  constructor({ code = "", message = "", path = "", retry_after_ms = 0 } = {}) {
    super(`wsgate: server error: ${code}${message ? ": " + message : ""}`);
    Object.assign(this, { code, serverMessage: message, path, retryAfter: retry_after_ms });
  }
}
// CloseError: how the server ended a connection.
export class CloseError extends WsgateError {
  constructor(code, reason) { super(`wsgate: connection closed: ${code} ${reason || ""}`); Object.assign(this, { code, reason }); }
}
export class TimeoutError extends WsgateError { constructor() { super("wsgate: request timed out"); } }
export class ClosedError extends WsgateError { constructor() { super("wsgate: client closed"); } }
export class QueueFullError extends WsgateError { constructor() { super("wsgate: send queue full while disconnected"); } }
export class DisconnectedError extends WsgateError { constructor() { super("wsgate: disconnected before the reply"); } }
// RecoveryFailedError reaches "error" listeners when a subscription has no onRecoveryFailed.
export class RecoveryFailedError extends WsgateError {
  constructor(rf) { super(`wsgate: recovery failed on ${rf.channel}`); this.recovery = rf; }
}

// NotEncryptedError: a payload of an end-to-end channel did not open (sealed
// under a key this client lacks, tampered, or not an envelope at all). The
// message is dropped and this reaches "error" listeners; history() rejects with it.
export class NotEncryptedError extends WsgateError {
  constructor({ channel = "", offset = 0, epoch = "", keyId = "", reason = "" } = {}) {
    super(`wsgate: end-to-end payload does not open: ${channel} offset ${offset}${reason ? ": " + reason : ""}`);
    Object.assign(this, { channel, offset, epoch, keyId, reason });
  }
}

// ---- end-to-end encryption (docs/encryption.md, "End to end") --------------------
//
// Envelope: 0x01 | len(key id) | key id | 12-byte nonce | AES-256-GCM ciphertext+tag,
// AAD = the header (version, len, key id) followed by the channel name. Channel key:
// HKDF-SHA256(ikm = master secret, salt = key id, info = "wsgate-enc-v1|" + channel).
// The publication's payload is the envelope in standard padded base64, a JSON string.

const E2E_VERSION = 0x01;
const E2E_NONCE = 12;
const E2E_TAG = 16;
const E2E_INFO = "wsgate-enc-v1|";
const E2E_MIN_SECRET = 32;
const E2E_CACHE = 4096;
const KEY_ID_RE = /^[A-Za-z0-9._-]{1,64}$/;
const B64STD = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const B64STDREV = new Map([...B64STD].map((c, i) => [c, i]));

// b64Encode: standard alphabet, padded (the end-to-end payload's encoding).
export function b64Encode(bytes) {
  const b = toBytes(bytes);
  let out = "";
  for (let i = 0; i < b.length; i += 3) {
    const n = (b[i] << 16) | ((b[i + 1] || 0) << 8) | (b[i + 2] || 0);
    out += B64STD[n >> 18] + B64STD[(n >> 12) & 63] + (i + 1 < b.length ? B64STD[(n >> 6) & 63] : "=") + (i + 2 < b.length ? B64STD[n & 63] : "=");
  }
  return out;
}

// b64Decode: strict standard padded base64 (one spelling per value, as the server checks).
export function b64Decode(str) {
  if (typeof str !== "string" || str.length % 4 !== 0) throw new Error("wsgate: bad base64");
  const pad = str.endsWith("==") ? 2 : str.endsWith("=") ? 1 : 0;
  const out = new Uint8Array((str.length / 4) * 3 - pad);
  let acc = 0, bits = 0, o = 0;
  for (let i = 0; i < str.length - pad; i++) {
    const v = B64STDREV.get(str[i]);
    if (v === undefined) throw new Error("wsgate: bad base64");
    acc = ((acc << 6) | v) & 0xffffff;
    bits += 6;
    if (bits >= 8) { bits -= 8; out[o++] = (acc >> bits) & 0xff; }
  }
  if (bits > 0 && (acc & ((1 << bits) - 1)) !== 0) throw new Error("wsgate: non-canonical base64");
  return out;
}

// encryptionSecret accepts bytes or "base64:…" (the configuration's spelling).
function encryptionSecret(s) {
  if (typeof s === "string") {
    if (!s.startsWith("base64:")) throw new TypeError("wsgate: an encryption secret is bytes or \"base64:…\"");
    return b64Decode(s.slice(7));
  }
  return new Uint8Array(toBytes(s)); // a copy: later changes by the caller do not apply
}

function checkKeyId(id) {
  if (typeof id !== "string" || !KEY_ID_RE.test(id)) throw new TypeError(`wsgate: key id ${JSON.stringify(id)}: 1-64 of [A-Za-z0-9._-]`);
}

// channelKey(secret, keyId, channel) -> the channel's 32-byte data key.
export async function channelKey(secret, keyId, channel) {
  checkKeyId(keyId);
  const ikm = await crypto.subtle.importKey("raw", encryptionSecret(secret), "HKDF", false, ["deriveBits"]);
  const bits = await crypto.subtle.deriveBits({ name: "HKDF", hash: "SHA-256", salt: enc.encode(keyId), info: enc.encode(E2E_INFO + channel) }, ikm, 256);
  return new Uint8Array(bits);
}

function e2eHeader(keyId) {
  const id = enc.encode(keyId);
  const h = new Uint8Array(2 + id.length);
  h[0] = E2E_VERSION;
  h[1] = id.length;
  h.set(id, 2);
  return h;
}

function concatBytes(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}

// parseEnvelope(env) -> {keyId, header, nonce, ciphertext}; throws on anything else.
export function parseEnvelope(env) {
  const b = toBytes(env);
  const n = b[1];
  if (b.length < 2 || b[0] !== E2E_VERSION || !(n >= 1 && n <= 64) || b.length < 2 + n + E2E_NONCE + E2E_TAG) {
    throw new Error("malformed envelope");
  }
  let keyId = "";
  for (let i = 2; i < 2 + n; i++) keyId += String.fromCharCode(b[i]);
  if (!KEY_ID_RE.test(keyId)) throw new Error("malformed envelope");
  return { keyId, header: b.subarray(0, 2 + n), nonce: b.subarray(2 + n, 2 + n + E2E_NONCE), ciphertext: b.subarray(2 + n + E2E_NONCE) };
}

async function aesKey(raw) {
  return crypto.subtle.importKey("raw", raw, { name: "AES-GCM" }, false, ["encrypt", "decrypt"]);
}

// sealEnvelope(key, keyId, channel, plaintext, nonce?) -> envelope bytes. key is
// the channel key (bytes or an AES-GCM CryptoKey); nonce defaults to 12 random bytes.
export async function sealEnvelope(key, keyId, channel, plaintext, nonce = randomBytes(E2E_NONCE)) {
  checkKeyId(keyId);
  if (toBytes(nonce).length !== E2E_NONCE) throw new TypeError("wsgate: nonce must be 12 bytes");
  const k = key instanceof Uint8Array || key instanceof ArrayBuffer ? await aesKey(toBytes(key)) : key;
  const h = e2eHeader(keyId);
  const ct = await crypto.subtle.encrypt({ name: "AES-GCM", iv: toBytes(nonce), additionalData: concatBytes(h, enc.encode(channel)), tagLength: 128 }, k, toBytes(plaintext));
  return concatBytes(h, toBytes(nonce), new Uint8Array(ct));
}

// openEnvelope(key, channel, env) -> plaintext bytes; throws when it does not open.
export async function openEnvelope(key, channel, env) {
  const p = parseEnvelope(env);
  const k = key instanceof Uint8Array || key instanceof ArrayBuffer ? await aesKey(toBytes(key)) : key;
  try {
    return new Uint8Array(await crypto.subtle.decrypt({ name: "AES-GCM", iv: p.nonce, additionalData: concatBytes(p.header, enc.encode(channel)), tagLength: 128 }, k, p.ciphertext));
  } catch {
    throw new Error("message authentication failed");
  }
}

// Keyring: master keys [{id, secret}], the first seals, every one opens. Derived
// channel keys are cached (at most 4096; the cache starts over past that).
export class Keyring {
  constructor(keys) {
    if (!Array.isArray(keys) || keys.length === 0) throw new TypeError("wsgate: encryption needs at least one key");
    this._secrets = new Map();
    this._ids = [];
    for (const k of keys) {
      checkKeyId(k && k.id);
      const s = encryptionSecret(k.secret);
      if (s.length < E2E_MIN_SECRET) throw new TypeError(`wsgate: key ${k.id}: secret has ${s.length} bytes, needs at least ${E2E_MIN_SECRET}`);
      if (this._secrets.has(k.id)) throw new TypeError(`wsgate: key id ${k.id} listed twice`);
      this._secrets.set(k.id, s);
      this._ids.push(k.id);
    }
    this._cache = new Map();
  }

  get sealingKeyId() { return this._ids[0]; }
  get keyIds() { return [...this._ids]; }

  _key(id, channel) {
    const ck = id + "\u0000" + channel;
    let p = this._cache.get(ck);
    if (!p) {
      const s = this._secrets.get(id);
      if (!s) throw new Error(`unknown key id ${id}`);
      p = channelKey(s, id, channel).then(aesKey);
      if (this._cache.size >= E2E_CACHE) this._cache.clear();
      this._cache.set(ck, p);
    }
    return p;
  }

  // seal(channel, plaintext, nonce?) -> envelope bytes under the first key.
  async seal(channel, plaintext, nonce) {
    const id = this._ids[0];
    return sealEnvelope(await this._key(id, channel), id, channel, plaintext, nonce);
  }

  // open(channel, env) -> {plaintext, keyId}; throws when it does not open.
  async open(channel, env) {
    const { keyId } = parseEnvelope(env);
    return { plaintext: await openEnvelope(await this._key(keyId, channel), channel, env), keyId };
  }
}

// ChannelKeyring: the keys the ticket endpoint delivers for one channel, used
// as that channel's data keys without derivation; no other channel opens.
class ChannelKeyring extends Keyring {
  constructor(channel, keys) {
    super(keys);
    for (const [id, s] of this._secrets) if (s.length !== 32) throw new TypeError(`wsgate: channel key ${id} must be 32 bytes`);
    this._channel = channel;
  }

  _key(id, channel) {
    const s = this._secrets.get(id);
    if (!s || channel !== this._channel) return Promise.reject(new Error(`unknown key id ${id}`));
    if (!this._cache.has(id)) this._cache.set(id, aesKey(s));
    return this._cache.get(id);
  }
}

// deliveredKeyrings(reply.encryption) -> {namespaces, channels}: Maps of
// keyrings from a ticket reply's {"keys":[{id, namespace|channel, key}]}.
function deliveredKeyrings(e) {
  const ns = new Map();
  const ch = new Map();
  for (const k of (e && Array.isArray(e.keys) ? e.keys : [])) {
    const entry = { id: k.id, secret: b64urlDecode(k.key) };
    const [m, scope] = k.namespace && !k.channel ? [ns, k.namespace] : [ch, k.channel];
    if (typeof scope !== "string" || !scope) throw new WsgateError("wsgate: bad encryption key in the ticket reply");
    if (!m.has(scope)) m.set(scope, []);
    m.get(scope).push(entry);
  }
  return {
    namespaces: new Map([...ns].map(([n, keys]) => [n, new Keyring(keys)])),
    channels: new Map([...ch].map(([c, keys]) => [c, new ChannelKeyring(c, keys)])),
  };
}

const TOKEN_RE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const HANDSHAKE_TIMEOUT = 10000;

function retryAfterMs(headers, body) {
  const h = headers && (typeof headers.get === "function" ? headers.get("retry-after") : headers["retry-after"]);
  const s = parseInt(h, 10);
  if (s > 0) return Math.min(s, 3600) * 1000;
  if (body && body.retry_after_s > 0) return Math.min(body.retry_after_s, 3600) * 1000;
  return 0;
}

function parseJSON(text) { try { return JSON.parse(text); } catch { return null; } }

// backoff: exponential with full jitter, capped.
function backoffDelay(min, max, attempt) {
  let ceil = min;
  for (let i = 0; i < attempt && ceil < max; i++) ceil *= 2;
  return Math.floor(Math.random() * (Math.min(ceil, max) + 1));
}

// Client: see the file header and docs/clients.md.
//   const c = new Client("wss://host/ws", { token: async () => jwt });
//   await c.connect();
//   const sub = await c.subscribe("chat:lobby", { onMessage: (m) => …, onRecoveryFailed: (rf) => … });
//   await sub.publish({ text: "hi" });
export class Client {
  constructor(url, {
    token, credential = "ticket", WebSocket: WS = globalThis.WebSocket, fetch: fetchImpl = globalThis.fetch,
    ticketUrl = "", minBackoff = 250, maxBackoff = 30000, requestTimeout = 10000, queueSize = 256,
    integrity = "", popKey = null, verifyServer: verify = false, wsOptions = {}, encryption = null,
  } = {}) {
    if (typeof token !== "function") throw new TypeError("wsgate: options.token (async () => jwt) is required");
    if (!["ticket", "subprotocol", "header"].includes(credential)) throw new TypeError("wsgate: credential must be ticket, subprotocol or header");
    if (!["", "hmac", "pop"].includes(integrity)) throw new TypeError("wsgate: integrity must be '', 'hmac' or 'pop'");
    if (integrity === "pop" && !popKey) throw new TypeError("wsgate: pop integrity needs popKey ({alg, privateKey, publicKey})");
    const u = new URL(url);
    if (u.searchParams.has("token") || u.searchParams.has("access_token")) throw new TypeError("wsgate: never put a token in the URL");
    Object.assign(this, { url, credential, integrity, popKey });
    const appKeys = encryption && (encryption.keys || !encryption.fromServer);
    if (appKeys && typeof encryption.channels !== "function") throw new TypeError("wsgate: encryption.channels (channel => boolean) is required with encryption.keys");
    // _e2e: the application's end-to-end keys and which channels they seal, and
    // the keys the ticket endpoint delivered at the last connection (fromServer).
    this._e2e = encryption ? {
      keyring: appKeys ? new Keyring(encryption.keys) : null, channels: encryption.channels, fromServer: !!encryption.fromServer, delivered: null,
    } : null;
    // fetch is called unbound: the browser's refuses to run with another `this`.
    this._o = { token, WS, fetch: typeof fetchImpl === "function" ? (...a) => fetchImpl(...a) : null, ticketUrl: ticketUrl || `${u.protocol === "ws:" ? "http:" : "https:"}//${u.host}/v1/tickets`,
      origin: `${u.protocol === "ws:" ? "http:" : "https:"}//${u.host}`, minBackoff, maxBackoff: Math.max(maxBackoff, minBackoff),
      requestTimeout, queueSize, verify, wsOptions };
    this.state = "disconnected";
    this.welcome = null;
    this.error = null; // why the client stopped, once closed
    this._listeners = new Map();
    this._subs = new Map();
    this._pending = new Map();
    this._queue = [];
    this._nextId = 0;
    this._cur = null;
    this._attempt = 0;
    this._timers = new Set();
    this._closed = false;
    this._first = null;
  }

  // on(event, fn) -> off(). Events: connecting, connected, disconnected, error, refreshed.
  on(event, fn) {
    if (!this._listeners.has(event)) this._listeners.set(event, new Set());
    this._listeners.get(event).add(fn);
    return () => this._listeners.get(event).delete(fn);
  }

  _emit(event, detail) {
    for (const fn of this._listeners.get(event) || []) {
      try { fn(detail); } catch (e) { queueMicrotask(() => { throw e; }); }
    }
  }

  _setTimer(fn, ms) {
    const t = setTimeout(() => { this._timers.delete(t); fn(); }, Math.max(0, ms));
    this._timers.add(t);
    return t;
  }

  _clearTimer(t) { if (t) { clearTimeout(t); this._timers.delete(t); } }

  // connect() resolves with the welcome of the first connection; it retries
  // transient failures and rejects on a terminal one (HandshakeError 401/403).
  connect() {
    if (this._closed) return Promise.reject(new ClosedError());
    if (!this._first) {
      this._first = {};
      this._first.promise = new Promise((resolve, reject) => Object.assign(this._first, { resolve, reject }));
      this._loop();
    }
    return this._first.promise;
  }

  // close(): closes with 1000, fails pending requests with ClosedError, stops reconnecting.
  close() {
    if (this._closed) return;
    this._stop(new ClosedError());
  }

  _stop(err) {
    this._closed = true;
    this.state = "closed";
    this.error = err;
    for (const t of this._timers) clearTimeout(t);
    this._timers.clear();
    const cn = this._cur || this._connecting;
    this._cur = null;
    if (cn) { cn.stopped = true; try { cn.ws.close(1000); } catch { /* already closed */ } }
    for (const [, p] of this._pending) { this._clearTimer(p.timer); p.reject(err); }
    this._pending.clear();
    for (const q of this._queue) if (q.reject) q.reject(err);
    this._queue = [];
    for (const s of this._subs.values()) if (s._first) { s._first.reject(err); s._first = null; }
    if (this._first && this._first.reject) { this._first.reject(err); this._first.resolve = this._first.reject = null; }
  }

  async _loop(delayMs = 0) {
    if (delayMs > 0) {
      await new Promise((r) => this._setTimer(r, delayMs));
    }
    if (this._closed) return;
    this.state = "connecting";
    this._emit("connecting", {});
    let cn;
    try {
      cn = await this._open();
    } catch (err) {
      if (this._closed) return;
      if (err instanceof HandshakeError && err.terminal) {
        this._stop(err);
        this._emit("disconnected", { code: 0, reason: err.code, error: err, willReconnect: false, delay: 0 });
        return;
      }
      let delay = backoffDelay(this._o.minBackoff, this._o.maxBackoff, this._attempt++);
      if (err instanceof HandshakeError && err.retryAfter > delay) delay = err.retryAfter;
      this.state = "disconnected";
      this._emit("disconnected", { code: 0, reason: "", error: err, willReconnect: true, delay });
      this._loop(delay);
      return;
    }
    this._attempt = 0;
    this._activate(cn);
    if (this._first && this._first.resolve) { this._first.resolve(cn.welcome); this._first.resolve = this._first.reject = null; }
  }

  // _open makes one connection attempt and resolves once welcomed.
  async _open() {
    const o = this._o;
    const tok = await o.token();
    if (typeof tok !== "string" || !TOKEN_RE.test(tok)) throw new HandshakeError(0, "invalid_token_syntax");
    const u = new URL(this.url);
    let protocols = [SUBPROTOCOL];
    const wsOpts = { ...o.wsOptions };
    let hmacKey = null;
    const e2eKeys = !!(this._e2e && this._e2e.fromServer);
    if (this.credential === "ticket" || this.integrity === "hmac" || e2eKeys) {
      const t = await this._ticket(tok);
      if (this.credential === "ticket") u.searchParams.set("ticket", t.ticket);
      hmacKey = t.integrity || null;
      // No keys in the reply clears them: the token grants none (any more).
      if (e2eKeys) this._e2e.delivered = deliveredKeyrings(t.encryption);
    }
    if (this.credential === "subprotocol") protocols = [SUBPROTOCOL, "bearer", tok];
    if (this.credential === "header") wsOpts.headers = { ...(wsOpts.headers || {}), Authorization: `Bearer ${tok}` };
    let signer = null;
    if (this.integrity === "pop") {
      signer = await Signer.pop({ ...this.popKey, subject: "pending" });
      for (const [k, v] of await signer.handshakeParams(u.host, u.pathname)) u.searchParams.set(k, v);
    }
    let serverKeys = null;
    if (o.verify) serverKeys = await importServerKeys(await (await this._http(o.origin + "/.well-known/wsgate-keys.json")).text());

    const ws = this.credential === "header" ? new o.WS(u.toString(), protocols, wsOpts)
      : (Object.keys(wsOpts).length ? new o.WS(u.toString(), protocols, wsOpts) : new o.WS(u.toString(), protocols));
    const cn = { ws, welcome: null, signer: null, serverKeys, rx: Promise.resolve(), tx: Promise.resolve(), refreshTimer: null, stopped: false };
    this._connecting = cn;
    return new Promise((resolve, reject) => {
      let refused = null;
      let settled = false;
      const settle = (err, val) => {
        if (settled) return;
        settled = true;
        this._clearTimer(timer);
        this._connecting = null;
        if (err) { try { ws.close(); } catch { /* closing anyway */ } reject(err); } else resolve(val);
      };
      const timer = this._setTimer(() => settle(new WsgateError("wsgate: no welcome within the handshake timeout")), HANDSHAKE_TIMEOUT);
      if (typeof ws.on === "function") {
        // Node's ws package: the refused upgrade's status, Retry-After and body.
        ws.on("unexpected-response", (req, res) => {
          let body = "";
          res.setEncoding("utf8");
          res.on("data", (c) => { if (body.length < 4096) body += c; });
          res.on("end", () => {
            refused = new HandshakeError(res.statusCode, (parseJSON(body) || {}).error || "", retryAfterMs(res.headers, parseJSON(body)));
            settle(refused);
            req.destroy();
          });
        });
        ws.on("error", () => { /* reported through close or unexpected-response */ });
      }
      ws.onerror = () => {};
      ws.onclose = (ev) => {
        if (!settled) settle(refused || new CloseError(ev.code, ev.reason || "connection failed before the welcome"));
        else if (cn.active) this._closedConn(cn, ev.code, ev.reason || "");
        else cn.closedEarly = { code: ev.code, reason: ev.reason || "" }; // closed between welcome and activation
      };
      ws.onmessage = (ev) => {
        if (!cn.welcome) {
          const w = typeof ev.data === "string" ? parseJSON(ev.data) : null;
          if (!w || w.type !== "welcome" || !w.conn_id) { settle(new WsgateError("wsgate: expected a welcome message")); return; }
          if (ws.protocol && ws.protocol !== SUBPROTOCOL) { settle(new WsgateError(`wsgate: server answered subprotocol ${ws.protocol}`)); return; }
          cn.welcome = w;
          cn.welcomeAt = Date.now();
          (async () => {
            if (this.integrity === "hmac") {
              if (!hmacKey) throw new WsgateError("wsgate: the ticket endpoint returned no integrity key");
              cn.signer = await Signer.hmac({ kid: hmacKey.kid, key: hmacKey.key, subject: w.user });
            } else if (this.integrity === "pop") {
              cn.signer = await Signer.pop({ ...this.popKey, subject: w.user });
            }
            if (cn.signer) cn.signer.bind(w.conn_id);
          })().then(() => settle(null, cn), (e) => settle(e));
          return;
        }
        const data = ev.data;
        cn.rx = cn.rx.then(() => this._handle(cn, data)).catch((e) => this._emit("error", { error: e }));
      };
    });
  }

  async _http(url, init) {
    if (typeof this._o.fetch !== "function") throw new WsgateError("wsgate: no fetch available (pass options.fetch)");
    return this._o.fetch(url, init);
  }

  async _ticket(tok) {
    const res = await this._http(this._o.ticketUrl, { method: "POST", headers: { Authorization: `Bearer ${tok}` } });
    const text = await res.text();
    const body = parseJSON(text);
    if (res.status !== 200) throw new HandshakeError(res.status, (body && body.error) || "", retryAfterMs(res.headers, body));
    if (!body || !body.ticket) throw new WsgateError("wsgate: bad ticket reply");
    return body;
  }

  // _activate: renew subscriptions, flush the queue oldest first, then go live.
  _activate(cn) {
    this.welcome = cn.welcome;
    this._cur = cn;
    this.state = "connected";
    for (const s of this._subs.values()) this._resubscribe(cn, s);
    const q = this._queue;
    this._queue = [];
    for (const m of q) {
      if (m.id && !this._pending.has(m.id)) continue; // its caller gave up
      if (m.id) this._pending.get(m.id).conn = cn;
      this._write(cn, m.type, m.msg);
    }
    cn.active = true;
    this._emit("connected", { welcome: cn.welcome, expiresAt: cn.welcome.expires_at || 0 });
    this._armRefresh(cn, cn.welcome.expires_at || 0);
    if (cn.closedEarly) this._closedConn(cn, cn.closedEarly.code, cn.closedEarly.reason);
  }

  _armRefresh(cn, exp) {
    this._clearTimer(cn.refreshTimer);
    if (!exp) return;
    const skew = cn.welcome.server_time - cn.welcomeAt;
    const left = exp - (Date.now() + skew);
    const lead = Math.min(30000, left / 3);
    cn.refreshTimer = this._setTimer(() => this._refresh(cn, exp, skew), left - lead);
  }

  async _refresh(cn, exp, skew) {
    if (this._cur !== cn) return;
    try {
      const tok = await this._o.token();
      const r = await this._request("refresh", { token: tok });
      if (r.type !== "refreshed" || !(r.expires_at > 0)) throw new WsgateError("wsgate: unexpected refresh reply");
      this._emit("refreshed", { expiresAt: r.expires_at });
      this._armRefresh(cn, r.expires_at);
    } catch (e) {
      this._emit("error", { error: e });
      // Try again halfway to expiry; at expiry the server closes with 4001
      // and the reconnect asks the getter for a new token anyway.
      const left = exp - (Date.now() + skew);
      if (left > 1000 && this._cur === cn) cn.refreshTimer = this._setTimer(() => this._refresh(cn, exp, skew), left / 2);
    }
  }

  _closedConn(cn, code, reason) {
    this._clearTimer(cn.refreshTimer);
    if (this._cur === cn) this._cur = null;
    for (const [id, p] of this._pending) {
      if (p.conn === cn) { this._pending.delete(id); this._clearTimer(p.timer); p.reject(new DisconnectedError()); }
    }
    if (this._closed || cn.stopped) return;
    this.state = "disconnected";
    let delay = 0;
    let again = true;
    if (code === 1001 || code === 1012 || code === 4001) delay = 0;
    else if ([1002, 1003, 1007, 1009].includes(code)) again = false;
    else delay = backoffDelay(this._o.minBackoff, this._o.maxBackoff, this._attempt++);
    const error = new CloseError(code, reason);
    if (!again) this._stop(error);
    this._emit("disconnected", { code, reason, error, willReconnect: again, delay });
    if (again) this._loop(delay);
  }

  // _write seals (unless ping) and sends, in order.
  _write(cn, type, msg) {
    cn.tx = cn.tx.then(async () => {
      const frame = cn.signer && type !== "ping" ? await cn.signer.seal(msg) : msg;
      if (cn.ws.readyState === 1) cn.ws.send(frame);
    }).catch((e) => this._emit("error", { error: e }));
  }

  _send(type, msg, id = 0) {
    if (this._closed) throw new ClosedError();
    const cn = this._cur;
    if (!cn) {
      if (this._queue.length >= this._o.queueSize) throw new QueueFullError();
      this._queue.push({ id, type, msg });
      return;
    }
    if (id && this._pending.has(id)) this._pending.get(id).conn = cn;
    this._write(cn, type, msg);
  }

  // _request sends {type, id, ...fields} and resolves with the reply, or
  // rejects with ServerError / TimeoutError / DisconnectedError / ClosedError.
  _request(type, fields = {}, { timeout = this._o.requestTimeout } = {}) {
    return new Promise((resolve, reject) => {
      const id = ++this._nextId;
      const p = { conn: null, resolve, reject, timer: null };
      this._pending.set(id, p);
      p.timer = this._setTimer(() => {
        this._pending.delete(id);
        this._queue = this._queue.filter((q) => q.id !== id);
        reject(new TimeoutError());
      }, timeout);
      p.resolve = (r) => { this._clearTimer(p.timer); r.type === "error" ? reject(new ServerError(r)) : resolve(r); };
      p.reject = (e) => { this._clearTimer(p.timer); reject(e); };
      try {
        this._send(type, JSON.stringify({ ...fields, type, id }), id);
      } catch (e) {
        this._pending.delete(id);
        p.reject(e);
      }
    });
  }

  async _handle(cn, data) {
    if (typeof data !== "string") return;
    let m = parseJSON(data);
    if (!m || typeof m.type !== "string") { this._emit("error", { error: new WsgateError("wsgate: malformed server message") }); return; }
    if (m.type === "signed") {
      try {
        if (this._o.verify) m = JSON.parse((await verifyServer(cn.serverKeys, data)).body);
        else m = JSON.parse(dec.decode(b64urlDecode(m.sig.body)));
      } catch (e) {
        this._emit("error", { error: new WsgateError("wsgate: dropped a server-signed message: " + e.message) });
        return;
      }
    }
    switch (m.type) {
      case "message":
        try {
          await this._openPayload(m);
        } catch (e) {
          this._emit("error", { error: e }); // dropped: nothing undecryptable is delivered
          return;
        }
        this._deliver(m);
        return;
      case "joined": case "left": {
        const s = this._subs.get(m.channel);
        const h = s && (m.type === "joined" ? s._o.onJoin : s._o.onLeave);
        if (h) h(m);
        return;
      }
    }
    if (m.ref !== undefined && m.ref !== null) {
      const p = this._pending.get(m.ref);
      if (p && p.conn === cn) { this._pending.delete(m.ref); p.resolve(m); return; }
    }
    if (m.type === "recovery_failed") { const s = this._subs.get(m.channel); if (s) this._subAck(s, true, m); }
    else if (m.type === "error") this._emit("error", { error: new ServerError(m) });
  }

  _deliver(m) {
    const s = this._subs.get(m.channel);
    if (!s) return;
    if (s._hasPos && m.epoch === s._pos.epoch && m.offset <= s._pos.offset) return; // already delivered
    s._pos = { offset: m.offset, epoch: m.epoch };
    s._hasPos = true;
    if (s._o.onMessage) s._o.onMessage(m);
  }

  _resubscribe(cn, s) {
    const since = s._hasPos;
    const id = ++this._nextId;
    const done = (r, err) => this._subAck(s, since, r, err);
    this._pending.set(id, { conn: cn, resolve: (r) => done(r, null), reject: (e) => done(null, e), timer: null });
    (async () => {
      const fields = { type: "subscribe", id, channel: s.channel };
      if (since) fields.since = s._pos;
      if (s._o.token) fields.token = await s._o.token();
      this._write(cn, "subscribe", JSON.stringify(fields));
    })().catch((e) => { this._pending.delete(id); done(null, e); });
  }

  _subAck(s, sentSince, r, err) {
    if (this._subs.get(s.channel) !== s) return;
    const first = s._first;
    if (err) {
      if (first && !(err instanceof DisconnectedError)) { s._first = null; this._subs.delete(s.channel); first.reject(err); }
      return;
    }
    if (r.type === "ack") {
      // A recovered ack is followed by the missed messages, which move the position.
      if (!(sentSince && r.recovered) && typeof r.offset === "number") { s._pos = { offset: r.offset, epoch: r.epoch }; s._hasPos = true; }
      s._first = null;
      if (first) first.resolve(s);
    } else if (r.type === "recovery_failed") {
      const previous = s._pos;
      s._pos = { offset: r.offset, epoch: r.epoch };
      s._hasPos = true;
      s._first = null;
      if (first) first.resolve(s);
      const rf = { channel: s.channel, position: s._pos, previous };
      if (s._o.onRecoveryFailed) s._o.onRecoveryFailed(rf);
      else this._emit("error", { error: new RecoveryFailedError(rf) });
    } else {
      this._subs.delete(s.channel);
      s._first = null;
      const e = r.type === "error" ? new ServerError(r) : new WsgateError(`wsgate: unexpected subscribe reply ${r.type}`);
      if (first) first.reject(e);
      else if (s._o.onError) s._o.onError(e);
      else this._emit("error", { error: e });
    }
  }

  // subscribe(channel, {since, token, onMessage, onRecoveryFailed, onJoin, onLeave, onError})
  // resolves once the server acknowledged it (after the next connect when disconnected).
  subscribe(channel, opts = {}) {
    if (this._closed) return Promise.reject(new ClosedError());
    if (this._subs.has(channel)) return Promise.reject(new WsgateError(`wsgate: already subscribed to ${channel}`));
    const s = new Subscription(this, channel, opts);
    this._subs.set(channel, s);
    const p = new Promise((resolve, reject) => { s._first = { resolve, reject }; });
    if (this._cur) this._resubscribe(this._cur, s);
    return p;
  }

  // setEncryptionKeys(keys) replaces the end-to-end keys (rotation): the first
  // seals from now on, every listed key opens.
  setEncryptionKeys(keys) {
    if (!this._e2e || typeof this._e2e.channels !== "function") throw new WsgateError("wsgate: the client was made without encryption.channels");
    this._e2e.keyring = new Keyring(keys);
  }

  // _keyring(channel): the keys sealing channel, null when it is not end-to-end:
  // the server's for the channel or its namespace first, then the application's.
  _keyring(channel) {
    const e = this._e2e;
    if (!e) return null;
    if (e.delivered) {
      const i = channel.indexOf(":");
      const r = e.delivered.channels.get(channel) || (i > 0 ? e.delivered.namespaces.get(channel.slice(0, i)) : null);
      if (r) return r;
    }
    return e.keyring && e.channels(channel) ? e.keyring : null;
  }

  // _sealPayload: the payload to publish; for an end-to-end channel, its JSON
  // text sealed into an envelope (a base64 string).
  async _sealPayload(channel, payload) {
    const ring = this._keyring(channel);
    if (!ring) return payload;
    const text = JSON.stringify(payload);
    if (text === undefined) throw new TypeError("wsgate: payload must be a JSON value");
    return b64Encode(await ring.seal(channel, enc.encode(text)));
  }

  // _openPayload replaces m.payload with its plaintext when m's channel is
  // end-to-end; throws NotEncryptedError when it does not open.
  async _openPayload(m) {
    const ring = typeof m.channel === "string" ? this._keyring(m.channel) : null;
    if (!ring) return;
    const where = { channel: m.channel, offset: m.offset, epoch: m.epoch };
    let keyId = "";
    try {
      if (typeof m.payload !== "string") throw new Error("not an envelope");
      const env = b64Decode(m.payload);
      keyId = parseEnvelope(env).keyId;
      const r = await ring.open(m.channel, env);
      m.payload = JSON.parse(dec.decode(r.plaintext));
    } catch (e) {
      throw new NotEncryptedError({ ...where, keyId, reason: e.message });
    }
  }

  async publish(channel, payload, opts) {
    payload = await this._sealPayload(channel, payload);
    const r = await this._request("publish", { channel, payload }, opts);
    return { offset: r.offset, epoch: r.epoch };
  }

  async history(channel, { since, limit } = {}, opts) {
    const f = { channel };
    if (since) f.since = since;
    if (limit) f.limit = limit;
    const r = await this._request("history", f, opts);
    const publications = r.publications || [];
    for (const p of publications) {
      if (!p.channel) p.channel = channel;
      await this._openPayload(p); // never a mix of opened and unopened payloads
    }
    return { publications, offset: r.offset, epoch: r.epoch, truncated: !!r.truncated };
  }

  async presence(channel, opts) { return (await this._request("presence", { channel }, opts)).users || []; }
  async command(name, payload, opts) { return (await this._request("command", { name, payload }, opts)).result; }
  async ping(opts) { await this._request("ping", {}, opts); }
  // request(type, fields): any request type; resolves with the raw reply object.
  request(type, fields = {}, opts) { return this._request(type, fields, opts); }
  // send(type, fields): a message without reply (e.g. chat), queued while disconnected.
  send(type, fields = {}) { this._send(type, JSON.stringify({ ...fields, type })); }
}

// Subscription: a channel subscription that survives reconnects.
export class Subscription {
  constructor(client, channel, opts) {
    this.client = client;
    this.channel = channel;
    this._o = opts;
    this._pos = opts.since ? { ...opts.since } : { offset: 0, epoch: "" };
    this._hasPos = !!opts.since;
    this._first = null;
  }

  // position: the last {offset, epoch} delivered; save it to resume with since.
  get position() { return { ...this._pos }; }

  async unsubscribe(opts) {
    const c = this.client;
    if (c._subs.get(this.channel) !== this) return;
    c._subs.delete(this.channel);
    if (!c._cur) return;
    try {
      await c._request("unsubscribe", { channel: this.channel }, opts);
    } catch (e) {
      if (!(e instanceof ServerError && e.code === "not_subscribed")) throw e;
    }
  }

  publish(payload, opts) { return this.client.publish(this.channel, payload, opts); }
  history(q, opts) { return this.client.history(this.channel, q, opts); }
  presence(opts) { return this.client.presence(this.channel, opts); }
}
