"""The review page's HTML and inline JS, as a string (no static files to package).

Keys: A / ArrowLeft = no, D / ArrowRight = yes, S = skip, Backspace = undo this tab's last
answer, R = retry the image. A and D do nothing until the item's image has loaded: nobody
answers an image they cannot see. The reviewer's name is asked once and kept in
``localStorage`` (unless the token names them); the answers this tab made are kept in
``sessionStorage``, so Backspace in one tab never undoes another tab's answer. The page shows
the reviewer's current state again when it gets the focus, when the server says its item is
stale, and every 15 s while the rest is held by others; while the server does not answer it
says so and retries.
"""

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>prelabel review</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body { font-family: sans-serif; margin: 0.6em 1em; background: #222; color: #eee; }
header, #itemhead { display: flex; flex-wrap: wrap; gap: 0.4em 1.2em; align-items: baseline; }
#label { font-size: 1.6em; font-weight: bold; }
#file { font-family: monospace; }
a { color: #8cf; }
main { display: flex; gap: 1em; margin-top: 0.5em; align-items: flex-start; }
#stage { position: relative; background: #111; min-width: 40vw; min-height: 40vh; }
#img { display: block; visibility: hidden; }
#box { position: absolute; border: 3px solid #ff0; box-sizing: border-box;
       pointer-events: none; display: none; }
#side { width: 300px; flex: none; }
#zoom { width: 280px; height: 280px; background: #111; display: none; }
#imagemsg { position: absolute; left: 1em; top: 1em; right: 1em; color: #fc6; }
#error, #askerror { color: #f66; min-height: 1.2em; }
#notice { color: #fc6; min-height: 1.2em; }
#done { font-size: 1.3em; margin: 2em 0; }
.keys span { margin-right: 1.2em; }
table { border-collapse: collapse; margin-top: 0.6em; }
td, th { padding: 0.15em 0.6em; border-bottom: 1px solid #555; text-align: right; }
#ask { position: fixed; inset: 0; background: #222e; display: none; align-items: center;
       justify-content: center; }
#ask form { background: #333; padding: 2em; border-radius: 6px; }
</style></head>
<body>
<div id="ask"><form><label>Your name (shown beside your answers):
<input id="name" maxlength="40" autocomplete="name" required></label> <button>Start</button>
<p id="askerror"></p></form></div>
<header><span id="itemhead" style="display:none"><span id="label"></span><span id="file"></span>
<a id="task" target="_blank" rel="noopener"></a><span>detector <span id="score"></span></span>
<span>P(yes) <span id="pyes"></span> <span id="how"></span></span></span>
<span id="who"></span><span id="progress"></span></header>
<div id="error"></div><div id="notice"></div>
<main style="display:none">
<div id="stage"><img id="img" alt=""><div id="box"></div><div id="imagemsg"></div></div>
<div id="side"><canvas id="zoom" width="280" height="280"></canvas>
<p class="keys"><span>A / &larr; no</span><span>D / &rarr; yes</span><span>S skip</span>
<span>Backspace undo</span><span>R retry image</span></p></div></main>
<div id="done" style="display:none"></div>
<table id="stats" style="display:none"><thead><tr><th>label</th><th>answered</th><th>of</th><th>yes</th>
<th>positives</th><th>held-out accuracy</th><th>held out</th></tr></thead><tbody></tbody></table>
<div id="lead" style="display:none"><h3>Latest answers of others (lead: correct them)</h3>
<table><thead><tr><th>item</th><th>label</th><th>file</th><th>reviewer</th><th>answer</th><th></th></tr>
</thead><tbody></tbody></table></div>
<script>
const params = new URLSearchParams(location.search);
const token = params.get("token");
const $ = id => document.getElementById(id);
let reviewer = localStorage.getItem("prelabel-reviewer-name");
let current = null, busy = false, steps = 0, imageReady = false, tries = 0;
let downTimer = null, pollTimer = null;
let mine = JSON.parse(sessionStorage.getItem("prelabel-answered") || "[]");

function withToken(url) {
  return token ? url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token) : url;
}

class Refused extends Error {}
class BadName extends Error {}
class Stale extends Error { constructor(detail, state) { super(detail); this.state = state; } }

async function call(method, url, body) {
  const options = { method, headers: { "Content-Type": "application/json" } };
  if (body) options.body = JSON.stringify({ ...body, reviewer: reviewer || "" });
  let answer;
  try {
    answer = await fetch(withToken(url), options);
  } catch (e) {
    throw new TypeError("down");
  }
  const data = await answer.json().catch(() => ({}));
  if (answer.status === 401) throw new Refused(data.detail || "refused");
  if (answer.status === 400) throw new BadName(data.detail || "not a name");
  if (answer.status === 409 && data.state) throw new Stale(data.detail, data.state);
  if (!answer.ok) throw new Error(data.detail || answer.statusText);
  return data;
}

