// The sensor page: the history from /api/readings, then every new reading live over
// server-sent events (/api/live). No libraries, no network beyond the device itself.
"use strict";

const KEEP = 100;
let readings = [];
const $ = (id) => document.getElementById(id);

// Draws the readings: the latest value, the label, and a line scaled to their range.
function draw() {
  const last = readings[readings.length - 1];
  if (!last) return;
  $("now").textContent = last.celsius.toFixed(2);
  $("label").textContent = last.label;
  const values = readings.map((r) => r.celsius);
  const lo = Math.min(...values), hi = Math.max(...values), span = hi - lo || 1;
  $("line").setAttribute("points", values
    .map((v, i) => `${(i / (KEEP - 1)) * 100},${95 - ((v - lo) / span) * 90}`)
    .join(" "));
  const gap = readings.length > 1 ? last.unix_ms - readings[readings.length - 2].unix_ms : 0;
  $("meta").textContent = `reading #${last.seq} at ${new Date(last.unix_ms).toLocaleTimeString()}` +
    (gap ? `, ${gap} ms after the previous one` : "") + `; range ${lo.toFixed(2)}–${hi.toFixed(2)} °C`;
}

// Adds a reading, keeping the last KEEP and ignoring one already seen.
function add(reading) {
  const last = readings[readings.length - 1];
  if (last && reading.seq <= last.seq) return;
  readings.push(reading);
  if (readings.length > KEEP) readings.shift();
  draw();
}

// Refills the history: at start, and after a reconnect (events sent meanwhile were missed).
async function refill() {
  const response = await fetch("/api/readings");
  readings = [];
  (await response.json()).forEach(add);
}

const live = new EventSource("/api/live");
live.addEventListener("open", () => { $("state").textContent = "live"; refill(); });
live.addEventListener("error", () => { $("state").textContent = "reconnecting…"; });
live.addEventListener("reading", (event) => add(JSON.parse(event.data)));

$("stats").addEventListener("click", async () => {
  const response = await fetch(`/api/stats?samples=${encodeURIComponent($("samples").value)}`);
  $("stats-out").textContent = response.ok
    ? Object.entries(await response.json()).map(([k, v]) => `${k} ${v}`).join("  ")
    : `${response.status}: ${await response.text()}`;
});

$("save").addEventListener("click", async () => {
  const response = await fetch("/api/config", {
    method: "POST",
    headers: { "Content-Type": "application/json", "Authorization": `Bearer ${$("token").value}` },
    body: JSON.stringify({ interval_ms: Number($("interval").value), label: $("new-label").value }),
  });
  $("save-out").textContent = response.ok ? "saved" : `${response.status}: ${await response.text()}`;
});
