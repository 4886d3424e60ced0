// @ts-check
// The review page `serve --dataset DIR` shows at /review: a grid of the dataset's images and one image
// with its caption's tags beside the model's, each marked agreeing, model-only or human-only; keyboard
// first (j/k image, ↑/↓ tag, a accept, x reject, t add, u undo, n next unreviewed). Every edit is a
// caption write through PUT /v1/review/:i with the etag it read: a caption changed on disk meanwhile is
// shown as a conflict, never overwritten. The Teach panel starts a teach run, polls its progress, shows
// each taught tag's AP beside the served model's, swaps the model and downloads its files. Text from
// captions and models is set as text, never markup.

/** @typedef {{ tag: string, prob: number | null, mark: string }} Tag */
/** @typedef {{ i: number, name: string, reviewed: boolean, caption: { tags: string[], etag: string }, tags: Tag[] }} Detail */

let token = new URLSearchParams(location.hash.slice(1)).get('token') ?? sessionStorage.getItem('token') ?? '';
/** @type {{ i: number, name: string, reviewed: boolean }[]} */
let list = [];
let at = 0;
let selected = 0;
/** @type {Detail | null} */
let detail = null;
/** @type {string[][]} the caption's tags before each edit of this image, for undo */
let undo = [];

/**
 * @template {HTMLElement} T
 * @param {string} selector
 * @returns {T}
 */
function $(selector) {
  const el = document.querySelector(selector);
  if (!el) throw new Error(`the page has no ${selector}`);
  return /** @type {T} */ (el);
}

/**
 * The API with the token, JSON in and out; a failure shows its message.
 * @param {string} url
 * @param {RequestInit} [init]
 */
async function api(url, init = {}) {
  const headers = {
    ...(token ? { authorization: `Bearer ${token}` } : {}),
    ...(init.body ? { 'content-type': 'application/json' } : {}),
  };
  const res = await fetch(url, { ...init, headers });
  if (res.status === 401) {
    $('#auth').hidden = false;
    throw new Error('this server needs its token');
  }
  return {
    status: res.status,
    body: res.headers.get('content-type')?.startsWith('application/json') ? await res.json() : await res.blob(),
  };
}

/** @param {string} text @param {boolean} [conflict] */
function say(text, conflict = false) {
  const s = $('#status');
  s.textContent = text;
  s.className = conflict ? 'conflict' : '';
}

async function loadList() {
  const q = new URLSearchParams({
    filter: /** @type {HTMLSelectElement} */ ($('#filter')).value,
    tag: /** @type {HTMLInputElement} */ ($('#query')).value,
  });
  const r = await api(`/v1/review?${q}`);
  list = r.body.images;
  $('#progress').textContent = `${r.body.reviewed} of ${r.body.total} reviewed`;
  const grid = $('#grid');
  grid.replaceChildren();
  for (const [k, row] of list.entries()) {
    const img = document.createElement('img');
    img.alt = row.name;
    img.title = row.name;
    img.dataset.i = String(row.i);
    img.className = row.reviewed ? 'reviewed' : '';
    img.addEventListener('click', () => void show(k));
    grid.append(img);
    void api(`/v1/review/${row.i}/image`).then((t) => (img.src = URL.createObjectURL(/** @type {Blob} */ (t.body))));
  }
}

/** @param {number} k */
async function show(k) {
  if (list.length === 0) return say('no image matches');
  at = Math.max(0, Math.min(list.length - 1, k));
  const row = list[at];
  if (!row) return;
  const r = await api(`/v1/review/${row.i}`);
  if (r.status !== 200) {
    detail = null;
    $('#tags').replaceChildren();
    $('#name').textContent = row.name;
    return say(r.body.error ?? `error ${r.status}`, true);
  }
  if (detail?.i !== row.i) undo = [];
  detail = r.body;
  selected = Math.min(selected, Math.max(0, (detail?.tags.length ?? 1) - 1));
  const img = await api(`/v1/review/${row.i}/image`);
  /** @type {HTMLImageElement} */ ($('#photo')).src = URL.createObjectURL(/** @type {Blob} */ (img.body));
  for (const g of document.querySelectorAll('#grid img'))
    g.classList.toggle('current', g.getAttribute('data-i') === String(row.i));
  render();
}