function pct(v) { return v === null || v === undefined ? "n/a" : (100 * v).toFixed(1) + "%"; }
function cell(text) { const td = document.createElement("td"); td.textContent = text; return td; }

function fit() {
  const img = $("img");
  if (!img.naturalWidth) return;
  const width = Math.max(200, window.innerWidth - 360), height = Math.max(150, window.innerHeight - 170);
  const scale = Math.min(width / img.naturalWidth, height / img.naturalHeight);
  img.style.width = Math.round(img.naturalWidth * scale) + "px";
  img.style.height = Math.round(img.naturalHeight * scale) + "px";
  drawBox();
}

function drawBox() {
  const img = $("img"), box = $("box"), zoom = $("zoom");
  if (!current || !current.box || !imageReady) {
    box.style.display = "none";
    zoom.style.display = "none";
    return;
  }
  const s = img.clientWidth / img.naturalWidth;
  const [x1, y1, x2, y2] = current.box;
  Object.assign(box.style, { display: "block", left: x1 * s + "px", top: y1 * s + "px",
    width: (x2 - x1) * s + "px", height: (y2 - y1) * s + "px" });
  // The zoom: the box and a quarter of its size around it, as large as the canvas allows.
  const mx = (x2 - x1) / 4, my = (y2 - y1) / 4;
  const sx = Math.max(0, x1 - mx), sy = Math.max(0, y1 - my);
  const sw = Math.min(img.naturalWidth, x2 + mx) - sx, sh = Math.min(img.naturalHeight, y2 + my) - sy;
  const k = Math.min(zoom.width / sw, zoom.height / sh);
  const ctx = zoom.getContext("2d");
  ctx.fillStyle = "#111";
  ctx.fillRect(0, 0, zoom.width, zoom.height);
  ctx.drawImage(img, sx, sy, sw, sh, 0, 0, sw * k, sh * k);
  ctx.strokeStyle = "#ff0";
  ctx.lineWidth = 2;
  ctx.strokeRect((x1 - sx) * k, (y1 - sy) * k, (x2 - x1) * k, (y2 - y1) * k);
  zoom.style.display = "block";
}

function loadImage() {
  const img = $("img");
  imageReady = false;
  document.body.dataset.imageReady = "";
  img.style.visibility = "hidden";
  $("box").style.display = "none";
  $("zoom").style.display = "none";
  $("imagemsg").textContent = "loading the image...";
  const id = current.id, src = withToken("/image/" + id + (tries ? "?try=" + tries : ""));
  img.onload = () => {
    if (!current || current.id !== id) return;
    imageReady = true;
    document.body.dataset.imageReady = String(id);
    img.style.visibility = "visible";
    $("imagemsg").textContent = "";
    fit();
  };
  img.onerror = async () => {
    if (!current || current.id !== id) return;
    let why = "the browser could not show it";
    try {
      const answer = await fetch(src);
      if (!answer.ok) why = (await answer.json()).detail || answer.statusText;
    } catch (e) { why = "the review server does not answer"; }
    $("imagemsg").textContent = "The image did not load (" + why + "). Press R to retry; S skips it.";
    document.body.dataset.imageFailed = String(id);
  };
  img.src = src;
}

function doneMessage(p) {
  if (p.held_by_others) return "The rest (" + p.held_by_others + " items) is being reviewed by others " +
    "right now; this page looks again every 15 s (an item comes back if its reviewer leaves it).";
  if (p.skipped) return "Only items you skipped are left (" + p.skipped + "): the others may answer them.";
  return "Nothing left to review in this set: every item is answered.";
}

