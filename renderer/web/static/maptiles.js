// The map page: GeoJSON tiles from /tiles drawn on a canvas; the region under the pointer
// read from the tiles' UTFGrids (no hit-testing of vectors). Text is set with textContent.
"use strict";
(() => {
  const SIZE = 256;
  const canvas = document.getElementById("map");
  const ctx = canvas.getContext("2d");
  const out = document.getElementById("region");
  const where = document.getElementById("where");
  const params = new URLSearchParams(location.search);
  let z = parseInt(params.get("z") || "2", 10);
  let cx = lonToX(parseFloat(params.get("lon") || "0"), z);
  let cy = latToY(parseFloat(params.get("lat") || "20"), z);
  const tiles = new Map();   // "z/x/y" -> {status, data}
  window.mapState = { loaded: 0, failed: 0, pending: 0 };

  function lonToX(lon, zoom) { return (lon + 180) / 360 * SIZE * 2 ** zoom; }
  function latToY(lat, zoom) {
    const s = Math.sin(lat * Math.PI / 180);
    return (0.5 - Math.log((1 + s) / (1 - s)) / (4 * Math.PI)) * SIZE * 2 ** zoom;
  }
  const fills = ["#f3efe0", "#e4d8b4", "#d4c28e", "#c0a86a", "#a88e52", "#8c743e"];

  function fetchTile(key) {
    if (tiles.has(key)) return tiles.get(key);
    const entry = { status: "loading", data: null };
    tiles.set(key, entry);
    window.mapState.pending++;
    fetch("/tiles/" + key + ".json").then((r) => r.ok ? r.json() : null).then((data) => {
      entry.status = "done"; entry.data = data;
      window.mapState.loaded++; window.mapState.pending--;
      draw();
    }).catch(() => { entry.status = "done"; window.mapState.failed++; window.mapState.pending--; });
    return entry;
  }

  function visible() {
    const n = 2 ** z, list = [];
    const x0 = Math.floor((cx - canvas.width / 2) / SIZE), x1 = Math.floor((cx + canvas.width / 2) / SIZE);
    const y0 = Math.floor((cy - canvas.height / 2) / SIZE), y1 = Math.floor((cy + canvas.height / 2) / SIZE);
    for (let ty = Math.max(0, y0); ty <= Math.min(n - 1, y1); ty++)
      for (let tx = x0; tx <= x1; tx++) list.push([((tx % n) + n) % n, ty, tx]);
    return list;
  }

  function depth(f) { return (f.properties.parents || []).length; }

  function drawTile(data, ox, oy) {
    ctx.save();
    ctx.beginPath(); ctx.rect(ox, oy, SIZE, SIZE); ctx.clip();
    for (const f of data.features) {
      ctx.beginPath();
      const polys = f.geometry.type === "Polygon" ? [f.geometry.coordinates] : f.geometry.coordinates;
      for (const poly of polys) for (const ring of poly) {
        ring.forEach(([lon, lat], i) => {
          const px = lonToX(lon, z) - ox0 + ox, py = latToY(lat, z) - oy0 + oy;
          if (i === 0) ctx.moveTo(px, py); else ctx.lineTo(px, py);
        });
        ctx.closePath();
      }
      ctx.fillStyle = fills[Math.min(depth(f), fills.length - 1)];
      ctx.fill("evenodd");
      ctx.strokeStyle = "rgba(60,40,20,0.5)"; ctx.lineWidth = 0.6; ctx.stroke();
    }
    ctx.restore();
  }
  let ox0 = 0, oy0 = 0;

  function draw() {
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    const left = cx - canvas.width / 2, top = cy - canvas.height / 2;
    for (const [x, y, tx] of visible()) {
      const entry = fetchTile(z + "/" + x + "/" + y);
      if (entry.data) {
        ox0 = x * SIZE; oy0 = y * SIZE;
        drawTile(entry.data, tx * SIZE - left, y * SIZE - top);
      }
    }
    where.textContent = "zoom " + z;
  }

  function decode(grid, px, py) {
    const res = SIZE / grid.grid.length;
    const row = grid.grid[Math.min(grid.grid.length - 1, Math.floor(py / res))];
    let code = row.codePointAt(Math.min(row.length - 1, Math.floor(px / res)));
    if (code >= 93) code--;
    if (code >= 35) code--;
    return grid.keys[code - 32];
  }

  function regionAt(mx, my) {
    const wx = cx - canvas.width / 2 + mx, wy = cy - canvas.height / 2 + my;
    const n = 2 ** z, tx = Math.floor(wx / SIZE), ty = Math.floor(wy / SIZE);
    if (ty < 0 || ty >= n) return [];
    const entry = tiles.get(z + "/" + (((tx % n) + n) % n) + "/" + ty);
    if (!entry || !entry.data) return [];
    const byKey = new Map(entry.data.features.map((f) => [f.id, f]));
    const found = [];
    for (const grid of entry.data.utfgrids) {
      const key = decode(grid, wx - tx * SIZE, wy - ty * SIZE);
      const f = key ? byKey.get(key) : null;
      if (f && !found.includes(f)) found.push(f);
    }
    return found;
  }

  canvas.addEventListener("mousemove", (e) => {
    if (dragging) return;
    const r = canvas.getBoundingClientRect();
    const found = regionAt(e.clientX - r.left, e.clientY - r.top);
    out.textContent = found.length ? found.map((f) => {
      const p = f.properties;
      const extra = Object.keys(p).filter((k) => !["uid", "type", "name", "parents"].includes(k))
        .map((k) => k + " " + p[k]).join(", ");
      return p.type + " " + (p.name || p.uid) + (extra ? " (" + extra + ")" : "");
    }).join(" | ") : "\u00a0";
    out.dataset.keys = found.map((f) => f.id).join(",");
  });

  let dragging = null;
  canvas.addEventListener("mousedown", (e) => { dragging = [e.clientX, e.clientY]; });
  window.addEventListener("mouseup", () => { dragging = null; });
  window.addEventListener("mousemove", (e) => {
    if (!dragging) return;
    cx -= e.clientX - dragging[0]; cy -= e.clientY - dragging[1];
    dragging = [e.clientX, e.clientY];
    draw();
  });
  function zoom(by) {
    const nz = Math.max(0, Math.min(22, z + by));
    cx *= 2 ** (nz - z); cy *= 2 ** (nz - z); z = nz;
    draw();
  }
  document.getElementById("zoom-in").addEventListener("click", () => zoom(1));
  document.getElementById("zoom-out").addEventListener("click", () => zoom(-1));
  canvas.addEventListener("wheel", (e) => { e.preventDefault(); zoom(e.deltaY < 0 ? 1 : -1); });
  draw();
})();
