// Starts real wsgate servers for the tests: the binary is built once from this
// repository (or taken from $WSGATETEST_BIN) and run with `serve --dev` and a
// config file; URL, admin token and secret are read from the dev banner. Also
// the helpers both test files use to make, subscribe and kick clients.
import { spawn, execFileSync } from "node:child_process";
import { createHmac, randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";
import { Client } from "../wsgate.js";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
let binary = process.env.WSGATETEST_BIN || "";

export function wsgateBinary() {
  if (binary) return binary;
  const dir = mkdtempSync(join(tmpdir(), "wsgate-js-"));
  binary = join(dir, "wsgate");
  execFileSync("go", ["build", "-o", binary, "./cmd/wsgate"], { cwd: repo, stdio: "inherit", timeout: 600000 });
  if (!existsSync(binary)) throw new Error("go build produced no binary");
  return binary;
}

export const MASTER_KEY = "base64:" + Buffer.alloc(32, 7).toString("base64");
// A fixed token key next to the random dev key: tokens stay valid across a
// restart (the dev key changes on every start).
export const TOKEN_KEY = "base64:" + Buffer.alloc(32, 9).toString("base64");

// The test config: plaintext on loopback (so Node's fetch needs no CA), the
// chat namespace, a small-history namespace, an hmac-signed one, a server-signed
// one and an end-to-end encrypted one (vault).
export function baseConfig(extra = "", { integrityMode = "off" } = {}) {
  return `insecure_plaintext: true
abuse: {max_strikes: 1000}
auth:
  keys: [{id: test, algorithms: [HS256], secret: "${TOKEN_KEY}"}]
channels:
  namespaces:
    chat: {client_publish: true, history_size: 100, history_ttl: 10m, presence: true, join_leave: true}
    small: {client_publish: true, history_size: 3, history_ttl: 10m}
    secure: {client_publish: true, history_size: 10, history_ttl: 10m, integrity: hmac}
    signed: {client_publish: true, history_size: 10, history_ttl: 10m, sign_output: true}
    vault: {client_publish: true, history_size: 100, history_ttl: 10m, encryption: end_to_end}
integrity:
  mode: ${integrityMode}
  master_keys: [{id: k1, secret: "${MASTER_KEY}"}]
${extra}`;
}

// start({config, listen}) -> {url, admin, adminToken, secret, stop()}
export async function start({ config = baseConfig(), listen = "127.0.0.1:0" } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "wsgate-js-cfg-"));
  const file = join(dir, "wsgate.yaml");
  writeFileSync(file, config);
  const proc = spawn(wsgateBinary(), ["serve", "--dev", "--dev-unsafe-config", "--config", file, "--listen", listen, "--admin-listen", "127.0.0.1:0", "--log-level", "warn"],
    { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  proc.stderr.on("data", (d) => { if (stderr.length < 20000) stderr += d; });
  const srv = await new Promise((res, rej) => {
    let out = "";
    const timer = setTimeout(() => { proc.kill("SIGKILL"); rej(new Error("no dev banner within 60 s:\n" + out + stderr)); }, 60000);
    proc.on("exit", (code) => { clearTimeout(timer); rej(new Error(`wsgate exited ${code} before the banner:\n${out}${stderr}`)); });
    proc.stdout.on("data", (d) => {
      out += d;
      const url = /WebSocket URL:\s+(\S+)/.exec(out);
      const admin = /Admin listener:\s+(\S+)\s+\(admin token: ([^)\s]+)\)/.exec(out);
      const secret = /Dev HMAC secret:\s+(\S+)/.exec(out);
      if (url && admin && secret) {
        clearTimeout(timer);
        proc.removeAllListeners("exit");
        res({ url: url[1], admin: admin[1], adminToken: admin[2], secret: secret[1] });
      }
    });
  });
  const exited = new Promise((r) => proc.on("exit", (code, sig) => r({ code, sig })));
  srv.listen = new URL(srv.url).host;
  srv.stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGTERM");
    const t = setTimeout(() => proc.kill("SIGKILL"), 15000);
    const r = await exited;
    clearTimeout(t);
    return r;
  };
  srv.token = (sub, { ttl = 3600, claims = { channels: { sub: ["chat:*", "small:*", "secure:*", "signed:*", "vault:*"], pub: ["chat:*", "small:*", "secure:*", "signed:*", "vault:*"] } } } = {}) =>
    mint(TOKEN_KEY, sub, ttl, claims);
  srv.kick = async (connId) => {
    const r = await fetch(`${srv.admin}/api/v1/connections/${connId}/kick`, { method: "POST", headers: { Authorization: `Bearer ${srv.adminToken}` } });
    if (r.status !== 200) throw new Error(`kick: ${r.status}`);
  };
  return srv;
}

