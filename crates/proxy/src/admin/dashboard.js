// Sluice's admin dashboard: polls /api/dashboard and renders one page of each table.
// Every value is set with textContent: names, hosts, paths and reasons are never parsed as
// markup.
'use strict';

(function () {
  const PAGE = 50;
  const POLL_MS = 3000;
  const SECTIONS = ['routes', 'backends', 'addresses', 'certificates', 'diagnostics'];
  const state = {
    q: new URLSearchParams(window.location.search).get('q') || '',
    offsets: {},
    previous: {}, // route label -> {t, total, errors}: the last poll's counts, for rates
    last: null,
    sequence: 0,
    timer: null,
  };

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function cell(tr, text, cls) {
    const td = el('td', cls, text);
    tr.appendChild(td);
    return td;
  }

  function listCell(tr, items, cls) {
    const td = cell(tr, null, cls);
    if (items.length === 0) {
      td.textContent = '—';
      return td;
    }
    const ul = el('ul', 'plain');
    for (const item of items) {
      if (item instanceof Node) {
        const li = el('li');
        li.appendChild(item);
        ul.appendChild(li);
      } else {
        ul.appendChild(el('li', null, item));
      }
    }
    td.appendChild(ul);
    return td;
  }

  function section(name) {
    const root = document.getElementById(name);
    return { root, body: root.querySelector('tbody'), pager: root.querySelector('.pager'), columns: root.querySelectorAll('th').length };
  }

  function pager(name, page) {
    const { pager } = section(name);
    const first = page.items.length ? page.offset + 1 : 0;
    const last = page.offset + page.items.length;
    let text = first + '–' + last + ' of ' + page.matched;
    if (page.matched !== page.total) text += ' (filtered from ' + page.total + ')';
    const prev = el('button', null, '‹ Prev');
    prev.type = 'button';
    prev.disabled = page.offset === 0;
    prev.addEventListener('click', () => move(name, Math.max(0, page.offset - PAGE)));
    const next = el('button', null, 'Next ›');
    next.type = 'button';
    next.disabled = last >= page.matched;
    next.addEventListener('click', () => move(name, page.offset + PAGE));
    pager.replaceChildren(prev, el('span', 'range', text), next);
  }

  function move(name, offset) {
    state.offsets[name] = offset;
    refresh();
  }

  function fill(name, page, row) {
    const { body, columns } = section(name);
    const rows = page.items.map(row);
    if (rows.length === 0) {
      const tr = el('tr');
      const td = cell(tr, state.q ? 'nothing matches the filter' : 'none', 'empty');
      td.colSpan = columns;
      rows.push(tr);
    }
    body.replaceChildren(...rows);
    pager(name, page);
  }

  function describeBackends(rule) {
    const action = rule.action || {};
    if (action.backends) {
      const several = action.backends.length > 1;
      return action.backends.map((b) => (b.backend || '(missing Service)') + (several ? ' (weight ' + b.weight + ')' : ''));
    }
    if (action.redirect) return ['redirect ' + action.code + ' → ' + action.redirect];
    if (action.fail) return ['answers ' + action.fail];
    return [];
  }

  function unique(values) {
    return [...new Set(values)];
  }

  // Rates from the difference between this poll's counts and the previous one's.
  function rates(counts, now) {
    const out = {};
    for (const [label, c] of Object.entries(counts)) {
      const prev = state.previous[label];
      const total = c.total;
      const errors = c['5xx'];
      let rate = null;
      let errorRate = null;
      if (prev && now > prev.t) {
        const seconds = (now - prev.t) / 1000;
        rate = Math.max(0, total - prev.total) / seconds;
        errorRate = Math.max(0, errors - prev.errors) / seconds;
      }
      out[label] = { total, rate, errorRate };
      state.previous[label] = { t: now, total, errors };
    }
    return out;
  }

  function fixed(n) {
    return n === null ? '–' : n.toFixed(n >= 10 ? 0 : 1);
  }

  function renderRoutes(doc, now) {
    const live = rates(doc.counts || {}, now);
    fill('routes', doc.routes, (r) => {
      const tr = el('tr');
      const rules = r.rules || [];
      cell(tr, r.kind === 'Gateway' ? 'Gateway ' + r.gateway + ' (' + r.listener + ', ' + r.address + ')' : r.kind);
      cell(tr, r.host || '(default backend)', 'host');
      cell(tr, r.path, 'path');
      cell(tr, r.match);
      cell(tr, r.owner, 'owner');
      const filters = [];
      for (const rule of rules) {
        for (const c of rule.conditions || []) filters.push('if ' + c);
        for (const f of rule.filters || []) filters.push(f);
      }
      listCell(tr, unique(filters), 'filters');
      listCell(tr, unique(rules.flatMap(describeBackends)), 'backends');
      const labels = unique(rules.map((rule) => rule.source).filter((s) => s));
      let total = 0;
      let rate = null;
      let errorRate = null;
      for (const label of labels) {
        const l = live[label];
        if (!l) continue;
        total += l.total;
        if (l.rate !== null) rate = (rate || 0) + l.rate;
        if (l.errorRate !== null) errorRate = (errorRate || 0) + l.errorRate;
      }
      const requests = cell(tr, total, 'num requests');
      requests.title = 'answered requests of ' + labels.join(', ') + ' since start';
      cell(tr, fixed(rate), 'num rate');
      cell(tr, fixed(errorRate), errorRate ? 'num error' : 'num');
      return tr;
    });
  }

  function renderBackends(doc) {
    fill('backends', doc.backends, (b) => {
      const tr = el('tr');
      cell(tr, b.backend, 'backend');
      cell(tr, b.protocol);
      const endpoints = b.endpoints || [];
      listCell(tr, endpoints.map((e) => el('span', e.down ? 'down' : 'ok', e.address + (e.down ? ' (connect failed, skipped)' : ''))));
      const up = endpoints.filter((e) => !e.down).length;
      if (endpoints.length === 0) cell(tr, 'no ready endpoint (503)', 'error');
      else cell(tr, up + '/' + endpoints.length + ' up', up === endpoints.length ? 'ok' : 'warning');
      return tr;
    });
  }

  function renderAddresses(doc) {
    fill('addresses', doc.addresses, (a) => {
      const tr = el('tr');
      cell(tr, a.address, 'address');
      cell(tr, a.object + (a.ip_mode ? ' (' + a.ip_mode + ')' : ''));
      listCell(tr, a.ports || []);
      cell(tr, a.pool || '—');
      const how = [];
      if (a.l2_holder) {
        const interfaces = (a.l2_interfaces || []).join(', ');
        how.push('L2: held by ' + a.l2_holder + (interfaces ? ' on ' + interfaces : ''));
      }
      for (const b of a.bgp || []) how.push('BGP: peer ' + b.peer + ' ' + b.address + ' (' + b.state + ')');
      if ((a.bgp || []).length === 0 && (a.bgp_prefixes || []).length) how.push('BGP ' + a.bgp_prefixes.join(', ') + ': no session announces it');
      if (how.length === 0) how.push('local address (not announced)');
      listCell(tr, how, 'announced');
      return tr;
    });
    const peers = (doc.bgp_peers || []).map((p) => p.name + ' ' + p.address + ': ' + p.state);
    const node = doc.node ? 'Node ' + doc.node + '; live nodes: ' + (doc.live_nodes || []).join(', ') + '. ' : '';
    document.getElementById('bgp').textContent = node + (peers.length ? 'BGP peers: ' + peers.join('; ') : 'No BGP peers.');
  }

  function renderCertificates(doc) {
    fill('certificates', doc.certificates, (c) => {
      const tr = el('tr');
      listCell(tr, c.names || [], 'names');
      cell(tr, c.kind === 'ACME' ? 'automatic HTTPS' : 'TLS Secret (SNI)');
      const owner = c.owner + ((c.requested_by || []).length ? ', for ' + c.requested_by.join(', ') : '');
      cell(tr, owner);
      if (c.not_after === null || c.not_after === undefined) {
        cell(tr, c.kind === 'ACME' ? 'not issued yet' : 'unknown', 'warning');
        cell(tr, '—');
      } else {
        const days = Math.floor((c.not_after - doc.now) / 86400);
        cell(tr, new Date(c.not_after * 1000).toISOString().replace('T', ' ').slice(0, 16) + ' UTC', 'expiry');
        cell(tr, days, 'num ' + (days < 0 ? 'expired' : days < 14 ? 'soon' : 'ok'));
      }
      return tr;
    });
  }

  function renderDiagnostics(doc) {
    fill('diagnostics', doc.diagnostics, (d) => {
      const tr = el('tr');
      cell(tr, d.severity, d.severity);
      cell(tr, d.subject, 'subject');
      cell(tr, d.field || '—', 'field');
      cell(tr, d.reason, 'reason');
      return tr;
    });
  }

  function render(doc, now) {
    const s = doc.summary || {};
    document.getElementById('summary').textContent =
      'generation ' + doc.generation + ' · ' + s.ingresses + ' Ingresses (' + s.rejected_ingresses + ' rejected) · ' +
      s.routes + ' routes · ' + s.certificates + ' certificates · ' + doc.diagnostics.total + ' diagnostics';
    renderRoutes(doc, now);
    renderBackends(doc);
    renderAddresses(doc);
    renderCertificates(doc);
    renderDiagnostics(doc);
  }

  async function poll() {
    const sequence = ++state.sequence;
    const params = new URLSearchParams();
    if (state.q) params.set('q', state.q);
    params.set('limit', String(PAGE));
    for (const name of SECTIONS) if (state.offsets[name]) params.set(name, String(state.offsets[name]));
    const updated = document.getElementById('updated');
    const started = Date.now();
    try {
      const response = await fetch('/api/dashboard?' + params.toString(), { cache: 'no-store' });
      if (!response.ok) throw new Error('HTTP ' + response.status);
      const doc = await response.json();
      if (sequence !== state.sequence) return; // a newer request (search, paging) is under way
      render(doc, Date.now());
      updated.textContent = 'updated ' + new Date().toLocaleTimeString() + ' in ' + (Date.now() - started) + ' ms';
      updated.className = 'muted';
    } catch (e) {
      if (sequence !== state.sequence) return;
      updated.textContent = 'update failed: ' + e.message;
      updated.className = 'error';
    } finally {
      if (sequence === state.sequence) {
        clearTimeout(state.timer);
        state.timer = setTimeout(poll, POLL_MS);
      }
    }
  }

  function refresh() {
    clearTimeout(state.timer);
    poll();
  }

  function start() {
    const input = document.getElementById('q');
    input.value = state.q;
    let debounce = null;
    input.addEventListener('input', () => {
      clearTimeout(debounce);
      debounce = setTimeout(() => {
        state.q = input.value.trim();
        state.offsets = {};
        const url = state.q ? '?q=' + encodeURIComponent(state.q) : window.location.pathname;
        window.history.replaceState(null, '', url);
        refresh();
      }, 250);
    });
    refresh();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
