// @ts-check
// The page `serve` shows at /: drop or paste images, see their tags as probability bars grouped by
// category, move the threshold sliders (re-filtered here, without calling the model again), copy the
// caption, and see similar images when the server has an index. Everything it shows from the server or
// a model is set as text, never parsed as markup. A token (when the server has one) comes from the URL's
// fragment (`/#token=T`, never sent to the server) or the form, and travels only in the Authorization
// header; index images are fetched with it and shown as blob URLs.

/** @typedef {{ tag: string, prob: number }} Scored */
/** @typedef {{ el: HTMLElement, tags: Record<string, Scored[]> }} Result */

let token = new URLSearchParams(location.hash.slice(1)).get('token') ?? sessionStorage.getItem('token') ?? '';
/** @type {{ index?: unknown } | null} */
let info = null;
/** @type {Result[]} */
const results = [];

/**
 * The element for a selector (the page's own markup holds every one asked for).
 * @template {HTMLElement} T
 * @param {string} selector
 * @param {ParentNode} [root]
 * @returns {T}
 */
function $(selector, root = document) {
  const el = root.querySelector(selector);
  if (!el) throw new Error(`the page has no ${selector}`);
  return /** @type {T} */ (el);
}

/**
 * A new element with a class and text.
 * @param {string} tag
 * @param {string} [className]
 * @param {string} [text]
 */
function make(tag, className, text) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  if (text !== undefined) el.textContent = text;
  return el;
}

/** The value of an input. @param {string} selector */
const inputValue = (selector) => /** @type {HTMLInputElement} */ ($(selector)).value;

/** @param {string} url @param {RequestInit} [init] */
function api(url, init = {}) {
  return fetch(url, {
    ...init,
    headers: { ...(init.headers ?? {}), ...(token ? { Authorization: `Bearer ${token}` } : {}) },
  });
}

async function loadModel() {
  const r = await api('/v1/model');
  if (r.status === 401) {
    $('#auth').hidden = false;
    return;
  }
  const m = await r.json();
  info = m;
  const index = m.index ? `, index of ${m.index.images} images` : '';
  $('#model').textContent = `${m.name} — ${m.tags.length} tags${index}`;
}

/** @param {string} t */
const short = (t) => t.length <= 3 || /^[^a-z]*_[^a-z]*$/i.test(t);
/** @param {Scored[]} tags */
const captionOf = (tags) => tags.map((t) => (short(t.tag) ? t.tag : t.tag.replace(/_/g, ' '))).join(', ');

/** @param {Record<string, Scored[]>} all */
function visible(all) {
  const th = Number(inputValue('#threshold'));
  const cth = Number(inputValue('#cthreshold'));
  /** @type {Record<string, Scored[]>} */
  const out = {};
  for (const [cat, list] of Object.entries(all)) {
    const kept = list.filter((t) => t.prob >= (cat === 'character' ? cth : th));
    if (kept.length) out[cat] = kept;
  }
  return out;
}

/** @param {Scored} t */
function tagRow(t) {
  const row = make('div', 'tag');
  row.dataset.tag = t.tag;
  row.dataset.prob = String(t.prob);
  const bar = make('span', 'bar');
  bar.style.width = `${(100 * t.prob).toFixed(1)}%`;
  row.append(bar, make('span', 'name', t.tag), make('span', '', t.prob.toFixed(2)));
  return row;
}

/** @param {Result} r */
function render(r) {
  const v = visible(r.tags);
  const groups = Object.entries(v).map(([cat, list]) => {
    const g = make('div', 'group');
    g.dataset.category = cat;
    g.append(make('h3', '', cat), ...list.map(tagRow));
    return g;
  });
  $('.tags', r.el).replaceChildren(...(groups.length ? groups : [make('p', '', 'no tag above the thresholds')]));
  const rest = Object.entries(v).filter(([c]) => c !== 'rating' && c !== 'character');
  const ordered = [...(v.rating ?? []), ...(v.character ?? []), ...rest.flatMap(([, l]) => l)];
  /** @type {HTMLInputElement} */ ($('.caption input', r.el)).value = captionOf(ordered);
}

/** A result card: preview, name, tags, caption with a copy button, similar images. @param {File} file */
function card(file) {
  const el = make('div', 'result');
  const preview = /** @type {HTMLImageElement} */ (make('img', 'preview'));
  preview.src = URL.createObjectURL(file);
  const left = make('div');
  left.append(preview, make('div', 'name', file.name || 'pasted image'));
  const caption = make('div', 'caption');
  const input = /** @type {HTMLInputElement} */ (make('input'));
  input.readOnly = true;
  const copy = make('button', '', 'copy caption');
  copy.onclick = () => navigator.clipboard.writeText(input.value);
  caption.append(input, copy);
  const right = make('div');
  right.append(make('div', 'tags', 'tagging…'), caption, make('div', 'similar'));
  el.append(left, right);
  return el;
}

/** @param {HTMLElement} el @param {File} file */
async function showSimilar(el, file) {
  const r = await api('/v1/similar?k=8', {
    method: 'POST',
    headers: { 'Content-Type': file.type || 'image/png' },
    body: file,
  });
  const s = await r.json();
  /** @type {{ image: string, score: number }[]} */
  const neighbours = s.neighbours ?? [];
  const figures = await Promise.all(
    neighbours.map(async (n) => {
      const fig = make('figure');
      const img = /** @type {HTMLImageElement} */ (make('img'));
      const res = await api(n.image);
      if (res.ok) img.src = URL.createObjectURL(await res.blob());
      fig.append(img, make('figcaption', '', n.score.toFixed(3)));
      return fig;
    }),
  );
  $('.similar', el).replaceChildren(...figures);
}

/** @param {File} file */
async function tag(file) {
  const el = card(file);
  $('#results').prepend(el);
  const res = await api('/v1/tag?threshold=0.01&rating=all', {
    method: 'POST',
    headers: { 'Content-Type': file.type || 'image/png' },
    body: file,
  });
  const body = await res.json();
  if (!res.ok) {
    $('.tags', el).replaceChildren(make('p', 'error', String(body.error)));
    return;
  }
  const r = { el, tags: body.images[0].tags };
  results.push(r);
  render(r);
  el.dataset.done = '1';
  if (info && info.index) await showSimilar(el, file);
}

/** @param {FileList | null | undefined} files */
const tagAll = (files) => [...(files ?? [])].forEach(tag);

for (const id of ['threshold', 'cthreshold'])
  $(`#${id}`).addEventListener('input', () => {
    $('#tv').textContent = inputValue('#threshold');
    $('#cv').textContent = inputValue('#cthreshold');
    results.forEach(render);
  });
$('#file').addEventListener('change', (e) => tagAll(/** @type {HTMLInputElement} */ (e.target).files));
const drop = $('#drop');
drop.addEventListener('dragover', (e) => {
  e.preventDefault();
  drop.classList.add('over');
});
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (e) => {
  e.preventDefault();
  drop.classList.remove('over');
  tagAll(e.dataTransfer?.files);
});
document.addEventListener('paste', (e) => tagAll(e.clipboardData?.files));
$('#auth').addEventListener('submit', (e) => {
  e.preventDefault();
  token = inputValue('#token');
  sessionStorage.setItem('token', token);
  $('#auth').hidden = true;
  void loadModel();
});
void loadModel();
