// cm-label: correct a cloud mask in the browser.  Plain JS, no framework, no network but this server.
// The edit is one byte a map pixel, row-major, north-up (row 0 = latitude +90): 0 clear, 1 cloud,
// 2 no data (never changed here).  Every request carries the page's ?token=.
"use strict";
(function () {
  const CLEAR = 0, CLOUD = 1, NO_DATA = 2;
  const COLOURS = { [CLEAR]: [0, 0, 0, 0], [CLOUD]: [0, 220, 255, 255], [NO_DATA]: [110, 70, 150, 110] };
  const token = new URLSearchParams(location.search).get("token") || "";
  const api = (path) => path + "?token=" + encodeURIComponent(token);
  const $ = (id) => document.getElementById(id);
  const view = $("view"), stage = $("stage"), maskCanvas = $("mask"), overlay = $("overlay");
  const mctx = maskCanvas.getContext("2d");
  const octx = overlay.getContext("2d");

  const state = {
    W: 3600, H: 1801, edit: null, image: null, tool: "brush", size: 9, opacity: 50, visible: true,
    scale: 1, tx: 0, ty: 0, undo: [], redo: [], dirty: false, saving: false, saves: 0,
    stroke: null, lasso: null, pan: null, space: false, shift: false, pointer: null,
  };

  // ------------------------------------------------------------------ helpers
  function status(text, error) {
    const s = $("status");
    s.textContent = text;
    s.classList.toggle("error", !!error);
  }
  function setDirty(d) {
    state.dirty = d;
    $("save").classList.toggle("dirty", d);
  }
  function colour(i, v) {
    const c = COLOURS[v], d = state.image.data, o = i * 4;
    d[o] = c[0]; d[o + 1] = c[1]; d[o + 2] = c[2]; d[o + 3] = c[3];
  }
  function redraw(x0, y0, x1, y1) {  // map pixel box [x0, x1) x [y0, y1)
    x0 = Math.max(0, x0); y0 = Math.max(0, y0); x1 = Math.min(state.W, x1); y1 = Math.min(state.H, y1);
    if (x1 > x0 && y1 > y0) mctx.putImageData(state.image, 0, 0, x0, y0, x1 - x0, y1 - y0);
  }
  function shifted(e) { return e.shiftKey || state.shift; }  // Shift held: the lasso clears
  function toMap(clientX, clientY) {  // client px -> map px (fractional), from the stage transform
    const r = view.getBoundingClientRect();
    return [(clientX - r.left - state.tx) / state.scale, (clientY - r.top - state.ty) / state.scale];
  }

  // ------------------------------------------------------------------ view
  function applyView() {
    state.tx = Math.round(state.tx); state.ty = Math.round(state.ty);
    stage.style.transform = `translate(${state.tx}px, ${state.ty}px) scale(${state.scale})`;
    $("zoom-out-value").textContent = Math.round(state.scale * 1000) / 10 + "%";
    drawOverlay();
  }
  function zoomAt(factor, cx, cy) {  // cx, cy: view px that stay put
    zoomTo(state.scale * factor, cx, cy);
  }
  function zoomTo(scale, cx, cy) {
    const s = Math.min(32, Math.max(0.05, scale));
    state.tx = cx - (cx - state.tx) * (s / state.scale);
    state.ty = cy - (cy - state.ty) * (s / state.scale);
    state.scale = s;
    applyView();
  }
  function viewCentre() { return [view.clientWidth / 2, view.clientHeight / 2]; }
  function fit() {
    const w = view.clientWidth, h = view.clientHeight;
    state.scale = Math.min(w / state.W, h / state.H);
    state.tx = (w - state.W * state.scale) / 2;
    state.ty = (h - state.H * state.scale) / 2;
    applyView();
  }
  function oneToOne() {
    const [cx, cy] = viewCentre();
    zoomTo(1, cx, cy);  // exactly 1: one screen px per map px
  }
  function resizeOverlay() {
    overlay.width = view.clientWidth; overlay.height = view.clientHeight;
    drawOverlay();
  }
  function drawOverlay() {
    octx.clearRect(0, 0, overlay.width, overlay.height);
    const s = state.scale;
    if (state.lasso && state.lasso.points.length > 1) {
      octx.beginPath();
      state.lasso.points.forEach(([x, y], k) => {
        const px = x * s + state.tx, py = y * s + state.ty;
        if (k === 0) octx.moveTo(px, py); else octx.lineTo(px, py);
      });
      octx.closePath();
      octx.fillStyle = state.lasso.value === CLOUD ? "rgba(0,220,255,0.25)" : "rgba(255,255,255,0.2)";
      octx.fill();
      octx.strokeStyle = "#ffd479"; octx.lineWidth = 1.5; octx.setLineDash([5, 4]); octx.stroke(); octx.setLineDash([]);
    }
    if (state.pointer && state.tool !== "lasso" && !state.pan) {
      const [mx, my] = state.pointer;
      const cx = (Math.floor(mx) + 0.5) * s + state.tx, cy = (Math.floor(my) + 0.5) * s + state.ty;
      octx.beginPath();
      octx.arc(cx, cy, Math.max(2, (state.size / 2) * s), 0, 2 * Math.PI);
      octx.strokeStyle = state.tool === "brush" ? "#00dcff" : "#ffffff"; octx.lineWidth = 1; octx.stroke();
    }
  }

  // ------------------------------------------------------------------ editing
  // A change is {idx: Int32Array, before: Uint8Array, after: Uint8Array, box: [x0, y0, x1, y1]}.
  function beginChange() { return { map: new Map(), box: [Infinity, Infinity, -Infinity, -Infinity] }; }
  function setPixel(ch, x, y, value) {
    if (x < 0 || y < 0 || x >= state.W || y >= state.H) return;
    const i = y * state.W + x, old = state.edit[i];
    if (old === NO_DATA || old === value) return;
    if (!ch.map.has(i)) ch.map.set(i, old);
    state.edit[i] = value;
    colour(i, value);
    const b = ch.box;
    if (x < b[0]) b[0] = x; if (y < b[1]) b[1] = y; if (x + 1 > b[2]) b[2] = x + 1; if (y + 1 > b[3]) b[3] = y + 1;
  }
  function stamp(ch, cx, cy, value) {  // disc of diameter `size` px centred on map pixel (cx, cy)
    const h = Math.floor(state.size / 2), r2 = (state.size / 2) * (state.size / 2);
    for (let dy = -h; dy <= h; dy++) for (let dx = -h; dx <= h; dx++) {
      if (dx * dx + dy * dy <= r2) setPixel(ch, cx + dx, cy + dy, value);
    }
  }
  function strokeTo(x, y) {  // integer map px; stamps at every pixel step from the last point
    const st = state.stroke, [x0, y0] = st.last;
    const n = Math.max(Math.abs(x - x0), Math.abs(y - y0));
    for (let k = 1; k <= n; k++) stamp(st.change, Math.round(x0 + (x - x0) * k / n), Math.round(y0 + (y - y0) * k / n), st.value);
    st.last = [x, y];
    const b = st.change.box;
    redraw(b[0], b[1], b[2], b[3]);
  }
  function finish(ch) {  // record a finished change on the undo stack
    if (ch.map.size === 0) return;
    const n = ch.map.size, idx = new Int32Array(n), before = new Uint8Array(n), after = new Uint8Array(n);
    let k = 0;
    for (const [i, old] of ch.map) { idx[k] = i; before[k] = old; after[k] = state.edit[i]; k++; }
    state.undo.push({ idx, before, after, box: ch.box });
    state.redo.length = 0;
    setDirty(true);
    buttons();
  }
  function replay(change, values) {
    for (let k = 0; k < change.idx.length; k++) { state.edit[change.idx[k]] = values[k]; colour(change.idx[k], values[k]); }
    const b = change.box;
    redraw(b[0], b[1], b[2], b[3]);
    setDirty(true);
    buttons();
  }
  function undo() { const c = state.undo.pop(); if (c) { state.redo.push(c); replay(c, c.before); status("undone"); } }
  function redo() { const c = state.redo.pop(); if (c) { state.undo.push(c); replay(c, c.after); status("redone"); } }
  function fillLasso(points, value) {
    if (points.length < 3) return;
    const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
    const x0 = Math.max(0, Math.floor(Math.min(...xs))), y0 = Math.max(0, Math.floor(Math.min(...ys)));
    const x1 = Math.min(state.W, Math.ceil(Math.max(...xs)) + 1), y1 = Math.min(state.H, Math.ceil(Math.max(...ys)) + 1);
    if (x1 <= x0 || y1 <= y0) return;
    const c = document.createElement("canvas");
    c.width = x1 - x0; c.height = y1 - y0;
    const g = c.getContext("2d");
    g.beginPath();
    points.forEach(([x, y], k) => (k ? g.lineTo(x - x0, y - y0) : g.moveTo(x - x0, y - y0)));
    g.closePath(); g.fillStyle = "#000"; g.fill();
    const a = g.getImageData(0, 0, c.width, c.height).data;  // a pixel is inside when its centre is covered
    const ch = beginChange();
    for (let y = 0; y < c.height; y++) for (let x = 0; x < c.width; x++) {
      if (a[(y * c.width + x) * 4 + 3] >= 128) setPixel(ch, x0 + x, y0 + y, value);
    }
    redraw(ch.box[0], ch.box[1], ch.box[2], ch.box[3]);
    finish(ch);
  }

  // ------------------------------------------------------------------ pointer
  view.addEventListener("contextmenu", (e) => e.preventDefault());
  view.addEventListener("pointerdown", (e) => {
    if (!state.edit) return;
    view.setPointerCapture(e.pointerId);
    if (e.button === 1 || e.button === 2 || state.space) {
      state.pan = { x: e.clientX, y: e.clientY, tx: state.tx, ty: state.ty };
      view.classList.add("panning");
      return;
    }
    if (e.button !== 0) return;
    const [mx, my] = toMap(e.clientX, e.clientY);
    if (state.tool === "lasso") {
      state.lasso = { points: [[mx, my]], value: shifted(e) ? CLEAR : CLOUD };
      return;
    }
    const x = Math.floor(mx), y = Math.floor(my), value = state.tool === "brush" ? CLOUD : CLEAR;
    state.stroke = { change: beginChange(), last: [x, y], value };
    stamp(state.stroke.change, x, y, value);
    const b = state.stroke.change.box;
    redraw(b[0], b[1], b[2], b[3]);
  });
  view.addEventListener("pointermove", (e) => {
    const [mx, my] = toMap(e.clientX, e.clientY);
    state.pointer = [mx, my];
    where(mx, my);
    if (state.pan) {
      state.tx = state.pan.tx + e.clientX - state.pan.x; state.ty = state.pan.ty + e.clientY - state.pan.y;
      applyView();
      return;
    }
    if (state.stroke) strokeTo(Math.floor(mx), Math.floor(my));
    if (state.lasso) { state.lasso.points.push([mx, my]); state.lasso.value = shifted(e) ? CLEAR : CLOUD; }
    drawOverlay();
  });
  function pointerEnd(e) {
    if (state.pan) { state.pan = null; view.classList.remove("panning"); }
    if (state.stroke) {
      const [mx, my] = toMap(e.clientX, e.clientY);
      strokeTo(Math.floor(mx), Math.floor(my));
      finish(state.stroke.change);
      state.stroke = null;
    }
    if (state.lasso) {
      const l = state.lasso;
      state.lasso = null;
      fillLasso(l.points, shifted(e) ? CLEAR : l.value);
    }
    drawOverlay();
  }
  view.addEventListener("pointerup", pointerEnd);
  view.addEventListener("pointercancel", pointerEnd);
  view.addEventListener("pointerleave", () => { state.pointer = null; drawOverlay(); });
  view.addEventListener("wheel", (e) => {
    e.preventDefault();
    const r = view.getBoundingClientRect();
    zoomAt(e.deltaY < 0 ? 1.25 : 0.8, e.clientX - r.left, e.clientY - r.top);
  }, { passive: false });
  function where(mx, my) {
    const x = Math.floor(mx), y = Math.floor(my);
    if (x < 0 || y < 0 || x >= state.W || y >= state.H) { $("where").textContent = ""; return; }
    const lon = (x - 1800) * 0.1, lat = (900 - y) * 180 / 1801;
    const v = state.edit ? ["clear", "cloud", "no data"][state.edit[y * state.W + x]] : "";
    $("where").textContent = `x ${x}, y ${y} (lon ${lon.toFixed(1)}, lat ${lat.toFixed(1)}): ${v}`;
  }

  // ------------------------------------------------------------------ controls
  function setTool(t) {
    state.tool = t;
    document.querySelectorAll(".tool").forEach((b) => b.classList.toggle("active", b.dataset.tool === t));
    drawOverlay();
  }
  function setSize(n) {
    state.size = Math.min(200, Math.max(1, Math.round(n)));
    $("size").value = state.size; $("size-out").textContent = state.size;
    drawOverlay();
  }
  function setOpacity(p) {
    state.opacity = Math.min(100, Math.max(0, Math.round(p)));
    $("opacity").value = state.opacity; $("opacity-out").textContent = state.opacity;
    maskCanvas.style.opacity = state.visible ? state.opacity / 100 : 0;
  }
  function buttons() {
    $("undo").disabled = state.undo.length === 0;
    $("redo").disabled = state.redo.length === 0;
  }
  document.querySelectorAll(".tool").forEach((b) => b.addEventListener("click", () => setTool(b.dataset.tool)));
  $("size").addEventListener("input", (e) => setSize(+e.target.value));
  $("opacity").addEventListener("input", (e) => setOpacity(+e.target.value));
  $("undo").addEventListener("click", undo);
  $("redo").addEventListener("click", redo);
  $("zoom-in").addEventListener("click", () => zoomAt(1.25, ...viewCentre()));
  $("zoom-out").addEventListener("click", () => zoomAt(0.8, ...viewCentre()));
  $("zoom-fit").addEventListener("click", fit);
  $("zoom-one").addEventListener("click", oneToOne);
  $("save").addEventListener("click", save);

  document.addEventListener("keydown", (e) => {
    if (e.target instanceof HTMLInputElement && e.target.type !== "range") return;
    const k = e.key, ctrl = e.ctrlKey || e.metaKey;
    if (k === "Shift") { state.shift = true; return; }
    if (ctrl && (k === "z" || k === "Z")) { e.preventDefault(); if (e.shiftKey) redo(); else undo(); return; }
    if (ctrl && (k === "y" || k === "Y")) { e.preventDefault(); redo(); return; }
    if (ctrl && (k === "s" || k === "S")) { e.preventDefault(); save(); return; }
    if (ctrl || e.altKey) return;
    const step = 100;
    const actions = {
      b: () => setTool("brush"), e: () => setTool("eraser"), l: () => setTool("lasso"),
      "[": () => setSize(state.size > 10 ? state.size / 1.25 : state.size - 1),
      "]": () => setSize(state.size >= 10 ? state.size * 1.25 : state.size + 1),
      "+": () => zoomAt(1.25, ...viewCentre()), "=": () => zoomAt(1.25, ...viewCentre()),
      "-": () => zoomAt(0.8, ...viewCentre()), "0": fit, "1": oneToOne,
      ",": () => setOpacity(state.opacity - 10), ".": () => setOpacity(state.opacity + 10),
      h: () => { state.visible = !state.visible; setOpacity(state.opacity); },
      ArrowLeft: () => { state.tx += step; applyView(); }, ArrowRight: () => { state.tx -= step; applyView(); },
      ArrowUp: () => { state.ty += step; applyView(); }, ArrowDown: () => { state.ty -= step; applyView(); },
      " ": () => { state.space = true; },
    };
    const act = actions[k.length === 1 ? k.toLowerCase() : k] || actions[k];
    if (act) { e.preventDefault(); act(); }
  });
  document.addEventListener("keyup", (e) => {
    if (e.key === " ") state.space = false;
    if (e.key === "Shift") state.shift = false;
  });
  window.addEventListener("blur", () => { state.space = false; state.shift = false; });
  window.addEventListener("resize", resizeOverlay);
  window.addEventListener("beforeunload", (e) => { if (state.dirty) { e.preventDefault(); e.returnValue = ""; } });

  // ------------------------------------------------------------------ server
  async function save() {
    if (!state.edit || state.saving) return;
    state.saving = true;
    status("saving\u2026");
    try {
      const r = await fetch(api("/api/save"), { method: "POST", body: state.edit, headers: { "Content-Type": "application/octet-stream" } });
      const text = await r.text();
      if (!r.ok) throw new Error(text.trim() || r.statusText);
      const saved = JSON.parse(text).saved;
      setDirty(false);
      state.saves += 1;
      document.body.dataset.saves = String(state.saves);
      status("saved " + saved.label);
    } catch (err) {
      status("not saved: " + err.message, true);
    } finally {
      state.saving = false;
    }
  }
  async function load() {
    try {
      const info = await (await fetch(api("/api/info"))).json();
      state.W = info.width; state.H = info.height;
      document.title = "cm-label " + info.name;
      $("title").textContent = `cm-label ${info.map} \u2192 ${info.name} (MY ${info.mars_year}, Ls ${info.ls})`;
      const r = await fetch(api("/api/edit"));
      if (!r.ok) throw new Error(await r.text());
      const edit = new Uint8Array(await r.arrayBuffer());
      if (edit.length !== state.W * state.H) throw new Error(`edit of ${edit.length} bytes`);
      const img = $("map");
      await new Promise((ok, bad) => { img.onload = ok; img.onerror = () => bad(new Error("the map did not load")); img.src = api("/api/map"); });
      state.edit = edit;
      state.image = mctx.createImageData(state.W, state.H);
      for (let i = 0; i < edit.length; i++) colour(i, edit[i]);
      mctx.putImageData(state.image, 0, 0);
      resizeOverlay(); fit(); setTool("brush"); setSize(state.size); setOpacity(state.opacity); buttons();
      status("ready: saving writes into " + info.labels);
      document.body.dataset.state = "ready";
    } catch (err) {
      status("cannot load: " + err.message, true);
      document.body.dataset.state = "error";
    }
  }
  load();
})();
