// Tooltips for the coverage map: the SVG <title> works without script; this shows the same
// text at once, next to the pointer. Text is set with textContent, never as HTML.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const map = document.getElementById("coverage-map");
  const tip = document.getElementById("tip");
  if (!map || !tip) return;
  map.addEventListener("mousemove", (event) => {
    const tile = event.target.closest ? event.target.closest(".tile") : null;
    if (!tile) { tip.hidden = true; return; }
    tip.textContent = tile.dataset.tip || "";
    tip.style.left = (event.clientX + 12) + "px";
    tip.style.top = (event.clientY + 12) + "px";
    tip.hidden = false;
  });
  map.addEventListener("mouseleave", () => { tip.hidden = true; });
});