const b64u = (b) => Buffer.from(b).toString("base64url");

// mint signs an HS256 JWT with the test key (kid "test").
export function mint(secret, sub, ttlSec, claims = {}) {
  const key = secret.startsWith("base64:") ? Buffer.from(secret.slice(7), "base64") : Buffer.from(secret);
  const now = Math.floor(Date.now() / 1000);
  const head = b64u(JSON.stringify({ alg: "HS256", typ: "JWT", kid: "test" }));
  const body = b64u(JSON.stringify({ sub, iat: now, nbf: now - 1, exp: now + ttlSec, jti: randomBytes(8).toString("hex"), ...claims }));
  const sig = createHmac("sha256", key).update(`${head}.${body}`).digest("base64url");
  return `${head}.${body}.${sig}`;
}

// waitFor(emitter-ish, event, pred, ms): resolves with the first matching event detail.
export function waitFor(client, event, pred = () => true, ms = 15000) {
  return new Promise((res, rej) => {
    const t = setTimeout(() => { off(); rej(new Error(`no ${event} event within ${ms} ms`)); }, ms);
    const off = client.on(event, (d) => { if (pred(d)) { clearTimeout(t); off(); res(d); } });
  });
}

// Inbox collects messages with bounded waits.
export class Inbox {
  constructor() { this.items = []; this.waiters = []; }
  push(x) { this.items.push(x); for (const w of this.waiters.splice(0)) w(); }
  async take(n, ms = 15000) {
    const deadline = Date.now() + ms;
    while (this.items.length < n) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`got ${this.items.length} of ${n} items within ${ms} ms: ${JSON.stringify(this.items)}`);
      await new Promise((r) => { const t = setTimeout(r, left); this.waiters.push(() => { clearTimeout(t); r(); }); });
    }
    return this.items.splice(0, n);
  }
}

const made = [];

// client(s, sub, opts): a Client of server s as sub (its token from s), with
// short backoffs; opts override. closeClients closes every client made.
export function client(s, sub, opts = {}) {
  const c = new Client(s.url, { WebSocket, token: async () => s.token(sub), minBackoff: 20, maxBackoff: 200, ...opts });
  made.push(c);
  return c;
}

export function closeClients() { for (const c of made.splice(0)) c.close(); }

// subscribed(c, channel, opts): connects c and subscribes it (opts go to
// subscribe): {inbox, errors, sub}, its messages and its error events.
export async function subscribed(c, channel, opts = {}) {
  await c.connect();
  const inbox = new Inbox();
  const errors = new Inbox();
  c.on("error", (d) => errors.push(d.error));
  const sub = await c.subscribe(channel, { onMessage: (m) => inbox.push(m), ...opts });
  return { inbox, errors, sub };
}

// nothingMore(c, inbox): after a ping round trip anything in flight to c has
// arrived: inbox got nothing more.
export async function nothingMore(c, inbox) {
  await c.ping();
  if (inbox.items.length) throw new Error(`unexpected: ${JSON.stringify(inbox.items)}`);
}

// kicked(s, c): kicks c's connection by the admin API; its disconnected event.
export async function kicked(s, c) {
  const gone = waitFor(c, "disconnected");
  await s.kick(c.welcome.conn_id);
  return gone;
}
