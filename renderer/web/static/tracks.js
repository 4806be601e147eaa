// The /tracks page: reads /api/tracks as NDJSON while it streams and draws one SVG
// polyline per vessel, redrawn after every chunk, so tracks appear as the server sends them.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const svg = document.getElementById("tracks-map");
  if (!svg) return;
  const layer = document.getElementById("tracks-lines");
  const status = document.getElementById("tracks-status");
  const NS = "http://www.w3.org/2000/svg";
  const colors = ["#1e3a8a", "#b91c1c", "#047857", "#7c3aed", "#c2410c", "#0e7490", "#a16207"];

  const page = new URLSearchParams(window.location.search);
  const params = new URLSearchParams();
  for (const id of (page.get("id") || "").split(/[\s,]+/)) if (id) params.append("id", id);
  for (const key of ["bbox", "from", "to", "sample"]) {
    if (page.get(key)) params.set(key, page.get(key));
  }
  params.set("format", "ndjson");
  params.set("limit", "50000");
  const url = "/api/tracks?" + params.toString();
  document.getElementById("tracks-json").href = url.replace("format=ndjson", "format=json");

  const tracks = new Map();  // vessel -> {points: [], line}
  let box = null;
  let rows = 0;

  function add(report) {
    let track = tracks.get(report.vessel);
    if (!track) {
      const line = document.createElementNS(NS, "polyline");
      line.setAttribute("fill", "none");
      line.setAttribute("stroke", colors[tracks.size % colors.length]);
      line.setAttribute("stroke-width", "1.5");
      line.setAttribute("vector-effect", "non-scaling-stroke");
      line.setAttribute("class", "track");
      line.dataset.vessel = report.vessel;
      const title = document.createElementNS(NS, "title");
      title.textContent = Object.entries(report.ids).map(([k, v]) => k + " " + v).join(", ");
      line.appendChild(title);
      layer.appendChild(line);
      track = {points: [], line};
      tracks.set(report.vessel, track);
    }
    track.points.push(report.lon.toFixed(5) + "," + (-report.lat).toFixed(5));
    const x = report.lon, y = -report.lat;
    box = box ? [Math.min(box[0], x), Math.min(box[1], y), Math.max(box[2], x), Math.max(box[3], y)]
              : [x, y, x, y];
    rows += 1;
  }

  function render(done) {
    for (const track of tracks.values()) track.line.setAttribute("points", track.points.join(" "));
    if (box) {
      const pad = Math.max(box[2] - box[0], box[3] - box[1], 0.1) * 0.05;
      svg.setAttribute("viewBox", [box[0] - pad, box[1] - pad, box[2] - box[0] + 2 * pad,
                                   box[3] - box[1] + 2 * pad].join(" "));
    }
    status.textContent = rows + " reports of " + tracks.size + " vessels" +
      (done ? "" : " so far...");
  }

  async function draw() {
    const response = await fetch(url);
    if (!response.ok) {
      const body = await response.json().catch(() => null);
      status.textContent = body && body.error ? body.error.message : "error " + response.status;
      status.className = "error";
      return;
    }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let more = null;
    for (;;) {
      const {done, value} = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, {stream: true});
      let end;
      while ((end = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, end);
        buffer = buffer.slice(end + 1);
        if (!line) continue;
        const item = JSON.parse(line);
        if (item.time === undefined) more = item.next; else add(item);
      }
      render(false);
    }
    render(true);
    if (more) status.textContent += " (first 50000; narrow the query for the rest)";
    svg.dataset.done = "true";
  }

  draw().catch((err) => { status.textContent = "error: " + err; status.className = "error"; });
});
