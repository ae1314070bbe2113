// Runs the sockjs-client scenarios (sockjs_scenarios.mjs) and the status page in headless
// Chromium (Debian's, driven by playwright-core), every transport concurrently in one browser.
//
// Reads {"base": "http://127.0.0.1:PORT", "transports": [...], "messages": [...], "apiKey": "..."}
// as JSON on stdin and writes {transport: {echo, close, push, page}} as JSON on stdout. Driven by
// tests/test_sockjs_clients.py.
import { readFile } from "node:fs/promises";

import { chromium } from "playwright-core";

const CHROMIUM = "/usr/bin/chromium"; // Debian's package: a test tool's own browser download cannot work here
const CHROMIUM_FLAGS = [
  "--no-sandbox", // the tests run as root in CI
  "--disable-gpu",
  // No connection to anywhere but the server under test: the machine has no other network.
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

// The status page counts `current` messages; two show that updates keep coming.
const PAGE_UPDATES = 2;
const PAGE_TIMEOUT_MS = 20000; // hang guard for the status page, like the scenarios' own

// The scenarios run as a module script in a page; it hands `runAll` to the test.
const SCENARIOS = await readFile(new URL("./sockjs_scenarios.mjs", import.meta.url), "utf8");
const SCENARIO_SCRIPT = `${SCENARIOS}\nwindow.runAll = runAll;\n`;

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return JSON.parse(Buffer.concat(chunks).toString("utf8"));
}

// Page errors and console errors, so that a test can show why something failed. Callers return
// a copy taken when their page's results are read: closing the browser context afterwards unloads
// the page, and sockjs-client's unload handler drops its JSONP callbacks while a poll's script
// may still run ("_jp.<id> is not a function"), which says nothing about the server.
function collectErrors(page) {
  const errors = [];
  page.on("pageerror", (error) => errors.push(`pageerror: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() === "error") errors.push(`console: ${message.text()} (${message.location().url})`);
  });
  return errors;
}

// The scenarios in a plain page of the server's origin (the SockJS greeting at /sockjs),
// with the sockjs-client bundle that octotrio serves.
async function runScenarios(context, base, transport, argumentsJson) {
  const page = await context.newPage();
  const errors = collectErrors(page);
  await page.goto(`${base}/sockjs`);
  await page.addScriptTag({ url: "/static/sockjs.min.js" });
  await page.addScriptTag({ type: "module", content: SCENARIO_SCRIPT });
  await page.waitForFunction(() => window.runAll !== undefined);
  // Strings cross the browser boundary as JSON text: JSON.stringify escapes lone surrogates,
  // which the protocol between Playwright and the browser would otherwise replace.
  const resultJson = await page.evaluate(
    async ({ base, transport, argumentsJson }) => {
      const options = { ...JSON.parse(argumentsJson), base, transports: [transport] };
      const results = await window.runAll(window.SockJS, options);
      return JSON.stringify(results[transport]);
    },
    { base, transport, argumentsJson },
  );
  return { ...JSON.parse(resultJson), errors: [...errors] };
}

// The status page with `transport` selected, logged in as a user would with the API key:
// what it shows once updates arrive.
async function watchStatusPage(context, base, transport, apiKey) {
  const page = await context.newPage();
  const errors = collectErrors(page);
  await page.goto(`${base}/?transport=${transport}`);
  await page.fill("#api-key", apiKey);
  await page.press("#api-key", "Enter");
  const updatesArrived = await page
    .waitForFunction((count) => Number(document.getElementById("updates").textContent) >= count, PAGE_UPDATES, {
      timeout: PAGE_TIMEOUT_MS,
    })
    .then(
      () => true,
      () => false,
    );
  return {
    updatesArrived,
    transport: await page.locator("#link").getAttribute("data-transport"),
    link: await page.locator("#link").textContent(),
    user: await page.locator("#user").textContent(),
    state: await page.locator("#state").textContent(),
    logLines: (await page.locator("#log").textContent()).split("\n").filter((line) => line).length,
    heaters: await page.locator("#temperatures li").count(),
    errors: [...errors],
  };
}

// A browser opens at most 6 HTTP/1.1 connections per host and browser context, and streaming
// and long-polling transports hold theirs open: each transport's scenarios, and each status
// page, run in a browser context of their own, so that none waits for another's connections.
async function inNewContext(browser, run) {
  const context = await browser.newContext();
  try {
    return await run(context);
  } finally {
    await context.close();
  }
}

async function runTransport(browser, transport, { base, messages, apiKey }) {
  const argumentsJson = JSON.stringify({ messages, apiKey });
  const [scenarios, page] = await Promise.all([
    inNewContext(browser, (context) => runScenarios(context, base, transport, argumentsJson)),
    inNewContext(browser, (context) => watchStatusPage(context, base, transport, apiKey)),
  ]);
  return [transport, { ...scenarios, page }];
}

const options = await readStdin();
const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_FLAGS });
try {
  const results = await Promise.all(options.transports.map((t) => runTransport(browser, t, options)));
  process.stdout.write(JSON.stringify(Object.fromEntries(results)));
} finally {
  await browser.close();
}
