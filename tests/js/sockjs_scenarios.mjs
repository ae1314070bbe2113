// What the real sockjs-client does against an octotrio server, one transport at a time.
//
// Shared by the node runner (sockjs_node.mjs) and the browser page runner (sockjs_browser.mjs,
// which injects this file into a page). Each scenario opens one SockJS connection with a
// whitelist of exactly one transport and resolves to a plain JSON-able record of what the
// client saw; assertions are made by the Python tests, which know what the server should do.
//
// Works with any `SockJS` constructor: the npm package's in node, the bundle's in a browser.

// Transport timeout passed to sockjs-client: it otherwise derives one from the measured round
// trip of /info (a few hundred ms on loopback), which a busy 2-core machine can exceed, and it
// then drops the transport with 2007. Ten seconds is a hang guard, not an expectation.
const TRANSPORT_TIMEOUT_MS = 10000;

// A scenario that has not finished after this long reports what it saw so far.
const SCENARIO_TIMEOUT_MS = 20000;

// `current` messages the push scenario waits for: the second proves updates keep coming.
const PUSH_CURRENT_COUNT = 2;

function open(SockJS, url, transport) {
  return new SockJS(url, null, { transports: [transport], timeout: TRANSPORT_TIMEOUT_MS });
}

// Run `body(done, record)` until it calls `done(record)`, throws, or the scenario times out.
function scenario(body) {
  return new Promise((resolve) => {
    const record = { opened: false, transport: null, close: null };
    const timer = setTimeout(() => resolve({ ...record, timedOut: true }), SCENARIO_TIMEOUT_MS);
    const finish = (result) => {
      clearTimeout(timer);
      resolve(result);
    };
    Promise.resolve(body(finish, record)).catch((error) => finish({ ...record, error: String(error) }));
  });
}

// Send `messages` to /echo and collect the echoes, then close.
export function echo(SockJS, base, transport, messages) {
  return scenario((done, record) => {
    const sock = open(SockJS, `${base}/echo`, transport);
    record.echoes = [];
    sock.onopen = () => {
      record.opened = true;
      record.transport = sock.transport;
      for (const message of messages) sock.send(message);
      if (messages.length === 0) sock.close();
    };
    sock.onmessage = (event) => {
      record.echoes.push(event.data);
      if (record.echoes.length === messages.length) sock.close();
    };
    sock.onclose = (event) => {
      record.close = { code: event.code, reason: event.reason };
      done(record);
    };
  });
}

// Connect to /close, which closes every session at once with c[3000,"Go away!"].
export function serverClose(SockJS, base, transport) {
  return scenario((done, record) => {
    const sock = open(SockJS, `${base}/close`, transport);
    sock.onopen = () => {
      record.opened = true;
      record.transport = sock.transport;
    };
    sock.onclose = (event) => {
      record.close = { code: event.code, reason: event.reason };
      done(record);
    };
  });
}

// A login session for the push API: a passive login with the API key (octoprint-push.md §2.2).
async function login(base, apiKey) {
  const response = await fetch(`${base}/api/login`, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-Api-Key": apiKey },
    body: JSON.stringify({ passive: true }),
  });
  if (!response.ok) throw new Error(`login failed: ${response.status} ${await response.text()}`);
  const user = await response.json();
  return `${user.name}:${user.session}`;
}

// Connect to the push API, authenticate the socket once `connected` arrives, and note the type
// of each message until enough `current` arrived.
export function push(SockJS, base, transport, apiKey) {
  return scenario(async (done, record) => {
    const auth = await login(base, apiKey);
    const sock = open(SockJS, `${base}/sockjs`, transport);
    record.types = [];
    record.state = null;
    sock.onopen = () => {
      record.opened = true;
      record.transport = sock.transport;
    };
    sock.onmessage = (event) => {
      // OctoPrint frames carry JSON objects, which sockjs-client delivers already parsed.
      const message = typeof event.data === "string" ? JSON.parse(event.data) : event.data;
      const type = Object.keys(message)[0];
      record.types.push(type);
      // Client messages are JSON text, like OctoPrint's own client sends them.
      if (type === "connected") sock.send(JSON.stringify({ auth }));
      if (type === "current") record.state = message.current.state.text;
      if (record.types.filter((t) => t === "current").length === PUSH_CURRENT_COUNT) sock.close();
    };
    sock.onclose = (event) => {
      record.close = { code: event.code, reason: event.reason };
      done(record);
    };
  });
}

// Every scenario for every transport, concurrently: {transport: {echo, close, push}}.
// `apiKey` is the server's global API key, for the push API's login.
export async function runAll(SockJS, { base, transports, messages, apiKey }) {
  const results = await Promise.all(
    transports.map(async (transport) => {
      const [echoed, closed, pushed] = await Promise.all([
        echo(SockJS, base, transport, messages),
        serverClose(SockJS, base, transport),
        push(SockJS, base, transport, apiKey),
      ]);
      return [transport, { echo: echoed, close: closed, push: pushed }];
    }),
  );
  return Object.fromEntries(results);
}
