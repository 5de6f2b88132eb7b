// zkgate status page: polls api/state every second and updates the page in
// place. The Req/s column and its trend are computed here from successive
// request counters; the other traffic figures are the gateway's, over the
// last minute (each "traffic" object of api/state).
(() => {
  'use strict';

  const TOKEN_KEY = 'zkgate.admin.token';
  // ?refresh=MS changes the poll period (tests use it; 100ms at least).
  const POLL_MS = Math.max(100, Number(new URLSearchParams(location.search).get('refresh')) || 1000);
  const TIMEOUT_MS = 5000;
  const HISTORY = 60; // rate samples kept per endpoint for the sparkline
  const SVG = 'http://www.w3.org/2000/svg';

  const byId = (id) => document.getElementById(id);
  const app = byId('app');

  // ---- token -------------------------------------------------------------
  // A ?token= query parameter is moved to sessionStorage and removed from
  // the address bar, so that it does not stay in the history.
  (() => {
    const url = new URL(location.href);
    const t = url.searchParams.get('token');
    if (t !== null) {
      sessionStorage.setItem(TOKEN_KEY, t);
      url.searchParams.delete('token');
      // Keep the other parameters (refresh) as they are.
      history.replaceState(null, '', url.pathname + url.search + url.hash);
    }
  })();

  function headers() {
    const t = sessionStorage.getItem(TOKEN_KEY);
    return t ? { Authorization: 'Bearer ' + t } : {};
  }

  async function api(method, path) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), TIMEOUT_MS);
    try {
      const res = await fetch(path, { method, headers: headers(), signal: ctl.signal, cache: 'no-store' });
      const type = res.headers.get('content-type') || '';
      const body = type.includes('json') ? await res.json() : await res.text();
      if (!res.ok) {
        const msg = (body && body.error) || (typeof body === 'string' && body.trim()) || res.statusText;
        const err = new Error(msg);
        err.status = res.status;
        throw err;
      }
      return body;
    } finally {
      clearTimeout(timer);
    }
  }

  // ---- small DOM helpers ---------------------------------------------------
  function h(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else e.setAttribute(k, v === true ? '' : v);
    }
    for (const c of children) if (c !== null && c !== undefined) e.append(c);
    return e;
  }
  function setText(e, text) {
    if (e.textContent !== text) e.textContent = text;
  }
  function setAttr(e, name, value) {
    if (e.getAttribute(name) !== value) e.setAttribute(name, value);
  }

  const fmtInt = new Intl.NumberFormat('en-US');
  function fmtRate(r) {
    if (r === null || r === undefined || !isFinite(r)) return '–';
    if (r === 0) return '0';
    if (r < 10) return r.toFixed(1);
    return fmtInt.format(Math.round(r));
  }
  // fmtPct formats part of whole as a percentage; '–' when whole is 0.
  function fmtPct(part, whole) {
    if (!whole) return '–';
    const p = 100 * part / whole;
    if (p === 0) return '0%';
    if (p < 0.1) return '<0.1%';
    if (p < 10) return p.toFixed(1) + '%';
    return Math.round(p) + '%';
  }
  // fmtDur formats a number of seconds as a latency; '–' when absent.
  function fmtDur(s) {
    if (s === null || s === undefined || !isFinite(s)) return '–';
    if (s < 0.001) return Math.round(s * 1e6) + 'µs';
    if (s < 0.01) return (s * 1000).toFixed(1) + 'ms';
    if (s < 1) return Math.round(s * 1000) + 'ms';
    if (s < 10) return s.toFixed(2) + 's';
    return s.toFixed(1) + 's';
  }
  // windowRate is the request rate of a traffic object: its requests over
  // the time they cover.
  function windowRate(t) {
    return t && t.window_seconds > 0 ? t.requests / t.window_seconds : null;
  }
  function windowTitle(t) {
    return t ? 'over the last ' + Math.round(t.window_seconds) + 's' : '';
  }

  // ago formats the time between ts and now (both from the server).
  // fmtAge formats a number of seconds as ago does.
  function fmtAge(s) {
    if (s < 60) return Math.floor(s) + 's';
    if (s < 3600) return Math.floor(s / 60) + 'm';
    if (s < 86400) return Math.floor(s / 3600) + 'h';
    return Math.floor(s / 86400) + 'd';
  }

  function ago(ts, now) {
    if (!ts) return 'never';
    const s = Math.max(0, (now - Date.parse(ts)) / 1000);
    if (s < 1) return 'just now';
    if (s < 60) return Math.floor(s) + 's ago';
    if (s < 3600) return Math.floor(s / 60) + 'm ago';
    if (s < 86400) return Math.floor(s / 3600) + 'h ago';
    return Math.floor(s / 86400) + 'd ago';
  }

  // ---- rates -------------------------------------------------------------
  // samples: "service\0addr" -> {requests, t, rate, history[]}
  const samples = new Map();

  function updateRates(state) {
    const now = Date.parse(state.time);
    const seen = new Set();
    for (const svc of state.services) {
      for (const ep of svc.endpoints) {
        const key = svc.name + '\u0000' + ep.addr;
        seen.add(key);
        const prev = samples.get(key);
        if (!prev) {
          samples.set(key, { requests: ep.requests, t: now, rate: null, history: [] });
          continue;
        }
        const dt = (now - prev.t) / 1000;
        if (dt <= 0) continue;
        const rate = ep.requests >= prev.requests ? (ep.requests - prev.requests) / dt : null;
        prev.requests = ep.requests;
        prev.t = now;
        prev.rate = rate;
        prev.history.push(rate || 0);
        if (prev.history.length > HISTORY) prev.history.shift();
      }
    }
    for (const key of samples.keys()) if (!seen.has(key)) samples.delete(key);
  }

  function sample(svc, addr) {
    return samples.get(svc + '\u0000' + addr);
  }

  // ---- header and summary --------------------------------------------------
  // The session states are the gateway's own (see discovery.SessionState):
  // only "connected" has a usable session.
  function zkClass(zk) {
    if (zk.state === 'connected') return 'ok';
    if (zk.state === 'not_configured') return 'warn';
    return 'bad';
  }
  function zkLabel(zk) {
    return (zk.state || 'unknown').replace(/_/g, ' ');
  }

  // snapshotText describes the membership snapshot file (zookeeper.snapshot_file).
  function snapshotText(snap, now) {
    if (!snap) return 'off';
    let text = snap.path + ': ';
    if (snap.loaded) text += 'read at start (written ' + ago(snap.written, now) + ')';
    else text += 'not used at start (' + snap.problem + ')';
    if (snap.seeded.length) text += '; serving it for ' + snap.seeded.join(', ');
    text += '; ' + fmtInt.format(snap.writes) + ' writes';
    if (snap.last_write_error) text += '; last write failed: ' + snap.last_write_error;
    return text;
  }

  // gatewayText is the version, the uptime and the entry points with their
  // protocol and open connections.
  function gatewayText(gw) {
    if (!gw || !gw.version) return '';
    const eps = (gw.entry_points || []).map(function (ep) {
      const c = ep.connections || {};
      let open = 0;
      for (const k in c) open += c[k];
      let proto = ep.protocol;
      if (ep.protocol === 'https' && ep.http2 !== 'off') proto += ', h2';
      if (ep.http2 === 'h2c') proto += ', h2c';
      if (ep.redirect_to) proto += ' → ' + ep.redirect_to;
      let text = ep.name + ' ' + ep.address + ' (' + proto + ', ' + fmtInt.format(open) + ' conn)';
      const soonest = certificates(ep).sort(function (a, b) { return Date.parse(a.not_after) - Date.parse(b.not_after); })[0];
      if (soonest) text += ' cert ' + (soonest.expired ? 'EXPIRED' : 'expires ' + soonest.not_after.slice(0, 10));
      return text;
    });
    return [gw.version, 'up ' + fmtAge(gw.uptime_seconds || 0)].concat(eps).join(' · ');
  }

  function certificates(ep) {
    return ((ep.tls || {}).certificates || []).slice();
  }

  // problems lists what is wrong though the gateway may be ready: the
  // header summarises the worst state, so that a green "Ready" never stands
  // next to a service in panic mode.
  function problems(state, fleet) {
    const list = [];
    const zk = state.zookeeper || {};
    if (zk.state && zk.state !== 'connected' && zk.state !== 'not_configured') list.push('ZooKeeper ' + zkLabel(zk));
    for (const svc of state.services || []) {
      const c = svc.counts || {};
      if (svc.panicking) list.push(svc.name + ' in panic mode (' + c.healthy + ' of ' + c.total + ' healthy)');
      else if (c.total > 0 && c.healthy === 0) list.push(svc.name + ' has no healthy endpoint');
      if (!svc.synced) list.push(svc.name + ' not synced yet');
      else if (svc.stale) list.push(svc.name + ' stale');
    }
    for (const ep of (state.gateway || {}).entry_points || []) {
      for (const c of certificates(ep)) {
        const name = (c.names || [])[0] || c.cert_file;
        if (c.expired) list.push(ep.name + ' certificate ' + name + ' expired');
        else if (c.expires_soon) list.push(ep.name + ' certificate ' + name + ' expires ' + c.not_after.slice(0, 10));
      }
      const t = ep.tls || {};
      if (t.last_reload_failure) list.push(ep.name + ' certificate reload refused: ' + t.last_reload_failure);
    }
    list.push(...fleetProblems(state.fleet, fleet));
    return list;
  }

  function renderHeader(state, fleet) {
    setText(byId('gw-info'), gatewayText(state.gateway));
    const ready = byId('ready');
    const found = problems(state, fleet);
    setAttr(ready, 'data-ready', String(state.ready));
    setAttr(ready, 'data-problems', String(found.length));
    ready.className = 'badge ' + (!state.ready ? 'bad' : found.length ? 'warn' : 'ok');
    let text = state.ready ? 'Ready' : 'Not ready' + (state.reason ? ' · ' + state.reason : '');
    if (found.length) {
      text += ' · ' + found.length + (found.length === 1 ? ' problem: ' : ' problems: ') + found.slice(0, 2).join(', ') + (found.length > 2 ? ', …' : '');
    }
    setText(ready, text);
    ready.title = (state.ready ? 'Receiving traffic' : (state.reason || 'not ready')) + (found.length ? '\n' + found.join('\n') : '');

    const zk = state.zookeeper;
    const badge = byId('zk-state');
    setAttr(badge, 'data-state', zk.state || '');
    setAttr(badge, 'data-connected', String(!!zk.connected));
    badge.className = 'badge ' + zkClass(zk);
    setText(badge, 'ZooKeeper ' + zkLabel(zk));
    const zkBanner = byId('zk-banner');
    zkBanner.hidden = zk.state === 'connected' || zk.state === 'not_configured';
    if (!zkBanner.hidden) {
      setText(zkBanner, 'ZooKeeper is ' + zkLabel(zk) + ', without a session' + (zk.since ? ' (state entered ' + ago(zk.since, Date.parse(state.time)) + ')' : '') +
        ' — serving the last known membership; services marked stale are not being refreshed.' +
        (zk.last_error ? ' Last error: ' + zk.last_error : ''));
    }

    let endpoints = 0, healthy = 0, rate = 0;
    for (const svc of state.services) {
      endpoints += svc.counts.total;
      healthy += svc.counts.healthy;
      for (const ep of svc.endpoints) rate += (sample(svc.name, ep.addr) || {}).rate || 0;
    }
    setText(byId('sum-services'), fmtInt.format(state.services.length));
    setText(byId('sum-endpoints'), healthy + ' / ' + endpoints);
    setText(byId('sum-rate'), fmtRate(rate));
    setText(byId('sum-routes'), fmtInt.format(state.routes.length));
    let routed = 0, failed = 0;
    for (const r of state.routes) {
      routed += (r.traffic || {}).requests || 0;
      failed += (r.traffic || {}).errors || 0;
    }
    const errTile = byId('sum-errors');
    setText(errTile, fmtPct(failed, routed));
    setAttr(errTile, 'data-bad', String(failed > 0));
    setText(byId('sum-session'), zk.session_id || 'none');

    setText(byId('zk-detail-state'), zkLabel(zk));
    setText(byId('zk-detail-session'), zk.session_id || 'none');
    setText(byId('zk-detail-since'), zk.since ? ago(zk.since, Date.parse(state.time)) : '–');
    setText(byId('zk-detail-servers'), zk.servers.join(', ') || '–');
    setText(byId('zk-detail-reconnects'), fmtInt.format(zk.reconnects));
    setText(byId('zk-detail-expirations'), fmtInt.format(zk.expirations));
    setText(byId('zk-detail-snapshot'), snapshotText(zk.snapshot, Date.parse(state.time)));
  }


  // ---- fleet -----------------------------------------------------------------
  // In fleet mode api/state carries a summary (state.fleet) and api/fleet
  // the detail: the refused version's problems and the gateways.

  // fleetProblemText names a refused znode, the key and the problem.
  function fleetProblemText(p) {
    return 'fleet ' + (p.znode || p.file || 'configuration') + (p.key ? ' ' + p.key : '') + ': ' + p.problem;
  }
  // fleetProblems lists the reasons the latest fleet version was refused,
  // from the detail when it was read, else from the summary's count.
  function fleetProblems(sum, fleet) {
    if (!sum || !sum.enabled || !sum.problems) return [];
    if (fleet && fleet.problems && fleet.problems.length) return fleet.problems.map(fleetProblemText);
    return ['fleet configuration refused (' + sum.problems + (sum.problems === 1 ? ' problem)' : ' problems)')];
  }

  function renderFleet(state, fleet, fleetError) {
    const sum = state.fleet || {};
    const section = byId('fleet');
    section.hidden = !sum.enabled;
    if (!sum.enabled) return;
    const now = Date.parse(state.time);
    const f = fleet || {};
    setText(byId('fleet-note'), [f.name && 'this gateway: ' + f.name, 'config version ' + sum.version,
      f.config_path && 'from ' + f.config_path].filter(Boolean).join(' · '));
    const flags = [];
    if (sum.stale) flags.push(['warn', 'stale: ZooKeeper unreachable', 'fleet-stale']);
    if (sum.problems) flags.push(['bad', 'latest version refused', 'fleet-refused']);
    if (f.snapshot_written) flags.push(['warn', 'from snapshot, written ' + ago(f.snapshot_written, now), 'fleet-snapshot']);
    const behind = (f.gateways || []).filter((g) => g.behind).length;
    if (behind) flags.push(['warn', behind + (behind === 1 ? ' gateway' : ' gateways') + ' behind', 'fleet-behind']);
    if (!flags.length) flags.push(['ok', 'in sync', 'fleet-synced']);
    const box = byId('fleet-flags');
    const key = flags.map((x) => x[2] + ':' + x[1]).join(' ');
    if (box.dataset.flags !== key) {
      box.dataset.flags = key;
      box.replaceChildren(...flags.map(([cls, text, id]) => h('span', { class: 'flag ' + cls, 'data-flag': id, text })));
    }
    const problemsTable = byId('fleet-problems');
    const probs = f.problems || [];
    problemsTable.hidden = probs.length === 0;
    const probKey = JSON.stringify(probs);
    if (problemsTable.dataset.key !== probKey) {
      problemsTable.dataset.key = probKey;
      problemsTable.tBodies[0].replaceChildren(...probs.map((p) => h('tr', { 'data-znode': p.znode || p.file || '' },
        h('td', { class: 'mono', text: p.znode || p.file || '–' }),
        h('td', { class: 'mono', text: p.key || '–' }),
        h('td', { text: p.problem }))));
    }
    const gws = f.gateways || [];
    // Rebuilt when a gateway or the time shown since changes.
    const gwKey = JSON.stringify(gws.map((g) => [g, g.since ? ago(g.since, now) : '']));
    const table = byId('fleet-gateways');
    if (table.dataset.key !== gwKey) {
      table.dataset.key = gwKey;
      table.tBodies[0].replaceChildren(...gws.map((g) => h('tr', { 'data-gateway': g.name, 'data-behind': String(!!g.behind) },
        h('td', null, h('strong', { text: g.name }), g.name === f.name ? h('span', { class: 'muted', text: ' (this one)' }) : null),
        h('td', { class: 'mono', text: g.address || '–' }),
        h('td', { class: 'mono', text: g.version || '–' }),
        h('td', { class: 'num mono', text: String(g.config_version) }),
        h('td', { text: g.since ? ago(g.since, now) : '–', title: g.since ? new Date(g.since).toLocaleString('en-GB') : '' }),
        h('td', null,
          g.behind ? h('span', { class: 'flag warn', 'data-flag': 'gateway-behind', text: 'older configuration', title: 'Runs configuration version ' + g.config_version + ', older than another gateway\'s' }) : null,
          g.problem ? h('span', { class: 'flag bad', text: g.problem }) : null))));
    }
    table.hidden = gws.length === 0;
    const err = fleetError || f.gateways_error || '';
    const errBox = byId('fleet-error');
    errBox.hidden = !err && gws.length !== 0;
    setText(errBox, err ? 'Gateways not listed: ' + err : 'No gateway announced.');
  }

  // ---- services ------------------------------------------------------------
  const cards = new Map(); // service name -> {root, parts, rows: Map(addr -> row)}

  function newCard(name) {
    const parts = {
      sub: h('div', { class: 'service-sub muted mono' }),
      flags: h('div', { class: 'flags' }),
      bar: h('div', { class: 'statebar' }),
      counts: h('span', { class: 'muted' }),
      rate: h('span', { class: 'service-rate' }),
      traffic: h('span', { class: 'service-traffic' }),
      sync: h('span', { class: 'muted' }),
      tbody: h('tbody'),
      empty: h('p', { class: 'empty', text: 'No endpoints registered.' }),
    };
    const table = h('table', { class: 'table endpoints' },
      h('thead', null, h('tr', null,
        h('th', { class: 'c-state', text: 'State' }), h('th', { class: 'c-endpoint', text: 'Endpoint' }),
        h('th', { class: 'num c-weight', text: 'Weight' }),
        h('th', { class: 'num c-rate', text: 'Req/s' }), h('th', { class: 'c-spark', text: 'Trend' }),
        h('th', { class: 'num c-errors', text: '5xx', title: 'Attempts answered 5xx, refused or timed out, last minute' }),
        h('th', { class: 'num c-latency', text: 'p50 / p99', title: 'Time to the response head, last minute' }),
        h('th', { class: 'num c-retries', text: 'Retried', title: 'Failed attempts retried on another endpoint, last minute' }),
        h('th', { class: 'num c-ejections', text: 'Ejected', title: 'Passive ejections, last minute' }),
        h('th', { class: 'num c-inflight', text: 'In flight' }), h('th', { class: 'c-probe', text: 'Last probe' }),
        h('th', { class: 'c-action' }))),
      parts.tbody);
    parts.table = table;
    const root = h('article', { class: 'card service', 'data-service': name },
      h('div', { class: 'service-head' },
        h('div', null, h('h3', { text: name }), parts.sub),
        parts.flags),
      h('div', { class: 'service-stats' }, parts.bar, parts.counts, parts.rate, parts.traffic, parts.sync),
      table, parts.empty);
    return { root, parts, rows: new Map() };
  }

  function renderFlags(box, svc) {
    const flags = [];
    if (!svc.synced) flags.push(['warn', 'waiting for first sync', 'flag-unsynced']);
    if (svc.stale) flags.push(['warn', 'stale membership', 'flag-stale']);
    if (svc.snapshot) flags.push(['warn', 'from snapshot, read ' + fmtAge(svc.snapshot.age_seconds) + ' ago', 'flag-snapshot']);
    if (svc.panicking) flags.push(['bad', 'panic mode', 'flag-panic']);
    const guard = svc.removal_guard;
    if (guard && guard.active) {
      flags.push(['warn', 'removal guard: holding ' + guard.held + ' member' + (guard.held === 1 ? '' : 's') +
        ' until ' + new Date(guard.until).toLocaleTimeString(), 'flag-guard']);
    }
    if (svc.synced && !svc.stale) flags.push(['ok', 'in sync', 'flag-synced']);
    const key = flags.map((f) => f[2] + ':' + f[1]).join(' ');
    if (box.dataset.flags === key) return;
    box.dataset.flags = key;
    box.replaceChildren(...flags.map(([cls, text, id]) => h('span', { class: 'flag ' + cls, 'data-flag': id, text })));
  }

  function renderBar(bar, counts) {
    const segs = [['healthy', counts.healthy], ['unhealthy', counts.unhealthy], ['ejected', counts.ejected],
      ['draining', counts.draining], ['other', counts.other]];
    const key = segs.map((s) => s[1]).join(',');
    if (bar.dataset.key === key) return;
    bar.dataset.key = key;
    bar.replaceChildren(...segs.filter((s) => s[1] > 0).map(([state, n]) => {
      const seg = h('span', { 'data-state': state, title: n + ' ' + state });
      seg.style.flexGrow = String(n);
      return seg;
    }));
  }

  function newRow(svc, addr) {
    const c = {
      pill: h('span', { class: 'pill' }),
      since: h('div', { class: 'ep-since' }),
      addr: h('div', { class: 'ep-addr', text: addr }),
      id: h('div', { class: 'ep-id' }),
      weight: h('td', { class: 'num ep-weight' }),
      rate: h('td', { class: 'num ep-rate' }),
      spark: sparkline(),
      errors: h('td', { class: 'num ep-errors' }),
      latency: h('td', { class: 'num ep-latency' }),
      retries: h('td', { class: 'num ep-retries' }),
      ejections: h('td', { class: 'num ep-ejections' }),
      inflight: h('td', { class: 'num ep-inflight' }),
      probe: h('span', { class: 'ep-probe-when' }),
      probeResult: h('span', { class: 'ep-probe-result' }),
      button: h('button', { class: 'btn btn-small', type: 'button' }),
    };
    c.button.addEventListener('click', () => toggleDrain(svc, addr, c.button));
    const row = h('tr', { class: 'ep', 'data-endpoint': addr, 'data-service': svc },
      h('td', null, c.pill, c.since),
      h('td', null, c.addr, c.id),
      c.weight, c.rate,
      h('td', null, c.spark.svg),
      c.errors, c.latency, c.retries, c.ejections,
      c.inflight,
      h('td', { class: 'ep-probe' }, c.probe, c.probeResult),
      h('td', { class: 'num' }, c.button));
    return { row, c };
  }

  function renderRow(r, svc, ep, now) {
    const { row, c } = r;
    setAttr(row, 'data-state', ep.state);
    setAttr(c.pill, 'data-state', ep.state);
    setText(c.pill, ep.state);
    // The time in state: "unhealthy for 2m".
    setText(c.since, ep.since ? 'for ' + fmtAge(Math.max(0, (now - Date.parse(ep.since)) / 1000)) : '');
    c.since.title = ep.since ? ep.state + ' since ' + new Date(ep.since).toLocaleString('en-GB') : '';    setText(c.id, ep.znode || ep.id || '');
    c.id.title = [ep.id, ep.znode, ep.format && 'format ' + ep.format].filter(Boolean).join(' · ');
    setText(c.weight, String(ep.weight));
    const s = sample(svc.name, ep.addr);
    setText(c.rate, fmtRate(s && s.rate));
    c.rate.title = fmtInt.format(ep.requests) + ' requests since it appeared';
    c.spark.draw(s ? s.history : []);
    renderTraffic(c, ep.traffic);
    setText(c.inflight, fmtInt.format(ep.in_flight));
    setText(c.probe, ep.last_probe ? ago(ep.last_probe, now) : 'not probed');
    const fails = ep.consecutive_failures ? ' · ' + ep.consecutive_failures + ' failed in a row' : '';
    setText(c.probeResult, (ep.last_probe_result || '') + fails);
    c.probeResult.title = (ep.last_probe_result || '') + fails;
    const draining = ep.state === 'draining';
    setText(c.button, draining ? 'Undrain' : 'Drain');
    setAttr(c.button, 'data-action', draining ? 'undrain' : 'drain');
    c.button.title = (draining ? 'Put ' : 'Take ') + ep.addr + (draining ? ' back into rotation' : ' out of rotation');
  }

  // renderTraffic fills the last minute's figures of an endpoint's row.
  function renderTraffic(c, t) {
    t = t || {};
    setText(c.errors, fmtPct(t.errors || 0, t.requests));
    setAttr(c.errors, 'data-bad', String((t.errors || 0) > 0));
    c.errors.title = fmtInt.format(t.errors || 0) + ' of ' + fmtInt.format(t.requests || 0) + ' attempts ' + windowTitle(t);
    setText(c.latency, fmtDur(t.latency_p50_seconds) + ' / ' + fmtDur(t.latency_p99_seconds));
    setText(c.retries, fmtInt.format(t.retries || 0));
    setText(c.ejections, fmtInt.format(t.ejections || 0));
    setAttr(c.ejections, 'data-bad', String((t.ejections || 0) > 0));
  }

  // serviceTraffic is a service's last minute: 5xx rate, latency, retries
  // and ejections.
  function renderServiceTraffic(box, t) {
    t = t || {};
    const figs = [
      ['errors', '5xx ' + fmtPct(t.errors || 0, t.requests), (t.errors || 0) > 0],
      ['p50', 'p50 ' + fmtDur(t.latency_p50_seconds), false],
      ['p99', 'p99 ' + fmtDur(t.latency_p99_seconds), false],
      ['retries', fmtInt.format(t.retries || 0) + ((t.retries || 0) === 1 ? ' retry' : ' retries'), false],
      ['ejections', fmtInt.format(t.ejections || 0) + ((t.ejections || 0) === 1 ? ' ejection' : ' ejections'), (t.ejections || 0) > 0],
    ];
    box.title = 'Last minute (' + windowTitle(t) + '): ' + fmtInt.format(t.requests || 0) + ' requests, ' + fmtInt.format(t.errors || 0) + ' answered 5xx';
    const key = figs.map((f) => f[1] + f[2]).join('|');
    if (box.dataset.key === key) return;
    box.dataset.key = key;
    box.replaceChildren(...figs.map(([name, text, bad]) => h('span', { 'data-fig': name, 'data-bad': String(bad), text })));
  }

  function renderServices(state) {
    const box = byId('services');
    const now = Date.parse(state.time);
    const names = new Set();
    let prev = null;
    for (const svc of state.services) {
      names.add(svc.name);
      let card = cards.get(svc.name);
      if (!card) {
        card = newCard(svc.name);
        cards.set(svc.name, card);
      }
      // Keep the cards in the order the server gives.
      const want = prev ? prev.nextSibling : box.firstChild;
      if (want !== card.root) box.insertBefore(card.root, want);
      prev = card.root;

      const p = card.parts;
      const d = svc.discovery || {};
      setText(p.sub, [d.kind, d.path, d.format && 'format ' + d.format].filter(Boolean).join(' · '));
      renderFlags(p.flags, svc);
      renderBar(p.bar, svc.counts);
      const k = svc.counts;
      setText(p.counts, k.healthy + ' of ' + k.total + ' healthy' +
        (k.unhealthy ? ' · ' + k.unhealthy + ' unhealthy' : '') +
        (k.ejected ? ' · ' + k.ejected + ' ejected' : '') +
        (k.draining ? ' · ' + k.draining + ' draining' : ''));
      let rate = 0;
      for (const ep of svc.endpoints) rate += (sample(svc.name, ep.addr) || {}).rate || 0;
      setText(p.rate, fmtRate(rate) + ' req/s');
      renderServiceTraffic(p.traffic, svc.traffic);
      setText(p.sync, svc.last_sync ? 'synced ' + ago(svc.last_sync, now) : 'never synced');

      const addrs = new Set();
      let prevRow = null;
      for (const ep of svc.endpoints) {
        addrs.add(ep.addr);
        let r = card.rows.get(ep.addr);
        if (!r) {
          r = newRow(svc.name, ep.addr);
          card.rows.set(ep.addr, r);
        }
        const want = prevRow ? prevRow.nextSibling : p.tbody.firstChild;
        if (want !== r.row) p.tbody.insertBefore(r.row, want);
        prevRow = r.row;
        renderRow(r, svc, ep, now);
      }
      for (const [addr, r] of card.rows) {
        if (!addrs.has(addr)) {
          r.row.remove();
          card.rows.delete(addr);
        }
      }
      p.table.hidden = svc.endpoints.length === 0;
      p.empty.hidden = svc.endpoints.length !== 0;
    }
    for (const [name, card] of cards) {
      if (!names.has(name)) {
        card.root.remove();
        cards.delete(name);
      }
    }
    byId('no-services').hidden = state.services.length !== 0;
  }

  // ---- sparkline -------------------------------------------------------------
  function sparkline() {
    const svg = document.createElementNS(SVG, 'svg');
    svg.setAttribute('class', 'spark');
    svg.setAttribute('viewBox', '0 0 ' + (HISTORY - 1) + ' 24');
    svg.setAttribute('preserveAspectRatio', 'none');
    const area = document.createElementNS(SVG, 'polygon');
    const line = document.createElementNS(SVG, 'polyline');
    svg.append(area, line);
    return {
      svg,
      draw(values) {
        if (values.length < 2) {
          line.setAttribute('points', '');
          area.setAttribute('points', '');
          return;
        }
        // The line spans the width whatever the number of samples.
        const max = Math.max(1, ...values);
        const step = (HISTORY - 1) / (values.length - 1);
        const pts = values.map((v, i) => (i * step).toFixed(2) + ',' + (23 - (v / max) * 21).toFixed(2));
        line.setAttribute('points', pts.join(' '));
        area.setAttribute('points', '0,24 ' + pts.join(' ') + ' ' + (HISTORY - 1) + ',24');
      },
    };
  }

  // ---- routes ----------------------------------------------------------------
  function chips(list, empty) {
    if (!list || list.length === 0) return h('span', { class: 'muted', text: empty });
    const span = h('span');
    for (const x of list) span.append(h('span', { class: 'chip', text: x }));
    return span;
  }

  // The routes table is rebuilt when the routes change; its traffic cells
  // are updated on every poll.
  function renderRoutes(routes) {
    const key = JSON.stringify(routes.map((r) => Object.assign({}, r, { traffic: null })));
    const table = byId('routes');
    if (table.dataset.key !== key) {
      table.dataset.key = key;
      buildRoutes(table, routes);
    }
    for (const r of routes) {
      const row = table.querySelector('tr[data-route="' + CSS.escape(r.name) + '"]');
      if (!row) continue;
      const t = r.traffic || {};
      const cells = row.querySelectorAll('.rt');
      setText(cells[0], fmtRate(windowRate(t)));
      cells[0].title = fmtInt.format(t.requests || 0) + ' requests ' + windowTitle(t);
      setText(cells[1], fmtPct(t.errors || 0, t.requests));
      setAttr(cells[1], 'data-bad', String((t.errors || 0) > 0));
      cells[1].title = fmtInt.format(t.errors || 0) + ' answered 5xx ' + windowTitle(t);
      setText(cells[2], fmtDur(t.latency_p50_seconds) + ' / ' + fmtDur(t.latency_p99_seconds));
    }
    table.hidden = routes.length === 0;
    byId('no-routes').hidden = routes.length !== 0;
  }

  function buildRoutes(table, routes) {
    table.tBodies[0].replaceChildren(...routes.map((r) => h('tr', { 'data-route': r.name },
      h('td', null, h('strong', { text: r.name })),
      h('td', { class: 'num', text: String(r.priority) }),
      h('td', null, chips(r.hosts, 'any')),
      h('td', { class: 'mono', text: r.path_prefix || '/' }),
      h('td', null, chips(r.methods, 'any')),
      h('td', null, h('a', { href: '#', 'data-goto': r.service, text: r.service })),
      h('td', null, h('span', { text: r.balancer }),
        r.hash_on ? h('span', { class: 'muted mono', text: ' on ' + r.hash_on }) : null),
      h('td', { text: r.strip_prefix ? 'yes' : 'no' }),
      h('td', { class: 'num rt rt-rate' }),
      h('td', { class: 'num rt rt-errors' }),
      h('td', { class: 'num rt rt-latency' }))));
  }

  byId('routes').addEventListener('click', (ev) => {
    const a = ev.target.closest('a[data-goto]');
    if (!a) return;
    ev.preventDefault();
    const card = cards.get(a.dataset.goto);
    if (card) card.root.scrollIntoView({ behavior: 'smooth', block: 'start' });
  });

  // ---- actions ---------------------------------------------------------------
  let toastTimer = null;
  function toast(msg, isError) {
    const t = byId('toast');
    t.textContent = msg;
    t.className = 'toast' + (isError ? ' error' : '');
    t.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { t.hidden = true; }, isError ? 8000 : 3000);
  }

  async function toggleDrain(svc, addr, button) {
    const action = button.dataset.action;
    button.disabled = true;
    try {
      await api('POST', 'api/services/' + encodeURIComponent(svc) + '/endpoints/' + encodeURIComponent(addr) + '/' + action);
      toast((action === 'drain' ? 'Draining ' : 'Undrained ') + addr + ' (' + svc + ')');
    } catch (err) {
      handleAuth(err);
      toast(action + ' ' + addr + ' failed: ' + err.message, true);
    } finally {
      button.disabled = false;
      poll();
    }
  }

  byId('reload-config').addEventListener('click', async (ev) => {
    const button = ev.currentTarget;
    button.disabled = true;
    try {
      await api('POST', 'api/reload');
      toast('Configuration reloaded');
    } catch (err) {
      handleAuth(err);
      toast('Reload rejected, the running configuration is kept:\n' + err.message, true);
    } finally {
      button.disabled = false;
      poll();
    }
  });

  function handleAuth(err) {
    if (err.status === 401) byId('token-form').hidden = false;
  }

  byId('token-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, byId('token-input').value.trim());
    byId('token-input').value = '';
    byId('token-form').hidden = true;
    poll();
  });

  // ---- polling ---------------------------------------------------------------
  byId('refresh-period').textContent = POLL_MS % 1000 === 0 ? (POLL_MS === 1000 ? 'every second' : 'every ' + POLL_MS / 1000 + 's') : 'every ' + POLL_MS + 'ms';

  let polls = 0;
  let timer = null;
  let inFlight = false;

  function setLive(mode, text) {
    setAttr(byId('live'), 'data-live', mode);
    setText(byId('last-update'), text);
  }

  async function poll() {
    if (inFlight) return;
    inFlight = true;
    clearTimeout(timer);
    try {
      const state = await api('GET', 'api/state');
      // Fleet mode: the detail, read with the state; a failure to read
      // it does not stop the page.
      let fleet = null, fleetError = '';
      if (state.fleet && state.fleet.enabled) {
        try {
          fleet = await api('GET', 'api/fleet');
        } catch (err) {
          fleetError = err.message;
        }
      }
      updateRates(state);
      renderHeader(state, fleet);
      renderFleet(state, fleet, fleetError);
      renderServices(state);
      renderRoutes(state.routes);
      polls++;
      app.dataset.polls = String(polls);
      app.dataset.loaded = 'true';
      app.classList.remove('is-stale');
      byId('banner').hidden = true;
      byId('token-form').hidden = true;
      setLive('true', 'Live · ' + new Date(state.time).toLocaleTimeString('en-GB'));
    } catch (err) {
      app.classList.add('is-stale');
      setLive('error', 'Disconnected · retrying');
      const banner = byId('banner');
      banner.textContent = err.status === 401
        ? 'Unauthorized: enter the admin token below, or open this page with ?token=…'
        : 'Cannot reach the gateway admin API (' + err.message + '). The data shown is from the last successful poll.';
      banner.hidden = false;
      handleAuth(err);
    } finally {
      inFlight = false;
      timer = setTimeout(poll, POLL_MS);
    }
  }

  poll();
})();
