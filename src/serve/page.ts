// The page `serve` shows at /: drop or paste images, see their tags as probability bars grouped by
// category, move the threshold sliders (re-filtered in the page, without calling the model again), copy
// the caption, and see similar images when the server has an index. Everything is served from here:
// no CDN, no external asset.
export const PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>alt-i2v-ort tagger</title>
<style>
body{font:14px system-ui,sans-serif;margin:0;background:#f6f6f6;color:#222}
header{padding:1em 1.5em;background:#223;color:#fff}header h1{margin:0;font-size:1.2em}header small{opacity:.7}
#controls{display:flex;gap:2em;flex-wrap:wrap;padding:1em 1.5em;background:#fff;border-bottom:1px solid #ddd;align-items:center}
#drop{margin:1em 1.5em;padding:2em;border:2px dashed #99a;border-radius:8px;text-align:center;background:#fff;cursor:pointer}
#drop.over{background:#eef}
.result{display:grid;grid-template-columns:220px 1fr;gap:1em;margin:1em 1.5em;padding:1em;background:#fff;border:1px solid #ddd;border-radius:8px}
.result img.preview{max-width:220px;max-height:220px}
.group h3{margin:.6em 0 .2em;font-size:.9em;text-transform:uppercase;color:#667}
.tag{position:relative;display:flex;justify-content:space-between;padding:1px 6px;margin:2px 0;max-width:480px}
.tag .bar{position:absolute;left:0;top:0;bottom:0;background:#4a78c2;opacity:.25}.tag span{position:relative}
.caption{display:flex;gap:.5em;margin-top:.8em}.caption input{flex:1;font:inherit}
.similar{display:flex;gap:.5em;flex-wrap:wrap;margin-top:.8em}.similar figure{margin:0;text-align:center;font-size:11px}
.similar img{width:96px;height:96px;object-fit:contain;background:#eee}
.error{color:#b00}
</style></head>
<body>
<header><h1>alt-i2v-ort tagger</h1><small id="model"></small></header>
<div id="controls">
<label>threshold <input id="threshold" type="range" min="0" max="1" step="0.01" value="0.35"> <output id="tv">0.35</output></label>
<label>character threshold <input id="cthreshold" type="range" min="0" max="1" step="0.01" value="0.85"> <output id="cv">0.85</output></label>
</div>
<div id="drop">Drop images here, paste them, or <label style="text-decoration:underline">choose files<input id="file" type="file" accept="image/*" multiple hidden></label></div>
<div id="results"></div>
<script>
const token = new URLSearchParams(location.search).get('token');
const auth = token ? { Authorization: 'Bearer ' + token } : {};
const $ = (s, el = document) => el.querySelector(s);
let info = null;
const results = [];
fetch('/v1/model', { headers: auth }).then((r) => r.json()).then((m) => { info = m; $('#model').textContent = m.name + ' — ' + m.tags.length + ' tags' + (m.index ? ', index of ' + m.index.images + ' images' : ''); });
const short = (t) => t.length <= 3 || /^[^a-z]*_[^a-z]*$/i.test(t);
const captionOf = (tags) => tags.map((t) => (short(t.tag) ? t.tag : t.tag.replace(/_/g, ' '))).join(', ');
function visible(all) {
  const th = Number($('#threshold').value), cth = Number($('#cthreshold').value);
  const out = {};
  for (const [cat, list] of Object.entries(all)) {
    const kept = list.filter((t) => t.prob >= (cat === 'character' ? cth : th));
    if (kept.length) out[cat] = kept;
  }
  return out;
}
function render(r) {
  const v = visible(r.tags);
  const groups = Object.entries(v).map(([cat, list]) => '<div class="group" data-category="' + cat + '"><h3>' + cat + '</h3>' +
    list.map((t) => '<div class="tag" data-tag="' + t.tag.replace(/"/g, '&quot;') + '" data-prob="' + t.prob + '"><span class="bar" style="width:' + (100 * t.prob).toFixed(1) + '%"></span><span class="name"></span><span>' + t.prob.toFixed(2) + '</span></div>').join('') + '</div>').join('');
  r.el.querySelector('.tags').innerHTML = groups || '<p>no tag above the thresholds</p>';
  r.el.querySelectorAll('.tag').forEach((d) => (d.querySelector('.name').textContent = d.dataset.tag));
  const ordered = [...(v.rating || []), ...(v.character || []), ...Object.entries(v).filter(([c]) => c !== 'rating' && c !== 'character').flatMap(([, l]) => l)];
  r.el.querySelector('.caption input').value = captionOf(ordered);
}
async function tag(file) {
  const el = document.createElement('div');
  el.className = 'result';
  el.innerHTML = '<div><img class="preview"><div class="name"></div></div><div><div class="tags">tagging…</div><div class="caption"><input readonly><button>copy caption</button></div><div class="similar"></div></div>';
  el.querySelector('img').src = URL.createObjectURL(file);
  el.querySelector('.name').textContent = file.name || 'pasted image';
  $('#results').prepend(el);
  el.querySelector('button').onclick = () => navigator.clipboard.writeText(el.querySelector('.caption input').value);
  const res = await fetch('/v1/tag?threshold=0.01&rating=all', { method: 'POST', headers: { ...auth, 'Content-Type': file.type || 'image/png' }, body: file });
  const body = await res.json();
  if (!res.ok) { el.querySelector('.tags').innerHTML = '<p class="error"></p>'; el.querySelector('.error').textContent = body.error; return; }
  const r = { el, tags: body.images[0].tags };
  results.push(r);
  render(r);
  el.dataset.done = '1';
  if (info && info.index) {
    const s = await fetch('/v1/similar?k=8', { method: 'POST', headers: { ...auth, 'Content-Type': file.type || 'image/png' }, body: file }).then((x) => x.json());
    el.querySelector('.similar').innerHTML = (s.neighbours || []).map((n) => '<figure><img src="' + n.image + (token ? '?token=' + encodeURIComponent(token) : '') + '"><figcaption>' + n.score.toFixed(3) + '</figcaption></figure>').join('');
  }
}
for (const id of ['threshold', 'cthreshold']) $('#' + id).addEventListener('input', () => { $('#tv').textContent = $('#threshold').value; $('#cv').textContent = $('#cthreshold').value; results.forEach(render); });
$('#file').addEventListener('change', (e) => [...e.target.files].forEach(tag));
const drop = $('#drop');
drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (e) => { e.preventDefault(); drop.classList.remove('over'); [...e.dataTransfer.files].forEach(tag); });
document.addEventListener('paste', (e) => [...e.clipboardData.files].forEach(tag));
</script>
</body></html>
`;
