// facekit's web page: plain JavaScript against the HTTP API of docs/server.md (CompreFace-style routes under
// /api/v1, key in the x-api-key header). Nothing is fetched from anywhere but this server. Every piece of
// user data (names, file names, server messages) reaches the page through textContent, never as HTML.
'use strict';

(() => {
  const KEY_STORAGE = 'facekit.apiKey';
  const $ = (id) => document.getElementById(id);

  // ---- small DOM helper: el('td', {class: 'x', dataset: {testid: 'y'}}, 'text', childNode) --------------
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'dataset') Object.assign(node.dataset, v);
      else if (k === 'class') node.className = v;
      else if (k === 'text') node.textContent = v;
      else if (k.startsWith('on') && typeof v === 'function') node.addEventListener(k.slice(2), v);
      else if (k in node && typeof v !== 'string') node[k] = v;
      else node.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat()) {
      if (c === undefined || c === null || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  const fmt = (x, digits = 3) => (typeof x === 'number' && Number.isFinite(x) ? x.toFixed(digits) : '—');

  // ---- the API ------------------------------------------------------------------------------------------
  class ApiError extends Error {
    constructor(status, title, detail, code, retryAfter) {
      super(detail || title);
      this.status = status;
      this.title = title;
      this.detail = detail;
      this.code = code;
      this.retryAfter = retryAfter;
    }
  }

  let apiKey = '';
  try { apiKey = localStorage.getItem(KEY_STORAGE) || ''; } catch (_) { apiKey = ''; }

  // Sends a request; answers the parsed JSON (or the Response itself when opts.raw), throws ApiError.
  async function api(method, path, opts = {}) {
    const headers = new Headers(opts.headers || {});
    if (apiKey) headers.set('x-api-key', apiKey);
    let body = opts.body;
    if (opts.json !== undefined) {
      headers.set('content-type', 'application/json');
      body = JSON.stringify(opts.json);
    }
    let res;
    try {
      res = await fetch(path, { method, headers, body, cache: 'no-store' });
    } catch (e) {
      throw new ApiError(0, 'The server could not be reached', String(e && e.message || e), 'network');
    }
    if (res.ok) {
      if (opts.raw) return res;
      const text = await res.text();
      if (!text) return {};
      try { return JSON.parse(text); } catch (_) {
        throw new ApiError(res.status, 'Unreadable answer', 'The server answered something that is not JSON.', 'bad_answer');
      }
    }
    let problem = {};
    const text = await res.text().catch(() => '');
    try { problem = JSON.parse(text); } catch (_) { problem = {}; }
    if (!problem || typeof problem !== 'object') problem = {};
    const title = typeof problem.title === 'string' && problem.title ? problem.title : (res.statusText || 'Error');
    let detail = typeof problem.detail === 'string' ? problem.detail
      : typeof problem.message === 'string' ? problem.message : (text && text.length < 300 ? text : '');
    throw new ApiError(res.status, title, detail, problem.code || '', res.headers.get('retry-after'));
  }

  // {title, detail, hint} of an error: the problem's title and status, its detail, and what to do about it.
  function describe(err) {
    if (!(err instanceof ApiError)) return { title: 'Something went wrong', detail: String(err && err.message || err), hint: '' };
    let hint = '';
    if (err.status === 401) hint = 'The API key was not accepted: enter a valid key at the top of the page.';
    else if (err.status === 403) hint = 'This API key lacks the scope for this action.';
    else if (err.status === 0) hint = 'Is facekit serve running?';
    if (err.retryAfter) hint += `${hint ? ' ' : ''}Try again in ${err.retryAfter} s.`;
    const status = err.status ? ` (${err.status})` : '';
    return { title: err.title + status, detail: err.detail || '', hint };
  }

  // ---- the error area -----------------------------------------------------------------------------------
  function showError(err, context) {
    const d = describe(err);
    $('error-title').textContent = (context ? context + ': ' : '') + d.title;
    $('error-detail').textContent = [d.detail, d.hint].filter(Boolean).join(' — ');
    $('error').dataset.status = err instanceof ApiError ? String(err.status) : '';
    $('error').hidden = false;
    if (err instanceof ApiError && err.status === 401) openKeyPanel();
    console.warn(context, err);
  }
  function clearError() { $('error').hidden = true; }
  $('error-close').addEventListener('click', clearError);

  // A status line; data-state tells a test (or a style) what it says, data-seq counts the finished actions.
  function setStatus(id, text, state) {
    const n = $(id);
    n.textContent = text || '';
    n.dataset.state = state || 'idle';
    if (state === 'done' || state === 'error' || state === 'loaded') n.dataset.seq = String((Number(n.dataset.seq) || 0) + 1);
  }

  // ---- the API key --------------------------------------------------------------------------------------
  let keyInfo = null;  // the status answer of the last successful check

  function openKeyPanel() {
    $('key-panel').hidden = false;
    $('key-change').hidden = true;
    $('api-key').value = apiKey;
  }

  // A key's scopes as a list, whether the server sends ["a","b"] or "a,b".
  function scopesOf(key) {
    const s = key && key.scopes;
    if (Array.isArray(s)) return s.map(String);
    return typeof s === 'string' ? s.split(/[\s,]+/).filter(Boolean) : [];
  }

  function renderServerStatus(st) {
    const g = st.gallery || {};
    const people = Number(g.people) || 0, templates = Number(g.templates) || 0;
    $('status-line').textContent =
      `Gallery: ${people} ${people === 1 ? 'person' : 'people'}, ${templates} ${templates === 1 ? 'photo' : 'photos'}` +
      (g.revision !== undefined ? ` · revision ${g.revision}` : '');
    const models = st.models;
    const list = $('models-list');
    list.replaceChildren();
    if (models && typeof models === 'object') {
      for (const [k, v] of Object.entries(models)) {
        list.append(el('dt', { text: k }), el('dd', { text: typeof v === 'object' ? JSON.stringify(v) : String(v) }));
      }
      $('models').hidden = list.childElementCount === 0;
    }
  }

  async function refreshStatus() {
    const st = await api('GET', '/api/v1/facekit/status');
    keyInfo = st;
    renderServerStatus(st);
    return st;
  }

  // Checks the current key with GET /api/v1/facekit/status and shows the outcome.
  async function checkKey() {
    const status = $('key-status');
    if (!apiKey) {
      status.textContent = 'No API key yet';
      status.dataset.state = 'none';
      $('key-message').textContent = 'Enter an API key to use the service.';
      $('key-message').dataset.state = 'none';
      openKeyPanel();
      return false;
    }
    status.textContent = 'Checking the key…';
    status.dataset.state = 'checking';
    try {
      const st = await refreshStatus();
      const k = st.key || {};
      const scopes = scopesOf(k).join(', ');
      status.textContent = `Key “${k.name || '?'}”${scopes ? ' · ' + scopes : ''}`;
      status.dataset.state = 'ok';
      $('key-message').textContent = '';
      $('key-message').dataset.state = 'ok';
      $('key-panel').hidden = true;
      $('key-change').hidden = false;
      clearError();
      return true;
    } catch (err) {
      keyInfo = null;
      let msg;
      if (err instanceof ApiError && err.status === 401) {
        msg = 'This API key was not accepted (401 Unauthorized): check that it was copied whole.';
        status.dataset.state = 'unauthorized';
        status.textContent = 'Key not accepted';
      } else if (err instanceof ApiError && err.status === 403) {
        msg = 'This key is valid but may not read the server status (403 Forbidden: it lacks the "read" scope); ' +
              'what its scopes allow still works.';
        status.dataset.state = 'forbidden';
        status.textContent = 'Key with limited scopes';
      } else {
        const d = describe(err);
        msg = `The key could not be checked: ${d.title}${d.detail ? ': ' + d.detail : ''}`;
        status.dataset.state = 'error';
        status.textContent = 'Key not checked';
      }
      $('key-message').textContent = msg;
      $('key-message').dataset.state = status.dataset.state;
      openKeyPanel();
      if (status.dataset.state === 'forbidden') {
        clearError();
        $('people-list').replaceChildren();
        $('people-count').textContent = '';
        setStatus('people-status', 'This key may not list people (that needs the "read" scope).', 'error');
      } else {
        showError(err, 'API key');
      }
      return false;
    }
  }

  $('key-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    apiKey = $('api-key').value.trim();
    try {
      if (apiKey) localStorage.setItem(KEY_STORAGE, apiKey);
      else localStorage.removeItem(KEY_STORAGE);
    } catch (_) { /* storage refused: the key lasts as long as the page */ }
    if (await checkKey()) loadPeople();
  });
  $('key-forget').addEventListener('click', () => {
    apiKey = '';
    try { localStorage.removeItem(KEY_STORAGE); } catch (_) { /* nothing kept */ }
    $('api-key').value = '';
    keyInfo = null;
    $('people-list').replaceChildren();
    checkKey();
  });
  $('key-show').addEventListener('click', () => {
    const input = $('api-key');
    const show = input.type === 'password';
    input.type = show ? 'text' : 'password';
    $('key-show').textContent = show ? 'Hide' : 'Show';
    $('key-show').setAttribute('aria-pressed', String(show));
  });
  $('key-change').addEventListener('click', () => { openKeyPanel(); $('api-key').focus(); });

  // ---- images -------------------------------------------------------------------------------------------
  function loadImage(blob) {
    return new Promise((resolve, reject) => {
      const url = URL.createObjectURL(blob);
      const img = new Image();
      img.onload = () => resolve({ img, url });
      img.onerror = () => { URL.revokeObjectURL(url); reject(new Error('The browser could not read this image.')); };
      img.src = url;
    });
  }

  function labelOf(face) {
    const best = Array.isArray(face.subjects) && face.subjects.length ? face.subjects[0] : null;
    const known = best && !face.unknown;
    return {
      name: known ? String(best.subject) : 'unknown',
      known: !!known,
      similarity: best ? best.similarity : undefined,
    };
  }

  function livenessOf(face) {
    const l = face.liveness;
    if (!l || typeof l !== 'object') return { state: '', text: '—' };
    const state = typeof l.state === 'string' ? l.state : (l.live ? 'live' : 'spoof');
    return { state, text: `${state} ${fmt(l.score, 2)}` };
  }

  function drawFaces(canvas, img, faces) {
    const w = img.naturalWidth, h = img.naturalHeight;
    canvas.width = w;
    canvas.height = h;
    const ctx = canvas.getContext('2d');
    ctx.drawImage(img, 0, 0);
    const line = Math.max(2, Math.round(Math.max(w, h) / 320));
    const basePx = Math.max(14, Math.round(Math.max(w, h) / 45));
    ctx.textBaseline = 'top';
    // the boxes first, then the labels over them
    const boxes = faces.map((face, i) => {
      const b = face.box || {};
      const x0 = Number(b.x_min) || 0, y0 = Number(b.y_min) || 0;
      const x1 = Number(b.x_max) || 0, y1 = Number(b.y_max) || 0;
      const lab = labelOf(face), live = livenessOf(face);
      const color = live.state === 'spoof' ? '#e5484d' : lab.known ? '#30a46c' : '#f5a524';
      ctx.lineWidth = line;
      ctx.strokeStyle = color;
      ctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
      return { i, x0, y0, x1, y1, lab, live, color };
    });
    for (const { i, x0, y0, x1, y1, lab, live, color } of boxes) {
      // a label no wider than about twice its box: the full one, else number and name, else the number
      // (the table beside the picture has everything)
      const fontPx = Math.max(12, Math.min(basePx, Math.round((y1 - y0) / 4)));
      ctx.font = `600 ${fontPx}px system-ui, sans-serif`;
      let text = `${i + 1}. ${lab.name}`;
      if (lab.similarity !== undefined) text += ` ${fmt(lab.similarity, 2)}`;
      if (live.state) text += ` · ${live.state}`;
      const room = Math.max(2 * (x1 - x0), 6 * fontPx);
      for (const shorter of [`${i + 1}. ${lab.name}`, `${i + 1}`]) {
        if (ctx.measureText(text).width <= room) break;
        text = shorter;
      }
      const tw = ctx.measureText(text).width + fontPx * 0.6, th = fontPx * 1.35;
      let ty = y0 - th;
      if (ty < 0) ty = Math.min(h - th, y1);
      const tx = Math.max(0, Math.min(x0, w - tw));
      ctx.fillStyle = color;
      ctx.fillRect(tx, ty, tw, th);
      ctx.fillStyle = '#111';
      ctx.fillText(text, tx + fontPx * 0.3, ty + fontPx * 0.18);
    }
  }

  // ---- identify -----------------------------------------------------------------------------------------
  let identifySeq = 0;
  let identifyUrl = null;

  async function identify(blob, label) {
    const seq = ++identifySeq;
    setStatus('identify-status', `Identifying ${label}…`, 'busy');
    const form = new FormData();
    form.append('file', blob, label.endsWith('.jpg') || label.includes('.') ? label : label + '.jpg');
    let picture;
    try {
      picture = await loadImage(blob);
    } catch (e) {
      picture = null;  // the server may still read it; boxes are listed without the drawing
    }
    try {
      const answer = await api('POST', '/api/v1/recognition/recognize?face_plugins=liveness&prediction_count=3', { body: form });
      if (seq !== identifySeq) return;
      const faces = Array.isArray(answer.result) ? answer.result : [];
      showIdentify(faces, picture, label);
      clearError();
    } catch (err) {
      if (seq !== identifySeq) return;
      const noFace = err instanceof ApiError && err.code === 'no_face';
      if (noFace && picture) showIdentify([], picture, label);
      else $('identify-results').hidden = true;
      setStatus('identify-status', noFace ? `No face found in ${label}.` : `Could not identify ${label}.`, noFace ? 'done' : 'error');
      showError(err, 'Identify');
    } finally {
      if (picture) {
        if (identifyUrl) URL.revokeObjectURL(identifyUrl);
        identifyUrl = picture.url;
      }
    }
  }

  function showIdentify(faces, picture, label) {
    const canvas = $('identify-canvas');
    if (picture) {
      drawFaces(canvas, picture.img, faces);
      canvas.hidden = false;
    } else {
      canvas.hidden = true;
    }
    const rows = faces.map((face, i) => {
      const lab = labelOf(face), live = livenessOf(face);
      const others = (Array.isArray(face.subjects) ? face.subjects : [])
        .slice(lab.known ? 1 : 0)
        .map((s) => `${s.subject} ${fmt(s.similarity, 2)}`).join(', ');
      return el('tr', { dataset: { testid: 'identify-row', subject: lab.name, unknown: String(!lab.known), liveness: live.state } },
        el('td', { text: String(i + 1) }),
        el('td', { class: lab.known ? 'name known' : 'name unknown', dataset: { testid: 'identify-name' }, text: lab.name }),
        el('td', { dataset: { testid: 'identify-similarity' }, text: fmt(lab.similarity) }),
        el('td', { dataset: { testid: 'identify-threshold' }, text: fmt(face.threshold) }),
        el('td', { class: `live ${live.state}`, dataset: { testid: 'identify-liveness' }, text: live.text }),
        el('td', { class: 'muted', dataset: { testid: 'identify-candidates' }, text: lab.known ? (others || '—') : (others ? 'closest: ' + others : '—') }));
    });
    $('identify-rows').replaceChildren(...rows);
    $('identify-results').hidden = faces.length === 0;
    const known = faces.filter((f) => labelOf(f).known).length;
    setStatus('identify-status',
      faces.length === 0 ? `No face found in ${label}.`
        : `${label}: ${faces.length} ${faces.length === 1 ? 'face' : 'faces'}, ${known} recognised.`, 'done');
  }

  $('identify-file').addEventListener('change', (ev) => {
    const file = ev.target.files && ev.target.files[0];
    if (!file) return;
    identify(file, file.name);
    ev.target.value = '';  // choosing the same file again identifies it again
  });

  // ---- camera -------------------------------------------------------------------------------------------
  let stream = null;

  function cameraButtons() {
    const on = !!stream;
    $('camera-start').disabled = on;
    $('camera-stop').disabled = !on;
    $('camera-identify').disabled = !on;
    $('camera-enrol').disabled = !on;
    $('camera-off').hidden = on;
  }

  async function startCamera() {
    if (stream) return;
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      showError(new Error('This browser gives no camera to this page (a camera needs https or localhost).'), 'Camera');
      return;
    }
    setStatus('camera-status', 'Starting the camera…', 'busy');
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: false });
      const video = $('camera-video');
      video.srcObject = stream;
      await video.play().catch(() => {});
      setStatus('camera-status', 'Camera on.', 'on');
    } catch (err) {
      stream = null;
      setStatus('camera-status', 'No camera.', 'error');
      showError(new Error(`${err.name || 'Error'}: ${err.message || 'the camera could not be opened'}`), 'Camera');
    }
    cameraButtons();
  }

  function stopCamera() {
    if (stream) for (const t of stream.getTracks()) t.stop();
    stream = null;
    $('camera-video').srcObject = null;
    setStatus('camera-status', 'Camera off.', 'idle');
    cameraButtons();
  }

  // One frame of the camera as a JPEG blob.
  async function grabFrame() {
    const video = $('camera-video');
    for (let i = 0; i < 50 && (video.readyState < 2 || !video.videoWidth); ++i) {
      await new Promise((r) => setTimeout(r, 100));
    }
    if (!video.videoWidth) throw new Error('The camera gives no picture yet.');
    const c = document.createElement('canvas');
    c.width = video.videoWidth;
    c.height = video.videoHeight;
    c.getContext('2d').drawImage(video, 0, 0);
    return new Promise((resolve, reject) =>
      c.toBlob((b) => (b ? resolve(b) : reject(new Error('The frame could not be encoded.'))), 'image/jpeg', 0.92));
  }

  let frameNo = 0;
  $('camera-start').addEventListener('click', startCamera);
  $('camera-stop').addEventListener('click', stopCamera);
  $('camera-identify').addEventListener('click', async () => {
    try {
      const blob = await grabFrame();
      frameNo += 1;
      setStatus('camera-status', `Frame ${frameNo} captured.`, 'on');
      identify(blob, `camera frame ${frameNo}`);
      $('identify').scrollIntoView({ block: 'start' });
    } catch (err) { showError(err, 'Camera'); }
  });
  $('camera-enrol').addEventListener('click', async () => {
    try {
      const blob = await grabFrame();
      frameNo += 1;
      addPendingFrame(blob, `camera-frame-${frameNo}.jpg`);
      setStatus('camera-status', `Frame ${frameNo} added to the enrolment.`, 'on');
    } catch (err) { showError(err, 'Camera'); }
  });
  cameraButtons();

  // ---- enrol --------------------------------------------------------------------------------------------
  const pendingFrames = [];  // {blob, name, url}

  function renderPendingFrames() {
    const box = $('enrol-frames');
    box.replaceChildren(...pendingFrames.map((f, i) =>
      el('figure', { class: 'frame', dataset: { testid: 'enrol-frame' } },
        el('img', { src: f.url, alt: f.name }),
        el('button', { type: 'button', class: 'link', title: 'Remove this frame', 'aria-label': `Remove ${f.name}`,
          onclick: () => { URL.revokeObjectURL(f.url); pendingFrames.splice(i, 1); renderPendingFrames(); } }, '×'))));
    updatePicked();
  }

  function addPendingFrame(blob, name) {
    pendingFrames.push({ blob, name, url: URL.createObjectURL(blob) });
    renderPendingFrames();
  }

  function updatePicked() {
    const files = $('enrol-files').files ? $('enrol-files').files.length : 0;
    const parts = [];
    if (files) parts.push(`${files} ${files === 1 ? 'photo' : 'photos'}`);
    if (pendingFrames.length) parts.push(`${pendingFrames.length} camera ${pendingFrames.length === 1 ? 'frame' : 'frames'}`);
    $('enrol-picked').textContent = parts.length ? parts.join(' and ') + ' to enrol' : 'No photo chosen';
  }
  $('enrol-files').addEventListener('change', updatePicked);

  function qualityCell(q) {
    if (!q || typeof q !== 'object') return { verdict: '', node: el('span', { class: 'muted', text: '—' }) };
    // "verdict" (good / fair / poor); "level" is the same word in facekit's own JSON
    const verdict = typeof q.verdict === 'string' ? q.verdict : typeof q.level === 'string' ? q.level : '';
    return { verdict, node: el('span', { class: `badge q-${verdict}`, dataset: { testid: 'enrol-verdict' }, text: verdict || '?' }) };
  }

  $('enrol-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const name = $('enrol-name').value.trim();
    const files = Array.from($('enrol-files').files || []);
    const items = files.map((f) => ({ blob: f, name: f.name })).concat(pendingFrames.map((f) => ({ blob: f.blob, name: f.name })));
    if (!name) { showError(new Error('Enter the name of the person to enrol.'), 'Enrol'); $('enrol-name').focus(); return; }
    if (!items.length) { showError(new Error('Choose one or more photos, or capture camera frames.'), 'Enrol'); return; }
    clearError();
    $('enrol-submit').disabled = true;
    $('enrol-results').hidden = false;
    const allowPoor = $('enrol-allow-poor').checked;
    let added = 0, lastRow = null;
    for (const item of items) {
      const result = el('td', { dataset: { testid: 'enrol-result' }, text: 'uploading…' });
      const quality = el('td', {}, el('span', { class: 'muted', text: '…' }));
      const details = el('td', { dataset: { testid: 'enrol-detail' } });
      const row = el('tr', { dataset: { testid: 'enrol-row', state: 'busy', subject: name } },
        el('td', { class: 'file', dataset: { testid: 'enrol-file' }, text: item.name }), result, quality, details);
      if (lastRow) lastRow.after(row); else $('enrol-rows').prepend(row);
      lastRow = row;
      const form = new FormData();
      form.append('file', item.blob, item.name);
      const url = `/api/v1/recognition/faces?subject=${encodeURIComponent(name)}` + (allowPoor ? '&allow_poor=true' : '');
      try {
        const answer = await api('POST', url, { body: form });
        const q = qualityCell(answer.quality);
        row.dataset.state = 'ok';
        row.dataset.verdict = q.verdict;
        row.dataset.duplicate = String(answer.duplicate === true);
        const who = answer.subject !== undefined ? String(answer.subject) : name;
        result.textContent = answer.duplicate === true ? `already enrolled for ${who}` : `added to ${who}`;
        result.className = 'ok';
        quality.replaceChildren(q.node);
        const reasons = answer.quality && Array.isArray(answer.quality.reasons) ? answer.quality.reasons : [];
        const facts = [];
        const qa = answer.quality || {};
        if (typeof qa.score === 'number') facts.push(`score ${fmt(qa.score, 2)}`);
        if (typeof qa.face_size === 'number') facts.push(`face ${Math.round(qa.face_size)} px`);
        if (answer.duplicate === true) facts.push('a duplicate of a photo already enrolled');
        details.replaceChildren(reasons.length
          ? el('ul', { class: 'reasons' }, reasons.map((r) => el('li', { text: String(r) })))
          : el('span', { class: 'muted', text: 'no quality issue' }),
        facts.length ? el('div', { class: 'muted small', text: facts.join(' · ') }) : null);
        added += 1;
      } catch (err) {
        row.dataset.state = 'error';
        row.dataset.status = err instanceof ApiError ? String(err.status) : '';
        row.dataset.code = err instanceof ApiError ? err.code : '';
        const d = describe(err);
        result.textContent = 'not added';
        result.className = 'bad';
        quality.replaceChildren(el('span', { class: 'muted', text: '—' }));
        details.replaceChildren(el('span', { class: 'bad', dataset: { testid: 'enrol-error' }, text: d.detail || d.title }),
          el('div', { class: 'muted small', text: [d.title, d.hint].filter(Boolean).join(' · ') }));
        if (err instanceof ApiError && (err.status === 401 || err.status === 403 || err.status === 0 || err.status >= 500)) {
          showError(err, 'Enrol');
        }
      }
    }
    $('enrol-submit').disabled = false;
    $('enrol-files').value = '';
    for (const f of pendingFrames.splice(0)) URL.revokeObjectURL(f.url);
    renderPendingFrames();
    if (added) {
      refreshStatus().catch(() => {});
      loadPeople();
    }
  });

  // ---- people -------------------------------------------------------------------------------------------
  let thumbUrls = [];
  let peopleSeq = 0;

  function pathOf(name) { return `/api/v1/recognition/subjects/${encodeURIComponent(name)}`; }

  async function loadPeople() {
    const seq = ++peopleSeq;
    setStatus('people-status', 'Loading…', 'busy');
    let names;
    try {
      const answer = await api('GET', '/api/v1/recognition/subjects');
      names = Array.isArray(answer.subjects) ? answer.subjects.map(String) : [];
    } catch (err) {
      if (seq !== peopleSeq) return;
      setStatus('people-status', 'The list could not be loaded.', 'error');
      showError(err, 'People');
      return;
    }
    if (seq !== peopleSeq) return;
    for (const u of thumbUrls) URL.revokeObjectURL(u);
    thumbUrls = [];
    names.sort((a, b) => a.localeCompare(b));
    const items = names.map(personItem);
    $('people-list').replaceChildren(...items.map((p) => p.li));
    $('people-empty').hidden = names.length > 0;
    $('people-count').textContent = `(${names.length})`;
    setStatus('people-status', '', 'listed');
    await Promise.all(items.map((p) => loadFaces(p, seq)));
    if (seq === peopleSeq) setStatus('people-status', '', 'loaded');
  }

  function personItem(name) {
    const li = el('li', { class: 'person', dataset: { testid: 'person', subject: name } });
    const title = el('span', { class: 'person-name', dataset: { testid: 'person-name' }, text: name });
    const count = el('span', { class: 'muted small', dataset: { testid: 'person-count' } });
    const thumbs = el('div', { class: 'thumbs', dataset: { testid: 'thumbs' } });
    const actions = el('div', { class: 'actions' });
    const renameBtn = el('button', { type: 'button', dataset: { testid: 'rename' }, text: 'Rename' });
    const deleteBtn = el('button', { type: 'button', class: 'danger', dataset: { testid: 'delete' }, text: 'Delete' });
    actions.append(renameBtn, deleteBtn);
    const confirmBox = el('div', { class: 'confirm', dataset: { testid: 'person-confirm' }, hidden: true });
    li.append(el('div', { class: 'person-head' }, el('div', {}, title, ' ', count), actions), thumbs, confirmBox);

    renameBtn.addEventListener('click', () => {
      const input = el('input', { type: 'text', value: name, maxlength: '200', dataset: { testid: 'rename-input' }, 'aria-label': `New name for ${name}` });
      const save = el('button', { type: 'submit', class: 'primary', dataset: { testid: 'rename-save' }, text: 'Save' });
      const cancel = el('button', { type: 'button', dataset: { testid: 'rename-cancel' }, text: 'Cancel' });
      const form = el('form', { class: 'inline' }, el('label', { text: 'New name ' }, input), save, cancel);
      cancel.addEventListener('click', () => { confirmBox.hidden = true; confirmBox.replaceChildren(); });
      form.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        const newName = input.value.trim();
        if (!newName || newName === name) { confirmBox.hidden = true; return; }
        save.disabled = true;
        try {
          await api('PUT', pathOf(name), { json: { subject: newName } });
          clearError();
          await loadPeople();
        } catch (err) {
          save.disabled = false;
          showError(err, `Rename ${name}`);
        }
      });
      confirmBox.replaceChildren(form);
      confirmBox.hidden = false;
      input.focus();
      input.select();
    });

    deleteBtn.addEventListener('click', () => {
      const yes = el('button', { type: 'button', class: 'danger', dataset: { testid: 'delete-confirm' }, text: 'Delete' });
      const no = el('button', { type: 'button', dataset: { testid: 'delete-cancel' }, text: 'Cancel' });
      no.addEventListener('click', () => { confirmBox.hidden = true; confirmBox.replaceChildren(); });
      yes.addEventListener('click', async () => {
        yes.disabled = true;
        try {
          await api('DELETE', pathOf(name));
          clearError();
          refreshStatus().catch(() => {});
          await loadPeople();
        } catch (err) {
          yes.disabled = false;
          showError(err, `Delete ${name}`);
        }
      });
      confirmBox.replaceChildren(el('span', { text: `Delete ${name} and all of their photos? This cannot be undone. ` }), yes, no);
      confirmBox.hidden = false;
      no.focus();
    });
    return { li, name, thumbs, count };
  }

  async function loadFaces(p, seq) {
    let answer;
    try {
      answer = await api('GET', `/api/v1/recognition/faces?subject=${encodeURIComponent(p.name)}&size=100`);
    } catch (err) {
      if (seq === peopleSeq) {
        p.count.textContent = 'photos could not be listed';
        showError(err, `Photos of ${p.name}`);
      }
      return;
    }
    if (seq !== peopleSeq) return;
    const faces = Array.isArray(answer.faces) ? answer.faces : [];
    const total = Number.isFinite(answer.total_elements) ? answer.total_elements : faces.length;
    p.count.textContent = `${total} ${total === 1 ? 'photo' : 'photos'}`;
    p.li.dataset.faces = String(total);
    if (!faces.length) p.thumbs.append(el('span', { class: 'muted small', text: 'no photo yet' }));
    await Promise.all(faces.map(async (f, i) => {
      const holder = el('div', { class: 'thumb loading', dataset: { testid: 'thumb-holder', imageId: String(f.image_id) } });
      p.thumbs.append(holder);
      try {
        const res = await api('GET', `/api/v1/recognition/faces/${encodeURIComponent(f.image_id)}/img`, { raw: true });
        const blob = await res.blob();
        if (seq !== peopleSeq) return;
        const url = URL.createObjectURL(blob);
        thumbUrls.push(url);
        const img = el('img', { alt: `${p.name}, photo ${i + 1}`, dataset: { testid: 'thumb', imageId: String(f.image_id) } });
        await new Promise((resolve) => { img.onload = resolve; img.onerror = resolve; img.src = url; });
        holder.classList.remove('loading');
        holder.replaceChildren(img);
      } catch (err) {
        holder.classList.remove('loading');
        holder.classList.add('broken');
        holder.textContent = '?';
        holder.title = describe(err).detail || describe(err).title;
      }
    }));
    if (faces.length < total) p.thumbs.append(el('span', { class: 'muted small', text: `+${total - faces.length} more` }));
  }

  $('people-refresh').addEventListener('click', () => { loadPeople(); refreshStatus().catch(() => {}); });

  // ---- verify -------------------------------------------------------------------------------------------
  function preview(input, imgId) {
    const img = $(imgId);
    const f = input.files && input.files[0];
    if (img.src) URL.revokeObjectURL(img.src);
    if (!f) { img.hidden = true; img.removeAttribute('src'); return; }
    img.src = URL.createObjectURL(f);
    img.hidden = false;
  }
  $('verify-source').addEventListener('change', (ev) => { preview(ev.target, 'verify-source-preview'); $('verify-result').hidden = true; });
  $('verify-target').addEventListener('change', (ev) => { preview(ev.target, 'verify-target-preview'); $('verify-result').hidden = true; });

  $('verify-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const src = $('verify-source').files[0], dst = $('verify-target').files[0];
    if (!src || !dst) { showError(new Error('Choose two photos to compare.'), 'Verify'); return; }
    const box = $('verify-result');
    box.hidden = false;
    box.dataset.state = 'busy';
    delete box.dataset.same;
    $('verify-verdict').textContent = 'Comparing…';
    $('verify-similarity').textContent = '…';
    $('verify-threshold').textContent = '…';
    $('verify-note').textContent = '';
    $('verify-submit').disabled = true;
    const form = new FormData();
    form.append('source_image', src, src.name);
    form.append('target_image', dst, dst.name);
    try {
      const answer = await api('POST', '/api/v1/verification/verify', { body: form });
      const results = Array.isArray(answer.result) ? answer.result : [];
      let best = null, threshold, pairs = 0;
      for (const r of results) {
        if (threshold === undefined && typeof r.threshold === 'number') threshold = r.threshold;
        for (const m of Array.isArray(r.face_matches) ? r.face_matches : []) {
          pairs += 1;
          if (!best || m.similarity > best.similarity) best = { ...m, threshold: r.threshold };
        }
      }
      if (!best) {
        box.dataset.state = 'none';
        $('verify-verdict').textContent = 'No pair of faces to compare';
        $('verify-similarity').textContent = '—';
        $('verify-threshold').textContent = fmt(threshold);
      } else {
        const same = best.same !== undefined ? !!best.same : best.similarity >= best.threshold;
        box.dataset.state = 'done';
        box.dataset.same = String(same);
        $('verify-verdict').textContent = same ? 'Same person' : 'Different people';
        $('verify-verdict').className = 'verdict ' + (same ? 'same' : 'different');
        $('verify-similarity').textContent = fmt(best.similarity);
        $('verify-threshold').textContent = fmt(best.threshold !== undefined ? best.threshold : threshold);
        if (pairs > 1) $('verify-note').textContent = `${pairs} pairs of faces compared; the closest pair is shown.`;
      }
      clearError();
    } catch (err) {
      box.dataset.state = 'error';
      $('verify-verdict').textContent = 'Could not compare';
      $('verify-verdict').className = 'verdict';
      $('verify-similarity').textContent = '—';
      $('verify-threshold').textContent = '—';
      $('verify-note').textContent = describe(err).detail;
      showError(err, 'Verify');
    } finally {
      $('verify-submit').disabled = false;
    }
  });

  // ---- start --------------------------------------------------------------------------------------------
  $('api-key').value = apiKey;
  checkKey().then((ok) => { if (ok) loadPeople(); });
  window.facekitPage = { ready: true };
})();
