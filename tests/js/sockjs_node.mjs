// Runs the sockjs-client scenarios (sockjs_scenarios.mjs) in node, every transport concurrently.
//
// Reads {"base": "http://127.0.0.1:PORT", "transports": [...], "messages": [...], "apiKey": "..."}
// as JSON on stdin and writes {transport: {echo, close, push}} as JSON on stdout. Driven by
// tests/test_sockjs_clients.py.
import SockJS from "sockjs-client";

import { runAll } from "./sockjs_scenarios.mjs";

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return JSON.parse(Buffer.concat(chunks).toString("utf8"));
}

const results = await runAll(SockJS, await readStdin());
// Exit once the output is written: scenarios that timed out may still hold sockets and timers.
process.stdout.write(JSON.stringify(results), () => process.exit(0));
