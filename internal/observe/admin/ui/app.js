// wsgate admin dashboard. Plain JS, no dependencies. Everything shown comes from
// the admin API with the token in the Authorization header; the live stream is
// read with fetch() because EventSource cannot send headers. All data is put in
// the page with textContent, never as HTML.
(function () {
  'use strict';

  const API = '/api/v1';
  const KEY = 'wsgate.admin.token';
  const $ = (id) => document.getElementById(id);

  const state = {
    token: sessionStorage.getItem(KEY) || '',
    points: new Map(), // t (unix s) -> point
    window: 600,
    now: 0,
    connections: 0,
    reasons: {},
    conns: new Map(), // id -> conn
    total: 0,
    alerts: [],
    bans: [],
    streamAbort: null,
    timers: [],
    banTarget: null,
  };

  // ---------- helpers ----------
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function fmtInt(n) { return Number(n || 0).toLocaleString('en-US'); }
  function fmtBytes(n) {
    n = Number(n || 0);
    const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i === 0 ? n : n.toFixed(1)) + ' ' + u[i];
  }
  function ago(iso) {
    const s = Math.max(0, Math.round((Date.now() - new Date(iso).getTime()) / 1000));
    if (s < 60) return s + 's ago';
    if (s < 3600) return Math.floor(s / 60) + 'm ' + (s % 60) + 's ago';
    if (s < 86400) return Math.floor(s / 3600) + 'h ' + Math.floor((s % 3600) / 60) + 'm ago';
    return Math.floor(s / 86400) + 'd ago';
  }
  function clock(d) { return new Date(d).toLocaleTimeString('en-GB', { hour12: false }); }
  function toast(msg, err) {
    const t = el('div', 'toast' + (err ? ' err' : ''), msg);
    $('toasts').appendChild(t);
    setTimeout(() => t.remove(), err ? 6000 : 3500);
  }

  class AuthError extends Error {}

  async function api(method, path, body) {
    const opts = { method, headers: { Authorization: 'Bearer ' + state.token }, cache: 'no-store' };
    if (body !== undefined) {
      opts.headers['Content-Type'] = 'application/json';
      opts.body = JSON.stringify(body);
    }
    const res = await fetch(API + path, opts);
    let data = null;
    try { data = await res.json(); } catch (_) { /* not JSON */ }
    if (res.status === 401) throw new AuthError('The admin token was not accepted.');
    if (res.status === 403) throw new AuthError((data && data.error) || 'forbidden');
    if (!res.ok) {
      const e = new Error((data && (data.reason || data.error)) || ('HTTP ' + res.status));
      e.status = res.status;
      throw e;
    }
    return data;
  }

  // ---------- login ----------
  function showLogin(msg) {
    stop();
    $('app-view').hidden = true;
    $('session-controls').hidden = true;
    $('login-view').hidden = false;
    const err = $('login-error');
    err.hidden = !msg;
    err.textContent = msg || '';
    $('token').focus();
  }

  async function probe() {
    // Without a token this tells "not configured" (403) from "sign in" (401).
    try {
      const res = await fetch(API + '/status', { cache: 'no-store', headers: state.token ? { Authorization: 'Bearer ' + state.token } : {} });
      if (res.ok) return start();
      if (res.status === 403) {
        showLogin('Admin token not configured: set admin.token in the configuration and reload. Every admin call is refused until then.');
        $('login-btn').disabled = true;
        return;
      }
      if (state.token) { sessionStorage.removeItem(KEY); state.token = ''; }
      showLogin('');
    } catch (e) {
      showLogin('Cannot reach the admin API: ' + e.message);
    }
  }

  $('login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    state.token = $('token').value.trim();
    if (!state.token) return;
    try {
      await api('GET', '/status');
      sessionStorage.setItem(KEY, state.token);
      $('token').value = '';
      start();
    } catch (e) {
      state.token = '';
      showLogin(e.message);
    }
  });

  $('logout-btn').addEventListener('click', () => {
    sessionStorage.removeItem(KEY);
    state.token = '';
    showLogin('');
  });

  $('reload-btn').addEventListener('click', async () => {
    const b = $('reload-btn');
    b.disabled = true;
    try {
      await api('POST', '/reload');
      toast('Configuration reloaded.');
    } catch (e) {
      handleErr(e, 'Reload refused: ');
    } finally { b.disabled = false; }
  });

  function handleErr(e, prefix) {
    if (e instanceof AuthError) { sessionStorage.removeItem(KEY); state.token = ''; showLogin(e.message); return; }
    toast((prefix || '') + e.message, true);
  }

  // ---------- lifecycle ----------
  function start() {
    $('login-view').hidden = true;
    $('app-view').hidden = false;
    $('session-controls').hidden = false;
    refreshConns();
    refreshBans();
    refreshAlerts();
    stream();
    state.timers.push(setInterval(refreshConns, 5000));
    state.timers.push(setInterval(refreshBans, 10000));
    state.timers.push(setInterval(renderTimes, 1000));
  }
  function stop() {
    if (state.streamAbort) state.streamAbort.abort();
    state.streamAbort = null;
    state.timers.forEach(clearInterval);
    state.timers = [];
  }
  function setLive(on, text) {
    $('live').className = 'live ' + (on ? 'on' : 'off');
    $('live-text').textContent = text;
  }

  // ---------- live stream (SSE over fetch) ----------
  async function stream() {
    let backoff = 1000;
    while (state.token) {
      const ctrl = new AbortController();
      state.streamAbort = ctrl;
      try {
        const res = await fetch(API + '/events', { headers: { Authorization: 'Bearer ' + state.token }, signal: ctrl.signal, cache: 'no-store' });
        if (res.status === 401 || res.status === 403) throw new AuthError('Session ended: the admin token is no longer accepted.');
        if (!res.ok || !res.body) throw new Error('HTTP ' + res.status);
        setLive(true, 'Live');
        backoff = 1000;
        const reader = res.body.getReader();
        const dec = new TextDecoder();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += dec.decode(value, { stream: true });
          let i;
          while ((i = buf.indexOf('\n\n')) >= 0) {
            const block = buf.slice(0, i);
            buf = buf.slice(i + 2);
            dispatch(block);
          }
          if (buf.length > 1 << 20) buf = ''; // never grow without bound
        }
      } catch (e) {
        if (ctrl.signal.aborted) return;
        if (e instanceof AuthError) { handleErr(e); return; }
      }
      if (state.streamAbort !== ctrl) return;
      setLive(false, 'Reconnecting…');
      await new Promise((r) => setTimeout(r, backoff));
      backoff = Math.min(backoff * 2, 15000);
    }
  }

  function dispatch(block) {
    let event = 'message';
    const data = [];
    for (const line of block.split('\n')) {
      if (line.startsWith('event:')) event = line.slice(6).trim();
      else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
    }
    if (!data.length) return;
    let msg;
    try { msg = JSON.parse(data.join('\n')); } catch (_) { return; }
    switch (event) {
      case 'hello':
        state.points.clear();
        applyStats(msg.stats);
        break;
      case 'stats': applyStats(msg); break;
      case 'alert': addAlert(msg, true); break;
      case 'conn':
        if (msg.op === 'open') state.conns.set(msg.conn.id, msg.conn);
        else if (msg.op === 'close') state.conns.delete(msg.conn.id);
        state.total += msg.op === 'open' ? 1 : -1;
        renderConns();
        break;
    }
  }

  // ---------- stats and charts ----------
  function applyStats(s) {
    if (!s) return;
    state.window = s.window_seconds || state.window;
    state.now = s.now;
    state.connections = s.connections;
    state.reasons = s.reasons || {};
    for (const p of s.points || []) state.points.set(p.t, p);
    for (const t of state.points.keys()) if (t <= s.now - state.window) state.points.delete(t);
    renderStats();
  }

  function series() {
    const out = [];
    for (let t = state.now - state.window + 1; t <= state.now; t++) {
      out.push(state.points.get(t) || { t, connections: null, accepted: 0, rejected: 0 });
    }
    // Carry the connection count over seconds we have no point for.
    let last = null;
    for (const p of out) { if (p.connections === null) p.connections = last === null ? state.connections : last; else last = p.connections; }
    return out;
  }

  function renderStats() {
    const pts = series();
    const lastMin = pts.slice(-60);
    const acc = lastMin.reduce((a, p) => a + (p.accepted || 0), 0);
    const rej = lastMin.reduce((a, p) => a + (p.rejected || 0), 0);
    const peak = pts.reduce((a, p) => Math.max(a, p.connections || 0), 0);
    $('kpi-conns').textContent = fmtInt(state.connections);
    $('kpi-conns-sub').textContent = 'peak ' + fmtInt(peak) + ' in 10 min';
    $('kpi-acc').textContent = fmtInt(acc);
    $('kpi-acc-sub').textContent = fmtInt(pts.reduce((a, p) => a + (p.accepted || 0), 0)) + ' in 10 min';
    $('kpi-rej').textContent = fmtInt(rej);
    const rejTotal = pts.reduce((a, p) => a + (p.rejected || 0), 0);
    $('kpi-rej-sub').textContent = fmtInt(rejTotal) + ' in 10 min';
    drawLine($('chart-conns'), pts);
    drawBars($('chart-hs'), pts, 10);
    renderReasons();
  }

  function setupCanvas(c) {
    const dpr = window.devicePixelRatio || 1;
    const w = c.clientWidth, h = c.clientHeight;
    if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) {
      c.width = Math.round(w * dpr);
      c.height = Math.round(h * dpr);
    }
    const ctx = c.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    return { ctx, w, h };
  }

  // niceMax rounds v up to four equal integer steps of 1, 2, 2.5 or 5 x 10^k,
  // so the grid labels are round numbers.
  function niceMax(v) {
    const raw = Math.max(1, v / 4);
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    for (const m of [1, 2, 2.5, 5, 10]) {
      const step = m * p;
      if (step >= raw && Number.isInteger(step)) return step * 4;
    }
    return 40 * p;
  }

  function axes(ctx, w, h, pad, max, pts) {
    ctx.font = '11px -apple-system, "Segoe UI", Roboto, Arial, sans-serif';
    ctx.fillStyle = '#8a94a3';
    ctx.strokeStyle = '#edf0f4';
    ctx.lineWidth = 1;
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    for (let i = 0; i <= 4; i++) {
      const y = Math.round(pad.t + (h - pad.t - pad.b) * i / 4) + 0.5;
      ctx.beginPath(); ctx.moveTo(pad.l, y); ctx.lineTo(w - pad.r, y); ctx.stroke();
      ctx.fillText(fmtInt(Math.round(max * (4 - i) / 4)), pad.l - 6, y);
    }
    ctx.textAlign = 'center';
    ctx.textBaseline = 'top';
    const n = pts.length;
    for (let i = 0; i < n; i += 120) {
      const idx = n - 1 - i;
      const x = pad.l + (w - pad.l - pad.r) * idx / Math.max(1, n - 1);
      const label = i === 0 ? 'now' : '-' + (i / 60) + 'm';
      ctx.fillText(label, Math.min(Math.max(x, pad.l + 10), w - pad.r - 10), h - pad.b + 6);
    }
  }

  function drawLine(c, pts) {
    const { ctx, w, h } = setupCanvas(c);
    const pad = { l: 44, r: 10, t: 8, b: 22 };
    const max = niceMax(pts.reduce((a, p) => Math.max(a, p.connections || 0), 0));
    axes(ctx, w, h, pad, max, pts);
    const iw = w - pad.l - pad.r, ih = h - pad.t - pad.b;
    const X = (i) => pad.l + iw * i / Math.max(1, pts.length - 1);
    const Y = (v) => pad.t + ih * (1 - v / max);
    ctx.beginPath();
    pts.forEach((p, i) => { const x = X(i), y = Y(p.connections || 0); if (i) ctx.lineTo(x, y); else ctx.moveTo(x, y); });
    const grad = ctx.createLinearGradient(0, pad.t, 0, pad.t + ih);
    grad.addColorStop(0, 'rgba(47,111,237,.25)');
    grad.addColorStop(1, 'rgba(47,111,237,0)');
    ctx.strokeStyle = '#2f6fed';
    ctx.lineWidth = 2;
    ctx.lineJoin = 'round';
    ctx.stroke();
    ctx.lineTo(X(pts.length - 1), pad.t + ih);
    ctx.lineTo(X(0), pad.t + ih);
    ctx.closePath();
    ctx.fillStyle = grad;
    ctx.fill();
  }

  function drawBars(c, pts, bucket) {
    const { ctx, w, h } = setupCanvas(c);
    const pad = { l: 44, r: 10, t: 8, b: 22 };
    const buckets = [];
    for (let i = 0; i < pts.length; i += bucket) {
      let a = 0, r = 0;
      for (const p of pts.slice(i, i + bucket)) { a += p.accepted || 0; r += p.rejected || 0; }
      buckets.push({ a, r });
    }
    const max = niceMax(buckets.reduce((m, b) => Math.max(m, b.a + b.r), 0));
    axes(ctx, w, h, pad, max, pts);
    const iw = w - pad.l - pad.r, ih = h - pad.t - pad.b;
    const bw = iw / buckets.length;
    buckets.forEach((b, i) => {
      const x = pad.l + i * bw + 1;
      const wd = Math.max(1, bw - 2);
      const ha = ih * b.a / max, hr = ih * b.r / max;
      ctx.fillStyle = '#1f9d63';
      ctx.fillRect(x, pad.t + ih - ha, wd, ha);
      ctx.fillStyle = '#d64545';
      ctx.fillRect(x, pad.t + ih - ha - hr, wd, hr);
    });
  }

  function renderReasons() {
    const ul = $('reasons');
    const entries = Object.entries(state.reasons).filter((e) => e[1] > 0).sort((a, b) => b[1] - a[1]);
    ul.replaceChildren();
    if (!entries.length) { ul.appendChild(el('li', 'empty', 'No rejected handshakes.')); return; }
    const max = entries[0][1];
    for (const [name, n] of entries.slice(0, 12)) {
      const li = el('li');
      const nm = el('span', 'name', name); nm.title = name;
      const track = el('span', 'track');
      const fill = el('span', 'fill'); fill.style.width = (100 * n / max).toFixed(1) + '%'; fill.style.display = 'block';
      track.appendChild(fill);
      li.append(nm, track, el('span', 'val', fmtInt(n)));
      ul.appendChild(li);
    }
  }

  // ---------- alerts ----------
  async function refreshAlerts() {
    try {
      const d = await api('GET', '/alerts?limit=50');
      state.alerts = d.alerts || [];
      renderAlerts(null);
    } catch (e) { handleErr(e); }
  }
  function addAlert(a, fresh) {
    if (state.alerts.some((x) => x.id === a.id)) return;
    state.alerts.unshift(a);
    state.alerts = state.alerts.slice(0, 100);
    renderAlerts(fresh ? a.id : null);
    if (fresh) toast('Alert: ' + a.rule + (a.ip ? ' from ' + a.ip : ''), true);
  }
  function renderAlerts(newID) {
    const ul = $('alerts');
    ul.replaceChildren();
    const hour = Date.now() - 3600e3;
    const recent = state.alerts.filter((a) => new Date(a.time).getTime() > hour).length;
    $('kpi-alerts').textContent = fmtInt(recent);
    $('kpi-alerts-sub').textContent = 'in the last hour';
    $('alerts-count').textContent = state.alerts.length ? state.alerts.length + ' recent' : '';
    if (!state.alerts.length) { ul.appendChild(el('li', 'empty', 'No alerts.')); return; }
    for (const a of state.alerts) {
      const li = el('li', 'alert' + (a.id === newID ? ' new' : ''));
      li.dataset.rule = a.rule;
      const r1 = el('div', 'row1');
      r1.append(el('span', 'rule', a.rule), el('span', 'time', clock(a.time)));
      const parts = [a.count + ' ' + a.event.replace(/_/g, ' ') + ' events in ' + a.window + ' (threshold ' + a.threshold + ')'];
      if (a.ip) parts.push('IP ' + a.ip);
      if (a.auto_ban) parts.push('auto-banned');
      const ev = el('div', 'ev', parts.join(' · '));
      li.append(r1, ev);
      if (a.top_ips && a.top_ips.length && !a.ip) {
        li.appendChild(el('div', 'ev', 'Top IPs: ' + a.top_ips.map((x) => x.ip + ' (' + x.count + ')').join(', ')));
      }
      ul.appendChild(li);
    }
  }

  // ---------- connections ----------
  let searchTimer = null;
  $('search').addEventListener('input', () => {
    renderConns();
    clearTimeout(searchTimer);
    searchTimer = setTimeout(refreshConns, 300);
  });

  async function refreshConns() {
    try {
      const q = $('search').value.trim();
      const d = await api('GET', '/connections?limit=1000' + (q ? '&q=' + encodeURIComponent(q) : ''));
      if (q !== $('search').value.trim()) return;
      state.conns = new Map((d.connections || []).map((c) => [c.id, c]));
      state.total = d.total;
      renderConns();
    } catch (e) { handleErr(e); }
  }

  function connMatches(c, q) {
    if (!q) return true;
    return [c.id, c.user, c.ip, c.route].concat(c.channels || []).some((f) => String(f || '').toLowerCase().includes(q));
  }

  function renderConns() {
    const q = $('search').value.trim().toLowerCase();
    const list = [...state.conns.values()].filter((c) => connMatches(c, q))
      .sort((a, b) => new Date(b.since) - new Date(a.since));
    const body = $('conn-body');
    body.replaceChildren();
    for (const c of list) {
      const tr = el('tr');
      tr.dataset.id = c.id;
      tr.dataset.user = c.user || '';
      const id = el('td', 'mono', c.id.slice(0, 10) + '…'); id.title = c.id;
      const since = el('td', 'since', ago(c.since)); since.dataset.since = c.since; since.title = new Date(c.since).toString();
      const ch = el('td');
      const chans = c.channels || [];
      chans.slice(0, 3).forEach((n) => ch.appendChild(el('span', 'chip', n)));
      if (chans.length > 3) ch.appendChild(el('span', 'muted', '+' + (chans.length - 3)));
      if (!chans.length) ch.appendChild(el('span', 'muted', '—'));
      const act = el('td');
      const kick = el('button', 'btn btn-small kick', 'Kick'); kick.type = 'button'; kick.dataset.id = c.id;
      kick.addEventListener('click', () => kickConn(c, kick));
      const ban = el('button', 'btn btn-small ban', 'Ban…'); ban.type = 'button'; ban.dataset.id = c.id;
      ban.addEventListener('click', () => openBan(c));
      act.append(kick, ban);
      tr.append(id, el('td', '', c.user || '—'), el('td', 'mono', c.ip), el('td', 'mono', c.route), since,
        el('td', 'num', fmtInt(c.messages_in) + ' / ' + fmtInt(c.messages_out)),
        el('td', 'num', fmtBytes(c.bytes_in) + ' / ' + fmtBytes(c.bytes_out)), ch, act);
      body.appendChild(tr);
    }
    $('conn-count').textContent = fmtInt(Math.max(state.total, state.conns.size));
    $('conn-empty').hidden = list.length > 0;
    $('conn-empty').textContent = q ? 'No connection matches "' + q + '".' : 'No live connections.';
    $('conn-foot').textContent = state.total > state.conns.size
      ? 'Showing the newest ' + fmtInt(state.conns.size) + ' of ' + fmtInt(state.total) + ' matching connections; narrow the search to see others.'
      : '';
  }

  function renderTimes() {
    for (const td of document.querySelectorAll('td.since')) td.textContent = ago(td.dataset.since);
  }

  async function kickConn(c, btn) {
    btn.disabled = true;
    try {
      await api('POST', '/connections/' + encodeURIComponent(c.id) + '/kick', {});
      const tr = btn.closest('tr');
      if (tr) tr.classList.add('leaving');
      toast('Kicked ' + (c.user || c.ip) + ' (' + c.id.slice(0, 10) + '…)');
    } catch (e) {
      btn.disabled = false;
      handleErr(e, 'Kick failed: ');
    }
  }

  // ---------- bans ----------
  async function refreshBans() {
    try {
      const d = await api('GET', '/bans');
      state.bans = d.bans || [];
      renderBans();
    } catch (e) { handleErr(e); }
  }
  function renderBans() {
    const body = $('ban-body');
    body.replaceChildren();
    for (const b of state.bans) {
      const tr = el('tr');
      tr.dataset.subject = b.subject;
      const act = el('td');
      const un = el('button', 'btn btn-small unban', 'Unban'); un.type = 'button';
      un.addEventListener('click', () => unban(b.subject, un));
      act.appendChild(un);
      tr.append(el('td', 'mono', b.subject), el('td', '', b.reason), el('td', '', ago(b.created)),
        el('td', '', b.permanent ? 'never' : new Date(b.until).toLocaleString('en-GB', { hour12: false })), act);
      body.appendChild(tr);
    }
    $('ban-count').textContent = state.bans.length;
    $('kpi-bans').textContent = fmtInt(state.bans.length);
    $('ban-empty').hidden = state.bans.length > 0;
  }
  async function unban(subject, btn) {
    btn.disabled = true;
    try {
      await api('DELETE', '/bans/' + encodeURIComponent(subject));
      toast('Unbanned ' + subject);
      refreshBans();
    } catch (e) { btn.disabled = false; handleErr(e, 'Unban failed: '); }
  }

  function openBan(c) {
    const sel = $('ban-subject');
    sel.replaceChildren();
    const free = $('ban-subject-free');
    if (c) {
      if (c.user) sel.appendChild(new Option('user:' + c.user, 'user:' + c.user));
      sel.appendChild(new Option('ip:' + c.ip, 'ip:' + c.ip));
      sel.hidden = false; free.hidden = true;
    } else {
      sel.hidden = true; free.hidden = false; free.value = '';
    }
    $('ban-reason').value = '';
    $('ban-error').hidden = true;
    $('ban-dialog').showModal();
  }
  $('add-ban-btn').addEventListener('click', () => openBan(null));
  $('ban-cancel').addEventListener('click', () => $('ban-dialog').close());
  $('ban-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const subject = $('ban-subject').hidden ? $('ban-subject-free').value.trim() : $('ban-subject').value;
    const ttl = $('ban-ttl').value;
    const req = { subject, reason: $('ban-reason').value.trim(), kick: $('ban-kick').checked };
    if (ttl === 'permanent') req.permanent = true; else req.ttl = ttl;
    try {
      const d = await api('POST', '/bans', req);
      $('ban-dialog').close();
      toast('Banned ' + d.ban.subject + (d.kicked.length ? '; closed ' + d.kicked.length + ' connection(s)' : ''));
      refreshBans();
    } catch (e) {
      if (e instanceof AuthError) { $('ban-dialog').close(); handleErr(e); return; }
      $('ban-error').textContent = e.message;
      $('ban-error').hidden = false;
    }
  });

  window.addEventListener('resize', () => { if (!$('app-view').hidden) renderStats(); });
  probe();
})();
