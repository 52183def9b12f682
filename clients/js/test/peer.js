// A JavaScript client driven by another SDK's tests (clients/python): it
// subscribes to a channel with end-to-end keys, prints {"ready":true}, publishes
// the given payloads, prints every message it receives as a JSON line, and
// exits 0 after `expect` messages (1 after 30 s without them).
//   node peer.js '{"url":…,"token":…,"keys":[{"id":…,"secret":"base64:…"}],"channel":…,"publish":[…],"expect":n}'
import WebSocket from "ws";
import { Client } from "../wsgate.js";

const o = JSON.parse(process.argv[2]);
const out = (x) => process.stdout.write(JSON.stringify(x) + "\n");
const timer = setTimeout(() => { out({ error: "timed out" }); process.exit(1); }, 30000);
const c = new Client(o.url, {
  WebSocket, token: async () => o.token,
  encryption: { keys: o.keys, channels: (ch) => ch.startsWith(o.channel.split(":")[0] + ":") },
});
c.on("error", (d) => out({ error: String(d.error), name: d.error.name }));
let got = 0;
await c.connect();
await c.subscribe(o.channel, {
  onMessage: (m) => {
    out({ from: m.from, offset: m.offset, payload: m.payload });
    if (++got >= o.expect) { clearTimeout(timer); c.close(); process.exit(0); }
  },
});
out({ ready: true });
for (const p of o.publish) await c.publish(o.channel, p);