function render() {
  if (!detail) return;
  $('#name').textContent = `${detail.name}${detail.reviewed ? ' (reviewed)' : ''}`;
  const ul = $('#tags');
  ul.replaceChildren();
  detail.tags.forEach((t, k) => {
    const li = document.createElement('li');
    li.className = `${t.mark}${k === selected ? ' selected' : ''}`;
    li.dataset.tag = t.tag;
    li.dataset.mark = t.mark;
    li.textContent = t.prob === null ? t.tag : `${t.tag} ${t.prob.toFixed(2)}`;
    ul.append(li);
  });
}

/** Write `tags` as the caption, with the etag read; a conflict shows what is on disk. @param {string[]} tags */
async function save(tags) {
  if (!detail) return;
  const before = detail.caption.tags;
  const r = await api(`/v1/review/${detail.i}`, {
    method: 'PUT',
    body: JSON.stringify({ tags, etag: detail.caption.etag }),
  });
  if (r.status === 409)
    return say(`${r.body.error}: on disk now: ${r.body.current.tags.join(', ') || '(empty)'}`, true);
  if (r.status !== 200) return say(r.body.error ?? `error ${r.status}`, true);
  undo.push(before);
  say(`saved ${detail.name}`);
  await show(at);
}

/** @param {number | null} x */
const ap = (x) => (x === null ? '–' : x.toFixed(3));

/** The teach run's state: progress while it runs, then each tag's AP beside the served model's. */
async function pollTeach() {
  const r = await api('/v1/review/teach');
  if (r.status !== 200) return;
  $('#teach').hidden = false;
  const s = r.body;
  const bar = /** @type {HTMLProgressElement} */ ($('#teach-progress'));
  bar.max = Math.max(1, s.total);
  bar.value = s.state === 'done' ? bar.max : s.done;
  $('#teach-phase').textContent =
    s.state === 'running'
      ? `${s.phase}${s.total ? ` ${s.done} of ${s.total}` : ''}`
      : s.state === 'failed'
        ? `failed: ${s.error}`
        : s.state === 'done'
          ? `done: ${s.result.tags.length} tags taught, holdout of ${s.result.holdoutImages} images`
          : '';
  $('#teach-log').textContent = s.log.join('\n');
  /** @type {HTMLButtonElement} */ ($('#teach-start')).disabled = s.state === 'running';
  if (s.state === 'running') return void setTimeout(() => void pollTeach(), 500);
  const res = s.result;
  $('#teach-result').hidden = !res;
  $('#teach-swap').hidden = !res || res.swapped;
  if (!res) return;
  $('#teach-result tbody').replaceChildren(
    ...res.tags.map((/** @type {any} */ t) => {
      const tr = document.createElement('tr');
      tr.dataset.tag = t.tag;
      // Ticked: new tags, and those at least as good on the holdout as the served model's output (a
      // tag without a holdout positive has no evidence either way: left to the served model).
      const box = Object.assign(document.createElement('input'), {
        type: 'checkbox',
        checked: res.swapped
          ? res.kept.includes(t.tag)
          : !t.inPrevious || (t.ap !== null && t.previousAp !== null && t.ap >= t.previousAp),
        disabled: res.swapped,
      });
      box.dataset.tag = t.tag;
      const cell = document.createElement('td');
      cell.append(box);
      tr.append(cell);
      for (const [text, better] of [
        [t.tag, false],
        [String(t.positives), false],
        [ap(t.ap), t.ap !== null && (t.previousAp === null || t.ap > t.previousAp)],
        [t.inPrevious ? ap(t.previousAp) : 'new', false],
        [ap(t.f1), false],
      ])
        tr.append(
          Object.assign(document.createElement('td'), { textContent: text, className: better ? 'better' : '' }),
        );
      return tr;
    }),
  );
  $('#teach-files').replaceChildren(
    ...['model', 'tags', 'thresholds'].map((kind) => {
      const b = Object.assign(document.createElement('button'), { textContent: `download ${kind}` });
      b.addEventListener('click', () => void download(kind));
      return b;
    }),
  );
}

/** A taught file fetched with the token and saved under its own name. @param {string} kind */
async function download(kind) {
  const res = await fetch(`/v1/review/teach/files/${kind}`, {
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });
  if (!res.ok) return say((await res.json()).error ?? `error ${res.status}`, true);
  const name = /filename="([^"]+)"/.exec(res.headers.get('content-disposition') ?? '')?.[1] ?? kind;
  const a = Object.assign(document.createElement('a'), { href: URL.createObjectURL(await res.blob()), download: name });
  a.click();
}

