// app.js - the Tender console: plain ES2020, no framework, no build step.
// It talks to the same REST API as the CLI (docs/api.md) with the token the
// user pastes (kept in sessionStorage), and keeps itself current from the
// server-sent event stream, read with fetch so that it can send the token.
'use strict';

(() => {
  const TOKEN_KEY = 'tender.token';
  const VIEWS = ['targets', 'distributions', 'rollouts', 'events', 'config'];
  const EVENTS_KEPT = 500;
  // While something is on its way (a node booting, a rollout running) the
  // views are re-read this often too: not every change is an audit event
  // (an agent's reports move a target from enrolled to running).
  const BUSY_POLL_MS = 2000;

  const $ = (sel, root = document) => root.querySelector(sel);

  // ------------------------------------------------------------ DOM helper

  // h('tr', {class: 'x', onclick: fn}, child, ...): children are nodes or
  // text (never parsed as HTML), null/false are skipped, arrays flattened.
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'class') el.className = v;
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k in el && typeof v !== 'string') el[k] = v;
      else el.setAttribute(k, v === true ? '' : v);
    }
    append(el, children);
    return el;
  }

  function append(el, children) {
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  function fill(el, ...children) {
    el.replaceChildren();
    return append(el, children);
  }

  // Re-renders container for a live refresh without losing what the user
  // has in front of them: the control that had the keyboard focus (found
  // again by its id or aria-label) gets it back, and error messages (the
  // elements with data-err) keep their text until the next action.
  function rerender(container, render) {
    const had = document.activeElement;
    let sel = null;
    if (had && had !== document.body && container.contains(had)) {
      if (had.id) sel = `#${CSS.escape(had.id)}`;
      else if (had.getAttribute('aria-label')) sel = `${had.tagName}[aria-label="${CSS.escape(had.getAttribute('aria-label'))}"]`;
    }
    const errors = new Map();
    for (const el of container.querySelectorAll('[data-err]')) if (el.textContent) errors.set(el.dataset.err, el.textContent);
    render();
    for (const el of container.querySelectorAll('[data-err]')) {
      if (errors.has(el.dataset.err)) el.textContent = errors.get(el.dataset.err);
    }
    if (sel && !container.contains(had)) {
      const again = container.querySelector(sel);
      if (again) again.focus({ preventScroll: true });
    }
  }

  // ------------------------------------------------------------ API

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  let token = sessionStorage.getItem(TOKEN_KEY) || '';

  function errorFrom(status, text) {
    try {
      const body = JSON.parse(text);
      if (body && body.error) return new ApiError(status, body.error.code, body.error.message);
    } catch (e) { /* not JSON: said below */ }
    if (status === 0) return new ApiError(0, 'network', 'The server cannot be reached.');
    return new ApiError(status, 'http_' + status, `The server answered ${status}.`);
  }

  async function api(method, path, body) {
    const init = { method, headers: { Authorization: 'Bearer ' + token }, cache: 'no-store' };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, 'network', 'The server cannot be reached.');
    }
    const text = await res.text();
    if (!res.ok) {
      const err = errorFrom(res.status, text);
      if (res.status === 401) signedOut(err.message);
      throw err;
    }
    return text ? JSON.parse(text) : null;
  }

  // Every page of a list (the API pages with ?after=), up to a bound.
  async function apiAll(path, maxPages = 50) {
    const items = [];
    let after = null;
    for (let i = 0; i < maxPages; i++) {
      const sep = path.includes('?') ? '&' : '?';
      const page = await api('GET', `${path}${sep}limit=1000${after ? '&after=' + encodeURIComponent(after) : ''}`);
      items.push(...page.items);
      if (!page.next) break;
      after = page.next;
    }
    return items;
  }

  const enc = encodeURIComponent;

  // Shows err (an ApiError or any Error) in el, in plain words.
  function showError(el, err) {
    if (!el) return;
    if (!err) { el.textContent = ''; return; }
    let text = err.message || String(err);
    if (err instanceof ApiError && err.status === 403) text = 'Not allowed: ' + text;
    el.textContent = text;
  }

  // Runs an action from a button: a second press meanwhile is ignored, a
  // failure is shown in errEl; returns the action's value or undefined when
  // it failed.  The button is marked aria-disabled, not disabled: a
  // disabled button drops the keyboard focus.
  const inFlight = new WeakSet();
  async function act(button, errEl, fn) {
    if (button && inFlight.has(button)) return undefined;
    showError(errEl, null);
    if (button) {
      inFlight.add(button);
      button.setAttribute('aria-disabled', 'true');
    }
    try {
      return await fn();
    } catch (e) {
      showError(errEl, e);
      return undefined;
    } finally {
      if (button) {
        inFlight.delete(button);
        button.removeAttribute('aria-disabled');
      }
    }
  }

  // ------------------------------------------------------------ formatting

  function ago(iso) {
    if (!iso) return 'never';
    const s = Math.round((Date.now() - Date.parse(iso)) / 1000);
    if (s < 5) return 'just now';
    if (s < 60) return `${s} s ago`;
    if (s < 3600) return `${Math.round(s / 60)} min ago`;
    if (s < 86400) return `${Math.round(s / 3600)} h ago`;
    return `${Math.round(s / 86400)} d ago`;
  }

  // "2026-11-23 12:14:15", local time: short, sortable, unambiguous.
  function when(iso) {
    if (!iso) return '';
    const d = new Date(iso);
    const p = (n) => String(n).padStart(2, '0');
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  }

  // {"a": 1, "b": "x"} → "a 1 · b x": an event's detail or a config layer, readable.
  function pairs(obj) {
    return Object.entries(obj).map(([k, v]) => `${k} ${typeof v === 'object' && v !== null ? JSON.stringify(v) : v}`).join(' · ');
  }

  // A config ({bundle: {key: value}}) as one line per bundle.
  function configList(cfg) {
    return h('ul', { class: 'plain' }, Object.entries(cfg).map(([bundle, keys]) =>
      h('li', null, h('code', null, bundle), ': ',
        Object.entries(keys).map(([k, v], i) => [i ? ', ' : '', h('code', null, k), ' = ', JSON.stringify(v)]))));
  }

  function bytes(n) {
    if (n < 1024) return `${n} B`;
    if (n < 1 << 20) return `${(n / 1024).toFixed(1)} KiB`;
    if (n < 1 << 30) return `${(n / (1 << 20)).toFixed(1)} MiB`;
    return `${(n / (1 << 30)).toFixed(2)} GiB`;
  }

  // "educa@1.1.0+1a2462c38d75" → "educa@1.1.0"
  const releaseVersion = (rel) => (rel ? rel.replace(/\+.*$/, '') : null);

  function badge(text, kind) {
    return h('span', { class: `badge ${kind || text}` }, text);
  }

  // ------------------------------------------------------------ state

  const state = {
    view: null,
    clusters: [],
    targets: [],
    distributions: [],
    providers: [],
    rollouts: [],
    events: [],
    lastEventId: null,
    stream: null,        // AbortController of the event stream
    busy: {},            // view → something transient is on it: poll
  };

  // ------------------------------------------------------------ sign in

  function signedOut(message) {
    token = '';
    sessionStorage.removeItem(TOKEN_KEY);
    if (state.stream) state.stream.abort();
    state.stream = null;
    showLogin(message ? `The server refused the token: ${message}` : '');
  }

  function showLogin(text) {
    $('#nav').hidden = true;
    $('#session').hidden = true;
    for (const v of VIEWS) $(`#view-${v}`).hidden = true;
    $('#login').hidden = false;
    $('#login-error').textContent = text || '';
    $('#token').focus();
  }

  async function signIn(candidate) {
    token = candidate;
    // Any read shows whether the token works (and what the server says if not).
    await api('GET', '/api/v1/providers');
    sessionStorage.setItem(TOKEN_KEY, token);
    $('#login').hidden = true;
    $('#nav').hidden = false;
    $('#session').hidden = false;
    startStream();
    route();
  }

  $('#login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const value = $('#token').value.trim();
    const errEl = $('#login-error');
    if (!value) { errEl.textContent = 'Paste a token first.'; return; }
    const button = ev.submitter || $('#login-form button');
    await act(button, errEl, async () => {
      try {
        await signIn(value);
        $('#token').value = '';
      } catch (e) {
        token = '';
        if (e instanceof ApiError && e.status === 401) {
          // signedOut already showed the form; keep the server's words.
          throw new Error(`The server refused the token: ${e.message}`);
        }
        throw e;
      }
    });
  });

  $('#logout').addEventListener('click', () => signedOut(null));

  // ------------------------------------------------------------ navigation

  function route() {
    if (!token) return;
    // "#/targets": a fragment that names no element, so that the browser
    // neither scrolls nor moves the focus away from the button pressed.
    let view = location.hash.replace(/^#\/?/, '');
    if (!VIEWS.includes(view)) view = 'targets';
    state.view = view;
    for (const v of VIEWS) $(`#view-${v}`).hidden = v !== view;
    for (const b of document.querySelectorAll('#nav button')) {
      if (b.dataset.view === view) b.setAttribute('aria-current', 'page');
      else b.removeAttribute('aria-current');
    }
    refresh(view);
  }

  for (const b of document.querySelectorAll('#nav button')) {
    b.addEventListener('click', () => {
      if (location.hash === '#/' + b.dataset.view) route();
      else location.hash = '/' + b.dataset.view;
    });
  }
  window.addEventListener('hashchange', route);

  // Each view says, under its title, when it could not be read.
  for (const v of VIEWS) {
    const head = $(`#view-${v} .view-head`);
    head.after(h('p', { class: 'error load-error', role: 'alert', id: `${v}-load-error` }));
  }

  // Re-reads what a view shows; concurrent calls for the same view are
  // folded into one (events arrive in bursts).
  const loading = {};
  function refresh(view) {
    if (!token) return Promise.resolve();
    if (loading[view]) { loading[view].again = true; return loading[view].p; }
    const entry = { again: false };
    entry.p = (async () => {
      do {
        entry.again = false;
        const errEl = $(`#${view}-load-error`);
        try {
          await loaders[view]();
          errEl.textContent = '';
        } catch (e) {
          if (!(e instanceof ApiError && e.status === 401)) {
            errEl.textContent = `This view could not be brought up to date: ${e.message}`;
          }
        }
      } while (entry.again);
      delete loading[view];
    })();
    loading[view] = entry;
    return entry.p;
  }

  let refreshTimer = null;
  const pendingViews = new Set();
  function refreshSoon(...views) {
    for (const v of views) pendingViews.add(v);
    if (refreshTimer) return;
    refreshTimer = setTimeout(() => {
      refreshTimer = null;
      const views2 = [...pendingViews];
      pendingViews.clear();
      for (const v of views2) if (v === state.view) refresh(v);
    }, 200);
  }

  // Otherwise a slower look now and then: health turns stale without an event.
  const IDLE_POLL_MS = 15000;
  let lastPoll = 0;
  setInterval(() => {
    if (!token || document.visibilityState !== 'visible' || state.view === 'events') return;
    const every = state.busy[state.view] ? BUSY_POLL_MS : IDLE_POLL_MS;
    if (Date.now() - lastPoll < every) return;
    lastPoll = Date.now();
    refresh(state.view);
  }, BUSY_POLL_MS);
  // Relative times ("12 s ago") age even when nothing changes.
  setInterval(() => {
    for (const el of document.querySelectorAll('[data-ago]')) el.textContent = ago(el.dataset.ago);
  }, 5000);

  // ------------------------------------------------------------ confirm

  function confirmDialog(title, text, okLabel) {
    const dlg = $('#confirm');
    $('#confirm-title').textContent = title;
    $('#confirm-text').textContent = text;
    $('#confirm-ok').textContent = okLabel;
    return new Promise((resolve) => {
      dlg.addEventListener('close', () => resolve(dlg.returnValue === 'ok'), { once: true });
      dlg.returnValue = 'cancel';
      dlg.showModal();
      $('#confirm-cancel').focus();
    });
  }

  // ------------------------------------------------------------ shared reads

  async function loadClusters() {
    state.clusters = await apiAll('/api/v1/clusters');
    return state.clusters;
  }

  async function loadDistributions() {
    state.distributions = await apiAll('/api/v1/distributions');
    return state.distributions;
  }

  async function loadProviders() {
    const res = await api('GET', '/api/v1/providers');
    state.providers = res.items;
    return state.providers;
  }

  // Fills a <select> with options [{value, label}], keeping the choice.
  function setOptions(select, options, keep = true) {
    const previous = select.value;
    fill(select, options.map((o) => h('option', { value: o.value }, o.label)));
    if (keep && options.some((o) => o.value === previous)) select.value = previous;
  }

  const distKey = (d) => `${d.name}@${d.version}`;

  // ------------------------------------------------------------ targets view

  let installUrl = null; // the server as nodes reach it, from /install.sh
  async function serverUrlForNodes() {
    if (installUrl) return installUrl;
    try {
      const res = await fetch('/install.sh', { cache: 'no-store' });
      const m = /^server='([^']*)'$/m.exec(await res.text());
      if (m) installUrl = m[1];
    } catch (e) { /* fall back below */ }
    return installUrl || location.origin;
  }

  async function loadTargets() {
    const [clusters, targets] = await Promise.all([
      loadClusters(),
      apiAll('/api/v1/targets'),
      state.distributions.length ? null : loadDistributions(),
      state.providers.length ? null : loadProviders(),
    ]);
    state.targets = targets;
    renderTargets();
    setOptions($('#cluster-dist'), [{ value: '', label: '(none yet)' },
      ...state.distributions.map((d) => ({ value: distKey(d), label: distKey(d) }))]);
    setOptions($('#cluster-provider'), state.providers.map((p) => ({
      value: p.name, label: p.available ? p.name : `${p.name} (unavailable)` })));
    void clusters;
  }

  const TRANSIENT = new Set(['provisioning', 'enrolled', 'draining']);

  function renderTargets() {
    const showRemoved = $('#show-removed').checked;
    const box = $('#clusters');
    const open = new Set([...box.querySelectorAll('.enroll-box:not([hidden])')].map((e) => e.dataset.cluster));
    const enrollShown = {};
    for (const pre of box.querySelectorAll('.enroll-box:not([hidden])')) enrollShown[pre.dataset.cluster] = pre;
    let busy = false;
    const cards = state.clusters.map((c) => {
      const targets = state.targets.filter((t) => t.cluster === c.name && (showRemoved || t.state !== 'removed'));
      for (const t of targets) if (TRANSIENT.has(t.state) || (t.phase && t.phase !== 'idle')) busy = true;
      const card = clusterCard(c, targets);
      // An enrollment command on screen stays there across refreshes.
      if (open.has(c.name)) card.querySelector('.enroll-box').replaceWith(enrollShown[c.name]);
      return card;
    });
    rerender(box, () => fill(box, cards.length ? cards
      : h('p', { class: 'empty' }, 'No clusters yet. Create one below, then add targets to it.')));
    state.busy.targets = busy;
  }

  function clusterCard(c, targets) {
    const errEl = h('p', { class: 'error', role: 'alert', dataset: { err: `cluster:${c.name}` } });
    const rev = c.revision || {};
    // How many targets run each version, and at which generation.
    const counts = new Map();
    for (const t of targets) {
      if (t.state === 'removed') continue;
      const key = `${t.actual || 'nothing yet'}|${t.desired ? t.desired.generation : 0}`;
      counts.set(key, (counts.get(key) || 0) + 1);
    }
    const countRows = [...counts.entries()].sort().map(([key, n]) => {
      const [rel, gen] = key.split('|');
      return h('li', null, h('strong', null, String(n)), ` × ${releaseVersion(rel) || rel}`,
        rel.includes('+') ? h('span', { class: 'muted', title: rel }, ` +${rel.split('+')[1]}`) : null,
        h('span', { class: 'muted' }, ` · generation ${gen}`));
    });
    const byState = c.targets && c.targets.by_state ? Object.entries(c.targets.by_state).filter(([, n]) => n > 0) : [];

    const addButton = h('button', {
      type: 'button', class: 'primary', 'aria-label': `Add a target to cluster ${c.name}`,
      onclick: (ev) => act(ev.currentTarget, errEl, async () => {
        await api('POST', '/api/v1/targets', { cluster: c.name });
        refresh('targets');
      }),
    }, '+ target');

    const enrollBox = h('div', { class: 'enroll-box', hidden: true, dataset: { cluster: c.name } });
    const machineButton = h('button', {
      type: 'button', 'aria-label': `Add an existing machine to cluster ${c.name}`,
      onclick: (ev) => act(ev.currentTarget, errEl, async () => {
        const res = await api('POST', '/api/v1/enrollment-tokens', { cluster: c.name, uses: 1, ttl_s: 86400 });
        const url = await serverUrlForNodes();
        const command = `curl -fsSL ${url}/install.sh | sh -s -- --token ${res.token}`;
        const box = document.querySelector(`.enroll-box[data-cluster="${CSS.escape(c.name)}"]`);
        const code = h('code', { class: 'command' }, command);
        const copyErr = h('span', { class: 'help', role: 'status' });
        fill(box,
          h('p', null, 'Run this on the machine (as root, Debian or Ubuntu). It installs the agent, which enrolls into ',
            h('strong', null, c.name), ` with a one-use token valid until ${when(res.expires)}:`),
          h('pre', { tabindex: '0', 'aria-label': 'Install command' }, code),
          h('div', { class: 'row' },
            h('button', { type: 'button', onclick: () => copyText(command, code, copyErr) }, 'Copy command'),
            h('button', { type: 'button', class: 'quiet', onclick: () => { box.hidden = true; } }, 'Done'),
            copyErr));
        box.hidden = false;
      }),
    }, 'Add an existing machine');

    return h('article', { class: 'card cluster', 'aria-labelledby': `cluster-${c.name}` },
      h('div', { class: 'card-head' },
        h('h3', { id: `cluster-${c.name}` }, c.name),
        h('span', { class: 'muted' }, rev.distribution ? `runs ${rev.distribution}` : 'no distribution yet',
          ` · revision ${rev.number || 0} · provider ${c.provider || 'local'}`,
          c.lb && c.lb.driver !== 'none' ? ` · load balancer ${c.lb.driver}${c.lb_status ? ' (' + c.lb_status.state + ')' : ''}` : ''),
        h('span', { class: 'spacer' }),
        addButton, machineButton),
      c.description ? h('p', null, c.description) : null,
      h('div', { class: 'counts' },
        h('ul', { class: 'inline-list', 'aria-label': `Targets of ${c.name} per version and generation` },
          countRows.length ? countRows : h('li', { class: 'muted' }, 'no targets')),
        byState.length ? h('ul', { class: 'inline-list', 'aria-label': `Targets of ${c.name} per state` },
          byState.map(([s, n]) => h('li', null, badge(s), ` ${n}`))) : null),
      errEl,
      enrollBox,
      targets.length ? targetTable(c, targets, errEl) : null);
  }

  function copyText(text, codeEl, statusEl) {
    const done = () => { statusEl.textContent = 'Copied.'; };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, () => selectText(codeEl, statusEl));
    } else {
      selectText(codeEl, statusEl);
    }
  }

  function selectText(el, statusEl) {
    const range = document.createRange();
    range.selectNodeContents(el);
    const sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
    statusEl.textContent = 'Selected: press Ctrl+C to copy.';
  }

  function targetTable(c, targets, errEl) {
    return h('div', { class: 'table-wrap' }, h('table', { class: 'targets' },
      h('caption', { class: 'sr-only' }, `Targets of cluster ${c.name}`),
      h('thead', null, h('tr', null,
        ['Target', 'State', 'Health', 'Version', 'Generation', 'Address', 'Last seen', 'Last result', '']
          .map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', null, targets.map((t) => targetRow(t, errEl)))));
  }

  function targetRow(t, errEl) {
    const gone = t.state === 'removed';
    const phase = t.phase && t.phase !== 'idle' ? h('span', { class: 'muted' }, ` (${t.phase})`) : null;
    const result = t.last_result
      ? h('span', { class: t.last_result.result === 'failed' ? 'bad' : 'muted', title: t.last_result.message || '' },
        t.last_result.result, t.last_result.message ? `: ${t.last_result.message}` : '')
      : h('span', { class: 'muted' }, '—');
    const address = t.address ? `${t.address}${t.serves_port ? ':' + t.serves_port : ''}` : '—';
    return h('tr', { dataset: { target: t.id, state: t.state }, class: gone ? 'removed' : null },
      h('th', { scope: 'row' }, h('code', null, t.id),
        t.provider && t.provider !== 'local' ? h('span', { class: 'muted' }, ` ${t.provider}`) : null),
      h('td', { class: 'state' }, badge(t.state), phase),
      h('td', { class: 'health' }, badge(t.health || 'unknown')),
      h('td', { class: 'version', title: t.actual || '' }, releaseVersion(t.actual) || h('span', { class: 'muted' }, '—')),
      h('td', null, t.desired ? String(t.desired.generation) : '0'),
      h('td', { title: t.instance || '' }, address),
      h('td', null, h('span', { dataset: { ago: t.last_seen || '' }, title: t.last_seen ? when(t.last_seen) : '' }, ago(t.last_seen))),
      h('td', { class: 'result' }, result),
      h('td', { class: 'actions' }, gone ? null : [
        h('button', {
          type: 'button', class: 'copy', 'aria-label': `Copy target ${t.id}`, title: 'A new target like this one, same cluster',
          onclick: (ev) => act(ev.currentTarget, errEl, async () => {
            await api('POST', `/api/v1/targets/${enc(t.id)}/copy`);
            refresh('targets');
          }),
        }, 'copy'),
        h('button', {
          type: 'button', class: 'remove danger', 'aria-label': `Remove target ${t.id}`, title: 'Drain and remove this node',
          disabled: t.state === 'draining',
          onclick: async (ev) => {
            const button = ev.currentTarget;
            const ok = await confirmDialog(`Remove ${t.id}?`,
              `The node is taken out of the load balancer, its bundles stop and it is terminated. ` +
              `The cluster ${t.cluster} keeps its other targets.`, 'Remove');
            if (!ok) { button.focus(); return; }
            await act(button, errEl, async () => {
              await api('DELETE', `/api/v1/targets/${enc(t.id)}`);
              refresh('targets');
            });
          },
        }, '−'),
      ]));
  }

  $('#show-removed').addEventListener('change', renderTargets);

  $('#cluster-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const f = ev.target;
    const body = { name: f.name.value.trim() };
    if (f.distribution.value) body.distribution = f.distribution.value;
    if (f.provider.value) body.provider = f.provider.value;
    await act(ev.submitter, $('#cluster-error'), async () => {
      if (!body.name) throw new Error('Give the cluster a name.');
      await api('POST', '/api/v1/clusters', body);
      f.reset();
      refresh('targets');
    });
  });

  // ------------------------------------------------------------ distributions view

  async function loadDistributionsView() {
    await loadDistributions();
    renderDistributions();
  }

  function renderDistributions() {
    const box = $('#distributions');
    const byName = new Map();
    for (const d of state.distributions) {
      if (!byName.has(d.name)) byName.set(d.name, []);
      byName.get(d.name).push(d);
    }
    if (!byName.size) {
      fill(box, h('p', { class: 'empty' }, 'No distributions yet: upload one above.'));
      return;
    }
    fill(box, [...byName.entries()].map(([name, versions]) =>
      h('article', { class: 'card', 'aria-labelledby': `dist-${name}` },
        h('h3', { id: `dist-${name}` }, name),
        h('div', { class: 'table-wrap' }, h('table', { class: 'dists' },
          h('caption', { class: 'sr-only' }, `Versions of ${name}`),
          h('thead', null, h('tr', null, ['Version', 'Bundles', 'Config', 'Uploaded'].map((t) => h('th', { scope: 'col' }, t)))),
          h('tbody', null, versions.map((d) => h('tr', { dataset: { dist: distKey(d) } },
            h('th', { scope: 'row' }, d.version),
            h('td', null, h('ul', { class: 'plain' }, (d.bundles || []).map((b) =>
              h('li', null, h('code', null, `${b.name}@${b.version}`), h('span', { class: 'muted' }, ` ${bytes(b.size)}`))))),
            h('td', null, d.config && Object.keys(d.config).length
              ? configList(d.config) : h('span', { class: 'muted' }, '—')),
            h('td', null, when(d.created), h('span', { class: 'muted' }, d.created_by ? ` by ${d.created_by}` : ''))))))))));
  }

  $('#upload-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const file = $('#upload-file').files[0];
    const errEl = $('#upload-error');
    const status = $('#upload-status');
    const bar = $('#upload-progress');
    const button = $('#upload-button');
    if (button.getAttribute('aria-disabled') === 'true') return; // one upload at a time
    showError(errEl, null);
    if (!file) { errEl.textContent = 'Choose a distribution archive (.zip) first.'; return; }
    // XMLHttpRequest, not fetch: only it reports upload progress.
    const xhr = new XMLHttpRequest();
    xhr.open('POST', '/api/v1/distributions');
    xhr.setRequestHeader('Authorization', 'Bearer ' + token);
    xhr.setRequestHeader('Content-Type', 'application/zip');
    $('#upload-progress-row').hidden = false;
    bar.value = 0;
    bar.max = 100;
    status.textContent = `Uploading ${file.name}…`;
    button.setAttribute('aria-disabled', 'true');
    xhr.upload.addEventListener('progress', (e) => {
      if (!e.lengthComputable) return;
      bar.value = Math.round((e.loaded / e.total) * 100);
      status.textContent = `${bar.value} % (${bytes(e.loaded)} of ${bytes(e.total)})`;
    });
    xhr.upload.addEventListener('load', () => {
      bar.value = 100;
      status.textContent = `Sent ${bytes(file.size)}; the server is checking the archive…`;
    });
    xhr.addEventListener('loadend', () => {
      button.removeAttribute('aria-disabled');
      if (xhr.status >= 200 && xhr.status < 300) {
        let d = {};
        try { d = JSON.parse(xhr.responseText); } catch (e) { /* shown plainly */ }
        status.textContent = `Uploaded ${d.name}@${d.version}` + (xhr.status === 200 ? ' (it was there already).' : '.');
        $('#upload-form').reset();
        refresh('distributions');
        return;
      }
      bar.value = 0;
      status.textContent = 'Upload failed.';
      const err = errorFrom(xhr.status, xhr.responseText);
      if (xhr.status === 401) signedOut(err.message);
      errEl.textContent = `${file.name}: ${err.message}`;
    });
    xhr.send(file);
  });

  // ------------------------------------------------------------ rollouts view

  const ACTIVE = new Set(['pending_approval', 'running', 'paused']);

  async function loadRollouts() {
    const [rollouts] = await Promise.all([
      apiAll('/api/v1/rollouts', 2),
      loadClusters(),
      loadDistributions(),
    ]);
    state.rollouts = rollouts;
    fillRolloutForm();
    renderRollouts();
  }

  function fillRolloutForm() {
    setOptions($('#ro-cluster'), state.clusters.map((c) => ({ value: c.name, label: c.name })));
    updateRolloutDists();
  }

  function updateRolloutDists() {
    const c = state.clusters.find((x) => x.name === $('#ro-cluster').value);
    const current = c && c.revision ? c.revision.distribution : null;
    $('#ro-cluster-help').textContent = c
      ? `runs ${current || 'nothing yet'}; ${c.targets ? c.targets.total : 0} target(s)` : 'create a cluster first (Targets)';
    const options = state.distributions.map((d) => ({
      value: distKey(d), label: distKey(d) + (distKey(d) === current ? ' (current)' : '') }));
    setOptions($('#ro-dist'), options);
    // Default to the newest version that is not the current one.
    const sel = $('#ro-dist');
    if (!sel.dataset.touched && options.length) {
      const others = options.filter((o) => o.value !== current);
      sel.value = (others.length ? others[others.length - 1] : options[options.length - 1]).value;
    }
  }

  $('#ro-cluster').addEventListener('change', () => { $('#ro-dist').dataset.touched = ''; delete $('#ro-dist').dataset.touched; updateRolloutDists(); });
  $('#ro-dist').addEventListener('change', () => { $('#ro-dist').dataset.touched = '1'; });

  function parsePauseAfter(text) {
    const parts = text.split(/[\s,]+/).filter(Boolean);
    return parts.map((p) => {
      if (!/^\d+$/.test(p)) throw new Error(`Pause after: "${p}" is not a batch number (0, 1, 2…).`);
      return Number(p);
    });
  }

  $('#rollout-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const f = ev.target;
    const errEl = $('#rollout-error');
    await act(ev.submitter, errEl, async () => {
      if (!f.cluster.value) throw new Error('Choose a cluster (create one in Targets first).');
      const strategy = {
        batch_size: Number(f.batch_size.value || 1),
        canary_percent: Number(f.canary_percent.value || 0),
        auto_rollback: f.auto_rollback.checked,
      };
      if (f.pause_after.value.trim()) strategy.pause_after = parsePauseAfter(f.pause_after.value);
      const body = { cluster: f.cluster.value, strategy };
      if (f.distribution.value) body.distribution = f.distribution.value;
      await api('POST', '/api/v1/rollouts', body);
      delete $('#ro-dist').dataset.touched;
      refresh('rollouts');
    });
  });

  function renderRollouts() {
    const box = $('#rollouts');
    const openIds = new Set([...box.querySelectorAll('details[open]')].map((d) => d.dataset.rollout));
    const active = state.rollouts.filter((r) => ACTIVE.has(r.state));
    const done = state.rollouts.filter((r) => !ACTIVE.has(r.state));
    state.busy.rollouts = active.length > 0;
    // Undo is offered on the newest succeeded rollout of a cluster with no active one.
    const undoable = new Set();
    const seen = new Set();
    for (const r of state.rollouts) {
      if (seen.has(r.cluster)) continue;
      seen.add(r.cluster);
      if (r.state === 'succeeded') undoable.add(r.id);
    }
    for (const r of active) for (const u of [...undoable]) if (state.rollouts.find((x) => x.id === u).cluster === r.cluster) undoable.delete(u);
    rerender(box, () => fill(box,
      h('h3', null, 'Active'),
      active.length ? active.map((r) => rolloutCard(r, true, false)) : h('p', { class: 'empty' }, 'No rollout is active.'),
      h('h3', null, 'Finished'),
      done.length ? done.slice(0, 20).map((r) => {
        const d = h('details', { class: 'card', dataset: { rollout: r.id }, open: openIds.has(r.id) },
          h('summary', null, rolloutTitle(r)), rolloutBody(r, false, undoable.has(r.id)));
        return d;
      }) : h('p', { class: 'empty' }, 'None yet.')));
  }

  function rolloutTitle(r) {
    return h('span', { class: 'rollout-title' }, badge(r.state), ' ', h('strong', null, r.cluster), ': ',
      r.from || 'nothing', ' → ', r.to || '(config only)',
      h('span', { class: 'muted' }, ` · ${r.id} · ${when(r.created)}`));
  }

  function rolloutCard(r) {
    return h('article', { class: 'card rollout', dataset: { rollout: r.id, state: r.state } },
      h('div', { class: 'card-head' }, h('h4', null, rolloutTitle(r))),
      rolloutBody(r, true, false));
  }

  function rolloutBody(r, live, undo) {
    const errEl = h('p', { class: 'error', role: 'alert', dataset: { err: `rollout:${r.id}` } });
    const all = r.batches.flatMap((b) => b.targets);
    const finished = all.filter((t) => !['pending', 'switching'].includes(t.state)).length;
    const verb = (name, label, cls) => h('button', {
      type: 'button', class: cls || '', 'aria-label': `${label} rollout ${r.id}`,
      onclick: async (ev) => {
        const button = ev.currentTarget;
        if (name === 'abort' && !(await confirmDialog(`Abort ${r.id}?`,
          'Every target this rollout switched goes back to its previous release; the others stop staging.', 'Abort'))) return;
        await act(button, errEl, async () => {
          await api('POST', `/api/v1/rollouts/${enc(r.id)}/${name}`);
          refresh('rollouts');
        });
      },
    }, label);
    const buttons = [];
    if (r.state === 'pending_approval') buttons.push(verb('approve', 'Approve', 'primary'));
    if (r.state === 'paused') buttons.push(verb('resume', 'Resume', 'primary'));
    if (r.state === 'running') buttons.push(verb('pause', 'Pause'));
    if (ACTIVE.has(r.state)) buttons.push(verb('abort', 'Abort', 'danger'));
    if (undo) {
      buttons.push(h('button', {
        type: 'button', 'aria-label': `Undo rollout ${r.id}`,
        onclick: (ev) => act(ev.currentTarget, errEl, async () => {
          await api('POST', `/api/v1/clusters/${enc(r.cluster)}/undo`, {});
          refresh('rollouts');
        }),
      }, `Undo: back to ${r.from}`));
    }
    const s = r.strategy || {};
    const waiting = r.state === 'paused' || r.state === 'pending_approval';
    const nextBatch = r.batches.find((b) => b.state === 'pending');
    return h('div', { class: 'rollout-body' },
      h('p', { class: 'muted' },
        `batch size ${s.batch_size ?? '—'}`, s.canary_percent ? ` · canary ${s.canary_percent} %` : '',
        s.pause_after && s.pause_after.length ? ` · pauses after batch ${s.pause_after.join(', ')}` : '',
        ` · failure threshold ${s.failure_threshold ?? 1}`, s.auto_rollback === false ? ' · no automatic rollback' : '',
        ` · staged on ${r.prepared}/${all.length}`,
        r.approvals && r.approvals.length ? ` · approved by ${[...new Set(r.approvals.map((a) => a.by))].join(', ')}` : ''),
      live && waiting && nextBatch ? h('p', { class: 'waiting' },
        r.state === 'pending_approval' ? 'Waiting for approval to start batch ' : 'Paused: approval starts batch ',
        String(nextBatch.index), '.') : null,
      h('div', { class: 'progress-row' },
        h('progress', { max: String(Math.max(all.length, 1)), value: String(finished), 'aria-label': `Progress of ${r.id}` }),
        h('span', { class: 'progress-text' }, `${finished} of ${all.length} target(s) done`)),
      h('ol', { class: 'batches', start: '0' }, r.batches.map((b) =>
        h('li', { class: 'batch', dataset: { batch: String(b.index), state: b.state } },
          h('span', { class: 'batch-label' }, `Batch ${b.index}`, b.index === 0 && s.canary_percent ? ' (canary)' : '', ' '), badge(b.state),
          h('ul', { class: 'batch-targets' }, b.targets.map((t) =>
            h('li', { dataset: { target: t.id, state: t.state } }, h('code', null, t.id), ' ', badge(t.state),
              t.prepared && t.state === 'pending' ? h('span', { class: 'muted' }, ' staged') : null,
              t.message ? h('span', { class: 'bad' }, ` ${t.message}`) : null))))),
      ),
      buttons.length ? h('div', { class: 'row' }, buttons) : null,
      errEl);
  }

  // ------------------------------------------------------------ events view

  let eventsLoaded = false;

  async function loadEvents() {
    if (!eventsLoaded) {
      // The log is oldest first: read it to its end and keep the newest.
      let after = null;
      let kept = [];
      for (let i = 0; i < 200; i++) {
        const page = await api('GET', `/api/v1/events?limit=1000${after ? '&after=' + enc(after) : ''}`);
        kept = kept.concat(page.items).slice(-EVENTS_KEPT);
        if (!page.next) break;
        after = page.next;
      }
      // Events the stream brought meanwhile are newer than these or equal.
      const have = new Set(state.events.map((e) => e.id));
      state.events = kept.filter((e) => !have.has(e.id)).concat(state.events).slice(-EVENTS_KEPT);
      state.events.sort((a, b) => a.id - b.id);
      // A stream that reconnects before its first event resumes from here.
      const last = state.events.length ? state.events[state.events.length - 1].id : null;
      if (last !== null && (state.lastEventId === null || Number(state.lastEventId) < last))
        state.lastEventId = String(last);
      eventsLoaded = true;
    }
    renderEvents();
  }

  function eventRow(e, fresh) {
    const obj = e.object_type ? `${e.object_type} ${e.object_id || ''}` : '';
    const ok = e.outcome === 'ok';
    let detail = '';
    if (e.detail) detail = e.detail.message ? e.detail.message : pairs(e.detail);
    return h('tr', { dataset: { event: String(e.id), action: e.action }, class: fresh ? 'fresh' : null },
      h('td', null, String(e.id)),
      h('td', { title: e.at, class: 'nowrap' }, when(e.at)),
      h('td', { class: 'nowrap' }, e.actor),
      h('td', { class: 'nowrap' }, h('code', null, e.action)),
      h('td', { class: 'nowrap' }, obj),
      h('td', null, ok ? badge('ok') : badge(e.outcome, 'failed')),
      h('td', { class: 'detail' }, detail));
  }

  function eventMatches(e, q) {
    if (!q) return true;
    return [e.action, e.actor, e.object_type, e.object_id, e.outcome, e.detail ? JSON.stringify(e.detail) : '']
      .some((s) => s && String(s).toLowerCase().includes(q));
  }

  function renderEvents() {
    const q = $('#events-filter').value.trim().toLowerCase();
    const rows = state.events.filter((e) => eventMatches(e, q)).slice().reverse();
    fill($('#events'), rows.length ? rows.map((e) => eventRow(e, false))
      : h('tr', null, h('td', { colspan: '7', class: 'empty' }, 'No events.')));
  }

  $('#events-filter').addEventListener('input', renderEvents);

  // ------------------------------------------------------------ config view

  async function loadConfig() {
    await loadClusters();
    const sel = $('#config-cluster');
    setOptions(sel, state.clusters.map((c) => ({ value: c.name, label: c.name })));
    await renderConfigForm();
  }

  $('#config-cluster').addEventListener('change', () => renderConfigForm());

  const manifests = new Map(); // "name@version" → manifest (bundles are immutable)
  async function manifestOf(b) {
    const key = `${b.name}@${b.version}`;
    if (!manifests.has(key)) {
      const res = await api('GET', `/api/v1/bundles/${enc(b.name)}/${enc(b.version)}`);
      manifests.set(key, res.manifest || {});
    }
    return manifests.get(key);
  }

  let configFormFor = null; // what the form shows, so a refresh keeps edits
  async function renderConfigForm(force) {
    const form = $('#config-form');
    const c = state.clusters.find((x) => x.name === $('#config-cluster').value);
    if (!c) {
      configFormFor = null;
      fill(form, h('p', { class: 'empty' }, 'No clusters yet.'));
      return;
    }
    const rev = c.revision || {};
    const key = `${c.name}|${rev.number}`;
    if (!force && configFormFor === key) return;
    configFormFor = key;
    if (!rev.distribution) {
      fill(form, h('p', { class: 'empty' }, `${c.name} runs no distribution yet: its config follows the bundles of the distribution a rollout gives it.`));
      return;
    }
    const [dname, dver] = rev.distribution.split('@');
    const dist = await api('GET', `/api/v1/distributions/${enc(dname)}/${enc(dver)}`);
    const bundles = await Promise.all((dist.bundles || []).map(async (b) => ({ ...b, manifest: await manifestOf(b) })));
    const clusterCfg = rev.config || {};
    const distCfg = dist.config || {};
    const errEl = h('p', { id: 'config-error', class: 'error', role: 'alert' });
    const fieldsets = bundles.map((b) => {
      const model = (b.manifest && b.manifest.config) || {};
      const keys = Object.keys(model).sort();
      return h('fieldset', { class: 'card', dataset: { bundle: b.name } },
        h('legend', null, h('code', null, `${b.name}@${b.version}`)),
        keys.length ? h('div', { class: 'grid-form' }, keys.map((k) => configField(b.name, k, model[k],
          (clusterCfg[b.name] || {})[k], (distCfg[b.name] || {})[k])))
          : h('p', { class: 'muted' }, 'This bundle has no configuration.'));
    });
    fill(form,
      h('p', null, `${c.name} runs `, h('strong', null, rev.distribution), ` (revision ${rev.number}).`),
      fieldsets,
      h('div', { class: 'card grid-form' },
        h('label', { for: 'config-batch' }, 'Batch size'),
        h('input', { id: 'config-batch', type: 'number', min: '1', value: '1' }),
        h('span', { class: 'help' }, 'targets switched per batch by the config rollout')),
      h('div', { class: 'row' },
        h('button', { type: 'submit', class: 'primary' }, 'Save as a config rollout'),
        h('button', { type: 'button', class: 'quiet', onclick: () => renderConfigForm(true) }, 'Discard changes'),
        h('span', { id: 'config-status', class: 'help', role: 'status' })),
      errEl);
  }

  function configField(bundle, key, spec, clusterValue, distValue) {
    const id = `cfg-${bundle}-${key}`.replace(/[^A-Za-z0-9_-]/g, '_');
    const type = spec.type || 'string';
    const inherited = distValue !== undefined ? distValue : spec.default;
    const from = distValue !== undefined ? 'the distribution' : 'the bundle default';
    const helpId = `${id}-help`;
    const data = { bundle, key, type };
    let input;
    if (type === 'bool') {
      input = h('select', { id, name: id, dataset: data, 'aria-describedby': helpId },
        h('option', { value: '' }, `inherit (${inherited === undefined ? 'unset' : String(inherited)})`),
        h('option', { value: 'true' }, 'true'), h('option', { value: 'false' }, 'false'));
      input.value = clusterValue === undefined ? '' : String(clusterValue);
    } else {
      input = h('input', {
        id, name: id, dataset: data, 'aria-describedby': helpId,
        type: type === 'int' || type === 'number' ? 'number' : 'text',
        step: type === 'int' ? '1' : type === 'number' ? 'any' : null,
        placeholder: inherited === undefined ? '' : String(inherited),
        value: clusterValue === undefined ? '' : String(clusterValue),
      });
    }
    return [
      h('label', { for: id }, h('code', null, key), h('span', { class: 'muted' }, ` ${type}`)),
      input,
      h('span', { class: 'help', id: helpId }, spec.description || '',
        h('span', { class: 'muted' }, ` (empty: ${inherited === undefined ? 'unset' : JSON.stringify(inherited)} from ${from})`)),
    ];
  }

  // The cluster layer from the form: only the fields that are set.
  function configFromForm(form) {
    const cfg = {};
    for (const el of form.querySelectorAll('input[data-bundle], select[data-bundle]')) {
      const raw = el.value.trim();
      if (raw === '') continue;
      const { bundle, key, type } = el.dataset;
      let v = raw;
      if (type === 'int') {
        if (!/^-?\d+$/.test(raw)) throw new Error(`${bundle} ${key}: "${raw}" is not a whole number.`);
        v = Number(raw);
      } else if (type === 'number') {
        v = Number(raw);
        if (!Number.isFinite(v)) throw new Error(`${bundle} ${key}: "${raw}" is not a number.`);
      } else if (type === 'bool') {
        v = raw === 'true';
      }
      (cfg[bundle] = cfg[bundle] || {})[key] = v;
    }
    return cfg;
  }

  $('#config-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const form = ev.target;
    const cluster = $('#config-cluster').value;
    await act(ev.submitter, $('#config-error'), async () => {
      const config = configFromForm(form);
      const batch = Number($('#config-batch').value || 1);
      const r = await api('POST', '/api/v1/rollouts', { cluster, config, strategy: { batch_size: batch } });
      const status = $('#config-status');
      fill(status, `Rollout ${r.id} created: `, h('a', { href: '#/rollouts' }, 'approve it in Rollouts'), '.');
    });
  });

  // ------------------------------------------------------------ live events

  const loaders = {
    targets: loadTargets,
    distributions: loadDistributionsView,
    rollouts: loadRollouts,
    events: loadEvents,
    config: loadConfig,
  };

  // Which views an event may change.
  function viewsFor(action) {
    const kind = action.split('.')[0];
    switch (kind) {
      case 'target': case 'cluster': case 'lb': case 'enrollment_token': return ['targets', 'config', 'rollouts'];
      case 'rollout': return ['rollouts', 'targets', 'config'];
      case 'distribution': case 'bundle': return ['distributions', 'rollouts', 'targets'];
      default: return [];
    }
  }

  function onEvent(e) {
    // The distributions other views offer are read again when they change.
    if (/^(distribution|bundle)\./.test(e.action)) state.distributions = [];
    if (state.events.length && e.id <= state.events[state.events.length - 1].id) return;
    state.events.push(e);
    if (state.events.length > EVENTS_KEPT) state.events.shift();
    if (state.view === 'events') {
      const q = $('#events-filter').value.trim().toLowerCase();
      const tbody = $('#events');
      if (eventMatches(e, q)) {
        const empty = tbody.querySelector('td.empty');
        if (empty) empty.parentElement.remove();
        tbody.prepend(eventRow(e, true));
        while (tbody.rows.length > EVENTS_KEPT) tbody.deleteRow(-1);
      }
    }
    refreshSoon(...viewsFor(e.action));
  }

  function setLive(text, cls) {
    const el = $('#live');
    el.textContent = text;
    el.className = `live ${cls}`;
  }

  // Parses one server-sent event block ("id: N\nevent: X\ndata: {...}").
  function parseBlock(block) {
    let id = null;
    let data = '';
    for (const line of block.split('\n')) {
      if (!line || line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'id') id = value;
      else if (field === 'data') data += (data ? '\n' : '') + value;
    }
    return { id, data };
  }

  async function startStream() {
    if (state.stream) state.stream.abort();
    const ctl = new AbortController();
    state.stream = ctl;
    let backoff = 1000;
    while (!ctl.signal.aborted && token) {
      try {
        const headers = { Authorization: 'Bearer ' + token, Accept: 'text/event-stream' };
        // Resume where the last connection ended: nothing missed, nothing twice.
        if (state.lastEventId !== null) headers['Last-Event-ID'] = state.lastEventId;
        const res = await fetch('/api/v1/events/stream', { headers, signal: ctl.signal, cache: 'no-store' });
        if (res.status === 401) {
          signedOut(errorFrom(401, await res.text()).message);
          return;
        }
        if (!res.ok) throw errorFrom(res.status, await res.text());
        setLive('live', 'on');
        backoff = 1000;
        const reader = res.body.getReader();
        const decoder = new TextDecoder();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += decoder.decode(value, { stream: true }).replace(/\r\n?/g, '\n');
          let cut;
          while ((cut = buf.indexOf('\n\n')) >= 0) {
            const block = buf.slice(0, cut);
            buf = buf.slice(cut + 2);
            const { id, data } = parseBlock(block);
            if (id !== null) state.lastEventId = id;
            if (data) {
              try { onEvent(JSON.parse(data)); } catch (err) { console.warn('bad event', err); }
            }
          }
        }
      } catch (e) {
        if (ctl.signal.aborted) return;
      }
      if (ctl.signal.aborted || !token) return;
      setLive('reconnecting…', 'off');
      await new Promise((r) => setTimeout(r, backoff));
      backoff = Math.min(backoff * 2, 15000);
    }
  }

  // A laptop off its network: the stream cannot work; back on it, the
  // stream resumes at once after the last event it had (Last-Event-ID).
  window.addEventListener('offline', () => {
    if (state.stream) state.stream.abort();
    state.stream = null;
    if (token) setLive('offline', 'off');
  });
  window.addEventListener('online', () => {
    if (!token) return;
    startStream();
    refresh(state.view);
  });

  // ------------------------------------------------------------ start

  if (token) {
    // A refused token is signed out (and said so) by api(); anything else,
    // a server that cannot be reached, is said as it is.
    signIn(token).catch((e) => { if (!(e instanceof ApiError && e.status === 401)) showLogin(e.message); });
  } else {
    showLogin(null);
  }
})();