function show(state) {
  const changed = !current || !state.item || current.id !== state.item.id;
  current = state.item;
  document.body.dataset.itemId = current ? String(current.id) : "";
  $("done").style.display = current ? "none" : "block";
  $("done").textContent = current ? "" : doneMessage(state.progress);
  document.querySelector("main").style.display = current ? "flex" : "none";
  $("itemhead").style.display = current ? "flex" : "none";
  $("stats").style.display = "table";
  $("who").textContent = "reviewer: " + state.reviewer + (state.lead ? " (lead)" : "");
  clearTimeout(pollTimer);
  if (!current && state.progress.held_by_others) pollTimer = setTimeout(refresh, 15000);
  if (current) {
    $("label").textContent = current.label;
    $("file").textContent = current.file;
    const link = $("task");
    if (current.task_url && /^https?:/.test(current.task_url)) {
      link.href = current.task_url; link.textContent = "task " + current.task_id + " in Label Studio";
    } else { link.removeAttribute("href"); link.textContent = ""; }
    $("score").textContent = current.score === null ? "n/a" : current.score.toFixed(3);
    $("pyes").textContent = state.features ? current.p_yes.toFixed(3) : "n/a (no features)";
    $("how").textContent = current.held_out ? "(random draw, held out)"
      : current.cold_start && state.features ? "(cold start: detector score)" : "";
    if (changed) { tries = 0; loadImage(); }
  }
  const p = state.progress;
  $("progress").textContent = "answered " + p.answered + " of " + p.items + " (" +
    pct(p.items ? p.answered / p.items : null) + ") \\u00b7 held by others now: " + p.held_by_others +
    " \\u00b7 skipped by you: " + p.skipped;
  const body = document.querySelector("#stats tbody");
  body.replaceChildren(...state.stats.map(s => {
    const tr = document.createElement("tr");
    tr.append(cell(s.label), cell(s.answered), cell(s.items), cell(s.yes), cell(pct(s.positives_rate)),
      cell(pct(s.held_out_accuracy)), cell(s.held_out));
    return tr;
  }));
  $("lead").style.display = state.lead ? "block" : "none";
  if (state.lead) {
    document.querySelector("#lead tbody").replaceChildren(...state.recent.map(r => {
      const tr = document.createElement("tr"), td = document.createElement("td");
      const flip = document.createElement("button");
      flip.textContent = "make it " + (r.answer ? "no" : "yes");
      flip.dataset.item = r.item_id;
      flip.onclick = () => act(call("POST", "/api/correct", { item_id: r.item_id, answer: !r.answer }));
      td.append(flip);
      tr.append(cell(r.item_id), cell(r.label), cell(r.file), cell(r.reviewer || "-"),
        cell(r.answer ? "yes" : "no"), td);
      return tr;
    }));
  }
  document.body.dataset.step = String(++steps);
}

function remember() { sessionStorage.setItem("prelabel-answered", JSON.stringify(mine.slice(-200))); }

async function act(promise, after, failed) {
  busy = true;
  try {
    const state = await promise;
    if (after) after();
    $("error").textContent = "";
    $("notice").textContent = "";
    show(state);
  } catch (e) {
    if (failed) failed(e);
    if (e instanceof Stale) {
      $("notice").textContent = e.message + ": showing your current item.";
      show(e.state);
    } else if (e instanceof BadName) {
      $("askerror").textContent = e.message;
      reviewer = null;
      localStorage.removeItem("prelabel-reviewer-name");
      $("ask").style.display = "flex";
    } else if (e instanceof Refused) {
      $("error").textContent = "The review server refused this page's token. Open the review link " +
        "you were given (it ends in ?token=...); whoever runs prelabel review serve has it.";
    } else if (e instanceof TypeError) {
      $("error").textContent = "The review server does not answer (stopped, or the network is down). " +
        "Every answer it acknowledged is saved; retrying every 5 s.";
      clearTimeout(downTimer);
      downTimer = setTimeout(refresh, 5000);
    } else {
      $("error").textContent = e.message;
    }
  } finally {
    busy = false;
  }
}

function refresh() {
  if (reviewer) act(call("GET", "/api/state?reviewer=" + encodeURIComponent(reviewer)));
}

function answer(value) {
  if (!current) return;
  if (value !== null && !imageReady) {
    $("notice").textContent = "The image has not loaded yet: no answer recorded.";
    return;
  }
  const id = current.id;
  act(call("POST", "/api/answer", { item_id: id, answer: value }), () => {
    if (value !== null) { mine.push(id); remember(); }
  });
}

function undo() {
  if (!mine.length) { $("notice").textContent = "Nothing of this tab's to undo."; return; }
  const id = mine[mine.length - 1];
  const drop = () => { mine = mine.filter(m => m !== id); remember(); };
  // Kept for another Backspace unless the server undid it or says it never can (corrected, undone).
  act(call("POST", "/api/undo", { item_id: id }), drop, e => { if (e instanceof Stale) drop(); });
}

document.addEventListener("keydown", e => {
  if (busy || !reviewer || e.ctrlKey || e.metaKey || e.altKey || e.target.tagName === "INPUT") return;
  const key = e.key.length === 1 ? e.key.toLowerCase() : e.key;
  if (key === "a" || key === "ArrowLeft") answer(false);
  else if (key === "d" || key === "ArrowRight") answer(true);
  else if (key === "s") answer(null);
  else if (key === "Backspace") undo();
  else if (key === "r" && current) { tries += 1; loadImage(); }
  else return;
  e.preventDefault();
});
window.addEventListener("resize", fit);
window.addEventListener("focus", refresh);
document.addEventListener("visibilitychange", () => { if (!document.hidden) refresh(); });

function start() {
  $("ask").style.display = "none";
  refresh();
}

$("ask").querySelector("form").addEventListener("submit", e => {
  e.preventDefault();
  reviewer = $("name").value.trim();
  localStorage.setItem("prelabel-reviewer-name", reviewer);
  start();
});

call("GET", "/api/me").then(me => {
  if (me.reviewer) { reviewer = me.reviewer; start(); }
  else if (reviewer) start();
  else { $("ask").style.display = "flex"; $("name").focus(); }
}).catch(e => act(Promise.reject(e)));
</script>
</body></html>
"""