/** @param {KeyboardEvent} e */
async function onKey(e) {
  if (e.target instanceof HTMLInputElement || e.target instanceof HTMLSelectElement) return;
  const t = detail?.tags[selected];
  const caption = detail?.caption.tags ?? [];
  if (e.key === 'j' || e.key === 'ArrowRight') await show(at + 1);
  else if (e.key === 'k' || e.key === 'ArrowLeft') await show(at - 1);
  else if (e.key === 'ArrowDown') ((selected = Math.min(selected + 1, (detail?.tags.length ?? 1) - 1)), render());
  else if (e.key === 'ArrowUp') ((selected = Math.max(0, selected - 1)), render());
  else if (e.key === 'a' && t?.mark === 'model-only') await save([...caption, t.tag]);
  else if (e.key === 'x' && t && caption.includes(t.tag)) await save(caption.filter((c) => c !== t.tag));
  else if (e.key === 'u' && undo.length) {
    const prev = /** @type {string[]} */ (undo.pop());
    await save(prev);
    undo.pop();
  } else if (e.key === 't') (e.preventDefault(), $('#newtag').focus());
  else if (e.key === 'n') {
    const k = list.findIndex((r) => !r.reviewed);
    if (k >= 0) await show(k);
  } else return;
  e.preventDefault();
}

async function complete() {
  const q = /** @type {HTMLInputElement} */ ($('#newtag')).value;
  const r = await api(`/v1/review/tags?q=${encodeURIComponent(q)}`);
  $('#completion').replaceChildren(
    ...r.body.tags.map((/** @type {{ tag: string }} */ t) =>
      Object.assign(document.createElement('option'), { value: t.tag }),
    ),
  );
}

$('#add').addEventListener('submit', (e) => {
  e.preventDefault();
  const input = /** @type {HTMLInputElement} */ ($('#newtag'));
  const tag = input.value.trim().replace(/\s+/g, '_');
  input.value = '';
  input.blur();
  if (tag && detail && !detail.caption.tags.includes(tag)) void save([...detail.caption.tags, tag]);
});
$('#newtag').addEventListener('input', () => void complete());
$('#teach-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const tags = /** @type {HTMLInputElement} */ ($('#teach-tags')).value.split(/[\s,]+/).filter(Boolean);
  void api('/v1/review/teach', { method: 'POST', body: JSON.stringify(tags.length ? { tags } : {}) })
    .then((r) => (r.status === 202 ? pollTeach() : say(r.body.error ?? `error ${r.status}`, true)))
    .catch((err) => say(String(err.message ?? err), true));
});
$('#teach-swap').addEventListener('click', () => {
  // The ticked tags only (a relearned tag left unticked keeps the served model's output).
  const boxes = /** @type {HTMLInputElement[]} */ ([...document.querySelectorAll('#teach-result tbody input')]);
  const tags = boxes.filter((b) => b.checked).map((b) => /** @type {string} */ (b.dataset.tag));
  const body = JSON.stringify(tags.length === boxes.length ? {} : { tags });
  void api('/v1/review/teach/swap', { method: 'POST', body }).then(async (r) => {
    if (r.status !== 200) return say(r.body.error ?? `error ${r.status}`, true);
    say(`now serving ${r.body.model} (${r.body.tags} tags)`);
    await pollTeach();
    await show(at);
  });
});
$('#auth').addEventListener('submit', (e) => {
  e.preventDefault();
  token = /** @type {HTMLInputElement} */ ($('#token')).value;
  sessionStorage.setItem('token', token);
  $('#auth').hidden = true;
  void loadList().then(() => show(0));
});
$('#filter').addEventListener('change', () => void loadList().then(() => show(0)));
$('#query').addEventListener('change', () => void loadList().then(() => show(0)));
document.addEventListener('keydown', (e) => void onKey(e).catch((err) => say(String(err.message ?? err), true)));
if (token) sessionStorage.setItem('token', token);
void loadList()
  .then(() => show(list.findIndex((r) => !r.reviewed) >= 0 ? list.findIndex((r) => !r.reviewed) : 0))
  .then(() => pollTeach())
  .catch((err) => say(String(err.message ?? err), true));

export {};
