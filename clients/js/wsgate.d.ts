// Type declarations for wsgate.js (the wsgate client). Behaviour: docs/clients.md.

export const SUBPROTOCOL: "wsgate.v1";
export const VERSION: 1;
export const MAX_SAFE_INTEGER: number;

// ---- reconnecting client -----------------------------------------------------------

export type TokenGetter = () => Promise<string> | string;
export type ClientState = "disconnected" | "connecting" | "connected" | "closed";

export interface Position { offset: number; epoch: string; }

export interface Welcome {
  type: "welcome";
  conn_id: string;
  user: string;
  server_time: number;
  expires_at?: number;
  protocol?: string;
  limits?: Record<string, number>;
}

export interface Message {
  type: "message";
  channel: string;
  offset: number;
  epoch: string;
  from?: string;
  timestamp: number;
  payload: unknown;
}

export interface RecoveryFailed { channel: string; position: Position; previous: Position; }
export interface PresenceEvent { type: "joined" | "left"; channel: string; user: string; conn_id: string; }
export interface ClientInfo { conn_id: string; user: string; }
export interface History { publications: Message[]; offset: number; epoch: string; truncated: boolean; }

export interface DisconnectedEvent {
  /** WebSocket close code; 0 when the attempt failed before a connection. */
  code: number;
  reason: string;
  error: Error;
  willReconnect: boolean;
  /** ms the client waits before the next attempt. */
  delay: number;
}

export interface ClientEvents {
  connecting: {};
  connected: { welcome: Welcome; expiresAt: number };
  disconnected: DisconnectedEvent;
  error: { error: Error };
  refreshed: { expiresAt: number };
}

export interface PopKey { alg: "ES256" | "EdDSA"; privateKey: CryptoKey; publicKey: CryptoKey; }

export interface ClientOptions {
  /** Returns a current JWT; called before every connection attempt and before expiry. */
  token: TokenGetter;
  /** Where the token goes: a one-time ticket (default, works in browsers), the subprotocol
   *  header, or an Authorization header (needs a WebSocket constructor taking
   *  (url, protocols, {headers}), like Node's ws package). Never the URL. */
  credential?: "ticket" | "subprotocol" | "header";
  /** WebSocket constructor; default globalThis.WebSocket (pass ws's on Node 20). */
  WebSocket?: any;
  /** fetch for tickets and keys; default globalThis.fetch. */
  fetch?: typeof fetch;
  /** Default: the URL's origin + /v1/tickets. */
  ticketUrl?: string;
  /** Reconnect delay bounds (ms): attempt n waits random [0, min(max, min·2ⁿ)]. Defaults 250 / 30000. */
  minBackoff?: number;
  maxBackoff?: number;
  /** Default request timeout (ms); default 10000. */
  requestTimeout?: number;
  /** Messages kept while disconnected (default 256); beyond: QueueFullError. */
  queueSize?: number;
  /** Sign every message but ping. */
  integrity?: "" | "hmac" | "pop";
  popKey?: PopKey | null;
  /** Verify server-signed messages against /.well-known/wsgate-keys.json. */
  verifyServer?: boolean;
  /** Third argument for the WebSocket constructor (ws: {ca}, ...). */
  wsOptions?: Record<string, unknown>;
  /** Seal and open the payloads of end_to_end channels (docs/encryption.md). */
  encryption?: EncryptionOptions | null;
}

/** An application master key: id (1-64 of [A-Za-z0-9._-]) and secret (>= 32 bytes, or "base64:…"). */
export interface EncryptionKey { id: string; secret: Uint8Array | ArrayBuffer | string; }

export interface EncryptionOptions {
  /** Application keys: the first seals, every key opens. */
  keys?: EncryptionKey[];
  /** Whether a channel is sealed with keys (its namespace has encryption: end_to_end). Required with keys. */
  channels?: (channel: string) => boolean;
  /** Fetch, at every connection, the keys the ticket endpoint delivers for the end_to_end
   *  channels the token grants; channels with delivered keys use those. */
  fromServer?: boolean;
}

export interface RequestOptions { timeout?: number; }

export interface SubscribeOptions {
  since?: Position;
  token?: TokenGetter;
  onMessage?: (m: Message) => void;
  onRecoveryFailed?: (rf: RecoveryFailed) => void;
  onJoin?: (e: PresenceEvent) => void;
  onLeave?: (e: PresenceEvent) => void;
  onError?: (e: Error) => void;
}

export class Client {
  constructor(url: string, options: ClientOptions);
  readonly url: string;
  state: ClientState;
  welcome: Welcome | null;
  /** Why the client stopped, once closed. */
  error: Error | null;
  on<K extends keyof ClientEvents>(event: K, fn: (detail: ClientEvents[K]) => void): () => void;
  connect(): Promise<Welcome>;
  close(): void;
  subscribe(channel: string, options?: SubscribeOptions): Promise<Subscription>;
  publish(channel: string, payload: unknown, options?: RequestOptions): Promise<Position>;
  history(channel: string, query?: { since?: Position; limit?: number }, options?: RequestOptions): Promise<History>;
  presence(channel: string, options?: RequestOptions): Promise<ClientInfo[]>;
  command(name: string, payload: unknown, options?: RequestOptions): Promise<unknown>;
  ping(options?: RequestOptions): Promise<void>;
  request(type: string, fields?: Record<string, unknown>, options?: RequestOptions): Promise<Record<string, unknown>>;
  send(type: string, fields?: Record<string, unknown>): void;
  /** Replaces the end-to-end keys (rotation): the first seals from now on, all open. */
  setEncryptionKeys(keys: EncryptionKey[]): void;
}

