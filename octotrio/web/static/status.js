// octotrio's status page: a small client of OctoPrint's push API over SockJS.
//
// 1. Connect to /sockjs with sockjs-client, on the transport picked in the selector
//    (?transport=NAME in the page's URL; none means sockjs-client picks the best one).
// 2. The server sends JSON objects with one key each: {"connected": ...} first, then
//    {"history": ...} with the recent past, then {"current": ...} whenever something changed
//    (at most twice a second) and {"event": ...} as things happen.
//    Until the socket is logged in, `connected` is all it gets: on `connected`, log in with the
//    API key (a "passive login" trades it for a login session) and send {"auth": "name:session"}.
// 3. history and current have the same fields: state, job, progress, and the temperatures
//    and terminal lines that are new since the previous message. Draw them.
// 4. When the connection closes, say why and connect again after a pause.
"use strict";

const CHART_SECONDS = 600; // the chart shows at most the last ten minutes of temperatures
const MIN_CHART_SECONDS = 60; // and at least one minute, so a fresh page does not zoom into noise
const MAX_LOG_LINES = 500; // older terminal lines scroll out, so the page stays small
const RECONNECT_DELAY_MS = 2000; // pause before reconnecting, so a stopped server is not hammered
const COLORS = ["#e53935", "#1e88e5", "#43a047", "#fb8c00", "#8e24aa"];
const API_KEY_ITEM = "octotrio.apiKey"; // where the page remembers the API key (localStorage)

const element = (id) => document.getElementById(id);
const transport = new URLSearchParams(location.search).get("transport") || "";
let updates = 0; // how many `current` messages arrived: shows that the page is live
let samples = []; // temperature samples {time, tool0: {actual, target}, bed: ...}, oldest first
let sock = null; // the SockJS connection
let auth = null; // "name:session" of our login session, reused when the socket reconnects

function showLink(state, text) {
  element("link").dataset.state = state;
  element("link").textContent = text;
}

function connect() {
  if (typeof SockJS === "undefined") {
    showLink("error", "sockjs-client did not load: run `npm ci` in the repository, then reload");
    return;
  }
  // A whitelist of one transport forces it; without one, sockjs-client tries them in turn.
  sock = new SockJS("/sockjs", null, transport ? { transports: [transport] } : {});
  sock.onopen = () => {
    showLink("open", `connected via ${sock.transport}`);
    element("link").dataset.transport = sock.transport;
  };
  // OctoPrint puts JSON objects (not strings) in SockJS frames: sockjs-client hands them over parsed.
  sock.onmessage = (event) => receive(typeof event.data === "string" ? JSON.parse(event.data) : event.data);
  sock.onclose = (event) => {
    showLink("closed", `closed (${event.code} ${event.reason}), reconnecting…`);
    setTimeout(connect, RECONNECT_DELAY_MS);
  };
}

function receive(message) {
  const [type, payload] = Object.entries(message)[0];
  if (type === "connected") {
    element("server").textContent = `OctoPrint ${payload.display_version}`;
    samples = []; // a new session starts with a fresh history
    element("log").textContent = "";
    authenticate();
  } else if (type === "reauthRequired") {
    auth = null; // the login session ended or went stale: log in anew
    authenticate();
  } else if (type === "history" || type === "current") {
    if (type === "current") element("updates").textContent = ++updates;
    showState(payload.state);
    showJob(payload.job, payload.progress);
    addTemperatures(payload.temps);
    addLogLines(payload.logs);
  }
}

// Log the socket in: reuse our login session, or make one from the API key.
async function authenticate() {
  if (auth === null) auth = await passiveLogin(localStorage.getItem(API_KEY_ITEM));
  if (auth !== null && sock.readyState === SockJS.OPEN) sock.send(JSON.stringify({ auth }));
}

// POST /api/login {"passive": true} with the API key answers the user with a fresh session.
async function passiveLogin(apiKey) {
  if (!apiKey) {
    element("user").textContent = "not logged in: enter the API key";
    return null;
  }
  const response = await fetch("/api/login", {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-Api-Key": apiKey },
    body: JSON.stringify({ passive: true }),
  });
  const answer = await response.json();
  if (!response.ok) {
    element("user").textContent = `login failed: ${answer.error}`;
    return null;
  }
  element("user").textContent = `logged in as ${answer.name}`;
  return `${answer.name}:${answer.session}`;
}

