"""The review page's HTML and inline JS, as a string (no static files to package).

Keys: A / ArrowLeft = no, D / ArrowRight = yes, Backspace = undo, S = skip. The reviewer id
is kept in ``localStorage``, so a reload (or a reopened tab) continues with the same lease.
"""

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>prelabel review</title>
<style>
body { font-family: sans-serif; margin: 1em; background: #222; color: #eee; }
#stage { position: relative; display: inline-block; }
#img { max-width: 90vw; max-height: 70vh; display: block; }
#box { position: absolute; border: 3px solid #ff0; box-sizing: border-box;
       pointer-events: none; display: none; }
#label { font-size: 1.6em; font-weight: bold; }
.keys span { margin-right: 1.5em; }
table { border-collapse: collapse; margin-top: 1em; }
td, th { padding: 0.2em 0.8em; border-bottom: 1px solid #555; text-align: right; }
#error { color: #f66; }
</style></head>
<body>
<div><span id="label"></span> &middot; detector <span id="score"></span>
 &middot; classifier P(yes) <span id="pyes"></span> <span id="how"></span></div>
<div id="stage"><img id="img" alt=""><div id="box"></div></div>
<div id="done" style="display:none">Nothing left to review in this set.</div>
<p class="keys"><span>A / &larr; no</span><span>D / &rarr; yes</span>
<span>Backspace undo</span><span>S skip</span></p>
<div id="error"></div>
<table id="stats"><thead><tr><th>label</th><th>answered</th><th>of</th><th>yes</th>
<th>positives</th><th>held-out accuracy</th><th>held out</th></tr></thead><tbody></tbody></table>
<script>
const params = new URLSearchParams(location.search);
const token = params.get("token");
let reviewer = localStorage.getItem("prelabel-reviewer");
if (!reviewer) {
  reviewer = crypto.randomUUID();
  localStorage.setItem("prelabel-reviewer", reviewer);
}
let current = null;
let busy = false;
let steps = 0;

function withToken(url) {
  return token ? url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token) : url;
}

async function call(method, url, body) {
  const options = { method, headers: { "Content-Type": "application/json" } };
  if (body) options.body = JSON.stringify(body);
  const answer = await fetch(withToken(url), options);
  if (!answer.ok) throw new Error((await answer.json()).detail || answer.statusText);
  return answer.json();
}

function esc(text) {
  const cell = document.createElement("span");
  cell.textContent = text;
  return cell.innerHTML;
}

function pct(v) { return v === null || v === undefined ? "n/a" : (100 * v).toFixed(1) + "%"; }

function drawBox() {
  const img = document.getElementById("img"), box = document.getElementById("box");
  if (!current || !current.box || !img.naturalWidth) { box.style.display = "none"; return; }
  const sx = img.clientWidth / img.naturalWidth, sy = img.clientHeight / img.naturalHeight;
  const [x1, y1, x2, y2] = current.box;
  Object.assign(box.style, { display: "block", left: x1 * sx + "px", top: y1 * sy + "px",
    width: (x2 - x1) * sx + "px", height: (y2 - y1) * sy + "px" });
}

function show(state) {
  current = state.item;
  document.body.dataset.itemId = current ? String(current.id) : "";
  document.getElementById("done").style.display = current ? "none" : "block";
  document.getElementById("stage").style.display = current ? "inline-block" : "none";
  if (current) {
    document.getElementById("label").textContent = current.label;
    document.getElementById("score").textContent =
      current.score === null ? "n/a" : current.score.toFixed(3);
    document.getElementById("pyes").textContent = current.p_yes.toFixed(3);
    document.getElementById("how").textContent = current.held_out
      ? "(random draw, held out)" : current.cold_start ? "(cold start: detector score)" : "";
    const img = document.getElementById("img");
    img.onload = drawBox;
    img.src = withToken("/image/" + current.id);
  }
  const rows = state.stats.map(s => "<tr><td>" + esc(s.label) + "</td><td>" + s.answered + "</td><td>" +
    s.items + "</td><td>" + s.yes + "</td><td>" + pct(s.positives_rate) + "</td><td>" +
    pct(s.held_out_accuracy) + "</td><td>" + s.held_out + "</td></tr>");
  document.querySelector("#stats tbody").innerHTML = rows.join("");
  document.body.dataset.step = String(++steps);
}

async function act(promise) {
  busy = true;
  try {
    show(await promise);
    document.getElementById("error").textContent = "";
  } catch (e) {
    document.getElementById("error").textContent = String(e);
  } finally {
    busy = false;
  }
}

function answer(value) {
  if (!current) return;
  act(call("POST", "/api/answer", { reviewer, item_id: current.id, answer: value }));
}

document.addEventListener("keydown", e => {
  if (busy || e.ctrlKey || e.metaKey || e.altKey) return;
  const key = e.key.length === 1 ? e.key.toLowerCase() : e.key;
  if (key === "a" || key === "ArrowLeft") answer(false);
  else if (key === "d" || key === "ArrowRight") answer(true);
  else if (key === "s") answer(null);
  else if (key === "Backspace") act(call("POST", "/api/undo", { reviewer }));
  else return;
  e.preventDefault();
});
window.addEventListener("resize", drawBox);
act(call("GET", "/api/state?reviewer=" + encodeURIComponent(reviewer)));
</script>
</body></html>
"""