export class Subscription {
  readonly client: Client;
  readonly channel: string;
  readonly position: Position;
  unsubscribe(options?: RequestOptions): Promise<void>;
  publish(payload: unknown, options?: RequestOptions): Promise<Position>;
  history(query?: { since?: Position; limit?: number }, options?: RequestOptions): Promise<History>;
  presence(options?: RequestOptions): Promise<ClientInfo[]>;
}

export class WsgateError extends Error {}
export class HandshakeError extends WsgateError {
  status: number;
  code: string;
  /** ms */
  retryAfter: number;
  readonly terminal: boolean;
}
export class ServerError extends WsgateError {
  code: string;
  serverMessage: string;
  path: string;
  /** ms */
  retryAfter: number;
}
export class CloseError extends WsgateError { code: number; reason: string; }
export class TimeoutError extends WsgateError {}
export class ClosedError extends WsgateError {}
export class QueueFullError extends WsgateError {}
export class DisconnectedError extends WsgateError {}
export class RecoveryFailedError extends WsgateError { recovery: RecoveryFailed; }
/** A payload of an end-to-end channel did not open; the message was dropped. */
export class NotEncryptedError extends WsgateError { channel: string; offset: number; epoch: string; keyId: string; reason: string; }

// ---- end-to-end encryption -------------------------------------------------------------

/** Standard padded base64 (strict decoding). */
export function b64Encode(bytes: Uint8Array | ArrayBuffer): string;
export function b64Decode(str: string): Uint8Array;
/** HKDF-SHA256(secret, salt = keyId, info = "wsgate-enc-v1|" + channel), 32 bytes. */
export function channelKey(secret: Uint8Array | ArrayBuffer | string, keyId: string, channel: string): Promise<Uint8Array>;
export function parseEnvelope(env: Uint8Array): { keyId: string; header: Uint8Array; nonce: Uint8Array; ciphertext: Uint8Array };
export function sealEnvelope(key: Uint8Array | CryptoKey, keyId: string, channel: string, plaintext: Uint8Array, nonce?: Uint8Array): Promise<Uint8Array>;
export function openEnvelope(key: Uint8Array | CryptoKey, channel: string, env: Uint8Array): Promise<Uint8Array>;
export class Keyring {
  constructor(keys: EncryptionKey[]);
  readonly sealingKeyId: string;
  readonly keyIds: string[];
  seal(channel: string, plaintext: Uint8Array, nonce?: Uint8Array): Promise<Uint8Array>;
  open(channel: string, env: Uint8Array): Promise<{ plaintext: Uint8Array; keyId: string }>;
}

// ---- integrity layer -----------------------------------------------------------------

export function b64urlEncode(bytes: Uint8Array | ArrayBuffer): string;
export function b64urlDecode(str: string): Uint8Array;
export function randomBytes(n: number): Uint8Array;
export interface SigHeader { alg: string; kid: string; type: string; seq: number; ts: number; nonce: Uint8Array; }
export function signingInput(h: SigHeader, subject: string, connId: string, body: Uint8Array): Uint8Array;
export function handshakeInput(alg: string, jkt: string, host: string, path: string, ts: number, nonce: Uint8Array): Uint8Array;
export function serverSigningInput(alg: string, kid: string, ts: number, body: Uint8Array): Uint8Array;
export function importHmacKey(keyB64: string): Promise<CryptoKey>;
export function ed25519Supported(): Promise<boolean>;
export function generatePopKey(alg?: "ES256" | "EdDSA"): Promise<PopKey>;
export function canonicalJwk(jwk: JsonWebKey): string;
export function publicJwk(publicKey: CryptoKey): Promise<JsonWebKey>;
export function thumbprint(jwk: JsonWebKey): Promise<string>;
export function importPublicJwk(jwk: JsonWebKey, alg: string): Promise<CryptoKey>;
export function sign(alg: string, key: CryptoKey, data: Uint8Array): Promise<Uint8Array>;
export function verify(alg: string, key: CryptoKey, data: Uint8Array, sig: Uint8Array): Promise<boolean>;
export function encodeEnvelope(h: SigHeader, body: Uint8Array, mac: Uint8Array): string;

export interface SignerOptions { subject: string; now?: () => number; random?: (n: number) => Uint8Array; }
export class Signer {
  static hmac(o: { kid: string; key: string } & SignerOptions): Promise<Signer>;
  static pop(o: PopKey & SignerOptions): Promise<Signer>;
  readonly alg: string;
  readonly kid: string;
  readonly thumbprint: string;
  connId: string;
  seq: number;
  bind(connId: string): void;
  seal(msg: string | Record<string, unknown>): Promise<string>;
  handshakeParams(host: string, path: string): Promise<URLSearchParams>;
}

export function importServerKeys(jwks: string | { keys: JsonWebKey[] }): Promise<Map<string, CryptoKey>>;
export function verifyServer(keys: Map<string, CryptoKey>, text: string, window?: number): Promise<{ body: string; ts: number }>;

/** The earlier single-connection client (ticket, signer, no reconnect); kept for compatibility. */
export class WsgateClient {
  constructor(url: string, options?: {
    ticket?: string; ticketParam?: string; signer?: Signer | null; serverKeys?: Map<string, CryptoKey> | null;
    requireSigned?: boolean; welcomeType?: string; connIdField?: string; WebSocketImpl?: any;
  });
  onmessage: (obj: any) => void;
  onerror: (e: any) => void;
  onclose: (e: any) => void;
  connId: string;
  connect(): Promise<any>;
  send(msg: string | Record<string, unknown>): Promise<string>;
  close(code?: number, reason?: string): void;
}