function showState(state) {
  element("state").textContent = state.error ? `${state.text}: ${state.error}` : state.text;
}

function showJob(job, progress) {
  element("job-file").textContent = job.file.name || "no file selected";
  element("job-progress").value = progress.completion ?? 0; // null while no job runs
  const times = [];
  if (progress.completion !== null) times.push(`${progress.completion.toFixed(1)} %`);
  if (progress.printTime !== null) times.push(`${formatSeconds(progress.printTime)} printing`);
  if (progress.printTimeLeft !== null) times.push(`${formatSeconds(progress.printTimeLeft)} left`);
  element("job-times").textContent = times.join(", ");
}

function formatSeconds(seconds) {
  const minutes = Math.floor(seconds / 60);
  return `${minutes}:${String(Math.round(seconds % 60)).padStart(2, "0")}`;
}

function addTemperatures(temps) {
  if (temps.length === 0) return;
  samples.push(...temps);
  const newest = samples[samples.length - 1].time;
  samples = samples.filter((sample) => sample.time > newest - CHART_SECONDS);
  drawChart(newest);
}

// Heaters the printer reports: every key of a sample but "time", if it ever had a reading.
function heaters() {
  const names = new Set();
  for (const sample of samples) {
    for (const [name, reading] of Object.entries(sample)) {
      if (name !== "time" && reading.actual !== null) names.add(name);
    }
  }
  return [...names].sort();
}

function drawChart(newest) {
  const width = 600, height = 200, top = 10, bottom = 190, left = 30;
  const readings = samples.flatMap((s) => heaters().flatMap((h) => [s[h]?.actual, s[h]?.target]));
  const highest = Math.max(50, ...readings.filter((t) => typeof t === "number"));
  const maxTemp = Math.ceil(highest / 50) * 50; // gridlines every 50 °C
  const seconds = Math.max(MIN_CHART_SECONDS, newest - samples[0].time);
  const x = (time) => left + ((time - (newest - seconds)) / seconds) * (width - left);
  const y = (temp) => bottom - (temp / maxTemp) * (bottom - top);

  let svg = "";
  for (let temp = 0; temp <= maxTemp; temp += 50) {
    svg += `<line class="grid" x1="${left}" x2="${width}" y1="${y(temp)}" y2="${y(temp)}"/>`;
    svg += `<text class="label" x="2" y="${y(temp) + 3}">${temp}°</text>`;
  }
  const legend = [];
  heaters().forEach((heater, index) => {
    const color = COLORS[index % COLORS.length];
    for (const kind of ["actual", "target"]) {
      const points = samples
        .filter((s) => s[heater] && s[heater][kind] !== null)
        .map((s) => `${x(s.time).toFixed(1)},${y(s[heater][kind]).toFixed(1)}`);
      svg += `<polyline class="${kind}" stroke="${color}" points="${points.join(" ")}"/>`;
    }
    const last = samples[samples.length - 1][heater];
    if (last) legend.push({ heater, color, text: `${heater} ${last.actual} / ${last.target} °C` });
  });
  element("chart").innerHTML = svg;

  const list = element("temperatures");
  list.replaceChildren(
    ...legend.map(({ color, text }) => {
      const item = document.createElement("li");
      item.style.setProperty("--color", color);
      item.textContent = text;
      return item;
    }),
  );
}

function addLogLines(lines) {
  if (lines.length === 0) return;
  const log = element("log");
  const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 2;
  const kept = (log.textContent + lines.join("\n") + "\n").split("\n").slice(-MAX_LOG_LINES - 1);
  log.textContent = kept.join("\n");
  if (atBottom) log.scrollTop = log.scrollHeight; // follow the log unless the reader scrolled up
}

element("login").onsubmit = (event) => {
  event.preventDefault(); // stay on the page: the form only stores the key
  localStorage.setItem(API_KEY_ITEM, element("api-key").value);
  auth = null;
  authenticate();
};
element("transport").value = transport;
element("transport").onchange = (event) => {
  location.search = event.target.value ? `?transport=${event.target.value}` : "";
};
connect();
