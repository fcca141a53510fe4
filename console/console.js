// The pocketkv web console. Plain DOM, no framework. Every call goes through the server's
// authenticated HTTP routes (/v1/stats, /v1/tx, /v1/command); the credentials live in `auth`
// only. Text from the server reaches the page through textContent only, never as HTML.
'use strict';

const $ = (id) => document.getElementById(id);
const HISTORY_POINTS = 300;
const POLL_MS = 1000;
const CONSOLE_ENTRIES = 1000;

let auth = null;
let pollTimer = null;
let lastSample = null;
let view = 'overview';
let infoAge = 0;
const series = { ops: [], p50: [], p99: [], memory: [], clients: [] };

class AuthError extends Error {}

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function notice(text) {
  const box = $('notice');
  box.textContent = text || '';
  box.hidden = !text;
}

async function call(method, path, body) {
  const headers = {};
  if (auth) headers.Authorization = auth;
  const response = await fetch(path, { method, headers, body, cache: 'no-store', credentials: 'omit' });
  if (response.status === 401) throw new AuthError('wrong user name or password');
  return response;
}

// Runs commands through POST /v1/tx; arguments are strings or {base64} objects.
async function tx(commands) {
  const response = await call('POST', '/v1/tx', JSON.stringify(commands));
  const text = await response.text();
  if (!response.ok) throw new Error(text.trim());
  return JSON.parse(text);
}

async function one(...args) {
  const [reply] = await tx([args]);
  if (reply && typeof reply === 'object' && 'error' in reply) throw new Error(reply.error);
  return reply;
}

// ---- bytes, keys and their display

const encoder = new TextEncoder();

function fromBase64(text) {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

function toBase64(bytes) {
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

// A key or value as the server's JSON gives it: a string, or {base64} for bytes not UTF-8.
function bytesOf(value) {
  return typeof value === 'string' ? encoder.encode(value) : fromBase64(value.base64);
}

function utf8(bytes) {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch (e) {
    return null;
  }
}

// Bytes as readable text: printable ASCII as is, anything else as \xHH.
function escaped(bytes) {
  let out = '';
  for (const b of bytes) {
    if (b === 0x5c) out += '\\\\';
    else if (b >= 0x20 && b < 0x7f) out += String.fromCharCode(b);
    else out += '\\x' + b.toString(16).padStart(2, '0');
  }
  return out;
}

function showKey(key) {
  return typeof key === 'string' ? key : escaped(fromBase64(key.base64));
}

function argOf(bytes) {
  const text = utf8(bytes);
  return text !== null ? text : { base64: toBase64(bytes) };
}

function hexDump(bytes) {
  const lines = [];
  for (let at = 0; at < bytes.length; at += 16) {
    const row = bytes.subarray(at, at + 16);
    const hex = Array.from(row, (b) => b.toString(16).padStart(2, '0')).join(' ');
    const ascii = Array.from(row, (b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.')).join('');
    lines.push(at.toString(16).padStart(6, '0') + '  ' + hex.padEnd(47) + '  ' + ascii);
  }
  return lines.join('\n') || '(empty)';
}

function hexPlain(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(' ');
}

function parseHex(text) {
  const digits = text.replace(/\s+/g, '');
  if (!/^([0-9a-fA-F]{2})*$/.test(digits)) return null;
  const bytes = new Uint8Array(digits.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(digits.substr(i * 2, 2), 16);
  return bytes;
}

function human(n) {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return (i ? n.toFixed(1) : String(Math.round(n))) + ' ' + units[i];
}

function duration(seconds) {
  seconds = Number(seconds);
  if (seconds < 60) return seconds + ' s';
  if (seconds < 3600) return Math.floor(seconds / 60) + ' min ' + (seconds % 60) + ' s';
  if (seconds < 86400) return Math.floor(seconds / 3600) + ' h ' + Math.floor((seconds % 3600) / 60) + ' min';
  return Math.floor(seconds / 86400) + ' d ' + Math.floor((seconds % 86400) / 3600) + ' h';
}

function micros(us) {
  if (us === null) return '–';
  if (us >= 1000000) return (us / 1000000) + ' s';
  if (us >= 1000) return (us / 1000) + ' ms';
  return us + ' µs';
}

// ---- sign-in

function basic(user, password) {
  return 'Basic ' + toBase64(encoder.encode(user + ':' + password));
}

async function start() {
  try {
    await call('GET', '/v1/stats').then((r) => r.json());
    signedIn();
  } catch (e) {
    if (e instanceof AuthError) {
      $('login').hidden = false;
      $('login-pass').focus();
    } else {
      notice('Cannot reach the server: ' + e.message);
    }
  }
}

$('login').addEventListener('submit', async (event) => {
  event.preventDefault();
  const user = $('login-user').value;
  const password = $('login-pass').value;
  auth = user ? basic(user, password) : 'Bearer ' + password;
  $('login-error').textContent = '';
  try {
    await call('GET', '/v1/stats').then((r) => r.json());
    $('login').hidden = true;
    $('login-pass').value = '';
    $('sign-out').hidden = false;
    signedIn();
  } catch (e) {
    auth = null;
    $('login-error').textContent = e instanceof AuthError ? 'Wrong user name or password.' : 'Cannot reach the server: ' + e.message;
  }
});

$('sign-out').addEventListener('click', () => location.reload());

function signedIn() {
  $('tabs').hidden = false;
  $('app').hidden = false;
  poll();
  refreshOverview();
}

// Any failed call lands here: a 401 means the password changed, so back to the sign-in.
function failed(error) {
  if (error instanceof AuthError) {
    clearTimeout(pollTimer);
    $('app').hidden = true;
    $('tabs').hidden = true;
    $('login').hidden = false;
    $('login-error').textContent = 'The server no longer accepts these credentials.';
    return;
  }
  notice(String(error.message || error));
}

// ---- views

document.querySelectorAll('#tabs button').forEach((button) => {
  button.addEventListener('click', () => show(button.dataset.view));
});

function show(name) {
  view = name;
  document.querySelectorAll('#tabs button').forEach((button) => {
    if (button.dataset.view === name) button.setAttribute('aria-current', 'page');
    else button.removeAttribute('aria-current');
  });
  document.querySelectorAll('main > section').forEach((section) => {
    section.hidden = section.id !== 'view-' + name;
  });
  notice('');
  if (name === 'overview') refreshOverview();
  if (name === 'keys' && !$('key-table').tBodies[0].rows.length) searchKeys(true);
  if (name === 'console') $('console-input').focus();
  if (name === 'clients') refreshClients();
  if (name === 'slowlog') refreshSlowlog();
}

// ---- overview

const FACTS = [
  ['Version', 'pocketkv version (and the Redis version it answers as)', (i) => i.pocketkv_version + ' (redis ' + i.redis_version + ')'],
  ['Uptime', 'time since the server started', (i) => duration(i.uptime_in_seconds)],
  ['Role', 'primary (master) serves writes; a replica follows a primary', role],
  ['Keys', 'keys in the store now (DBSIZE)', (i, s) => String(s.keys)],
  ['Memory', 'estimated bytes of keys and values (used_memory) against the maxmemory limit', (i, s) => human(s.used_memory) + (s.maxmemory ? ' of ' + human(s.maxmemory) : ' (no limit)')],
  ['Resident memory', 'memory the process holds from the system (RSS)', (i, s) => human(s.rss)],
  ['Clients', 'connections open now: RESP, text and HTTP (this page included)', (i, s) => String(s.clients)],
  ['Last snapshot', 'when the last snapshot was written, and whether it succeeded', (i) => new Date(i.rdb_last_save_time * 1000).toLocaleString() + ' · ' + i.rdb_last_bgsave_status],
  ['Changes since', 'writes not yet in a snapshot', (i) => i.rdb_changes_since_last_save],
  ['Append-only log', 'the log of every write; fsync policy and the current segment size', (i) => (i.aof_enabled === '1' ? 'on · fsync ' + i.aof_fsync + ' · ' + human(Number(i.aof_current_size)) : 'off')],
  ['Last error', 'the last snapshot or log write error, if any', (i) => i.aof_last_write_error || i.rdb_last_error || 'none'],
];

function role(info) {
  if (info.role === 'slave') {
    let text = 'replica of ' + info.master_host + ':' + info.master_port + ' · link ' + info.master_link_status;
    if (info.master_last_io_seconds_ago !== undefined) text += ' · last heard ' + info.master_last_io_seconds_ago + ' s ago';
    return text;
  }
  const replicas = [];
  for (let n = 0; info['slave' + n]; n++) {
    const fields = Object.fromEntries(info['slave' + n].split(',').map((kv) => kv.split('=')));
    replicas.push(fields.ip + ':' + fields.port + ' ' + fields.state + ', lag ' + fields.lag + ' s');
  }
  return 'primary · ' + (replicas.length ? replicas.join('; ') : 'no replicas');
}

function parseInfo(text) {
  const info = {};
  for (const line of text.split('\n')) {
    const at = line.indexOf(':');
    if (at > 0 && line[0] !== '#') info[line.slice(0, at)] = line.slice(at + 1).trim();
  }
  return info;
}

async function refreshOverview() {
  if (!lastSample) return;
  try {
    const info = parseInfo(await one('INFO'));
    const list = $('facts');
    const items = FACTS.map(([name, hint, value]) => {
      const item = el('div');
      item.title = hint;
      item.append(el('dt', name), el('dd', value(info, lastSample)));
      return item;
    });
    list.replaceChildren(...items);
    $('server-line').textContent = 'pocketkv ' + info.pocketkv_version + ' · ' + (info.role === 'slave' ? 'replica' : 'primary') + ' · port ' + info.tcp_port;
    infoAge = 0;
  } catch (e) {
    failed(e);
  }
}

// ---- live charts

function percentile(deltas, bounds, total, q) {
  if (!total) return null;
  let seen = 0;
  for (let i = 0; i < deltas.length; i++) {
    seen += deltas[i];
    if (seen >= q * total) return i < bounds.length ? bounds[i] : bounds[bounds.length - 1] * 2;
  }
  return null;
}

function push(list, value) {
  list.push(value);
  if (list.length > HISTORY_POINTS) list.shift();
}

async function poll() {
  clearTimeout(pollTimer);
  try {
    const sample = await call('GET', '/v1/stats').then((r) => r.json());
    if (lastSample && sample.uptime_ms > lastSample.uptime_ms) {
      const seconds = (sample.uptime_ms - lastSample.uptime_ms) / 1000;
      const deltas = sample.latency.map((n, i) => n - (lastSample.latency[i] || 0));
      const total = deltas.reduce((a, b) => a + b, 0);
      push(series.ops, (sample.commands - lastSample.commands) / seconds);
      push(series.p50, percentile(deltas, sample.latency_bounds_us, total, 0.5));
      push(series.p99, percentile(deltas, sample.latency_bounds_us, total, 0.99));
      push(series.memory, sample.used_memory);
      push(series.clients, sample.clients);
      drawCharts();
    }
    lastSample = sample;
    if (view === 'overview' && ++infoAge >= 5) refreshOverview();
    pollTimer = setTimeout(poll, POLL_MS);
  } catch (e) {
    failed(e);
    if (!(e instanceof AuthError)) pollTimer = setTimeout(poll, POLL_MS * 5);
  }
}

function points(values, max) {
  const step = 300 / (HISTORY_POINTS - 1);
  const offset = HISTORY_POINTS - values.length;
  const out = [];
  values.forEach((v, i) => {
    if (v !== null) out.push(((offset + i) * step).toFixed(1) + ',' + (100 - (v / max) * 96).toFixed(1));
  });
  return out.join(' ');
}

function draw(id, lines, format) {
  const figure = $(id);
  const svg = figure.querySelector('svg');
  const all = lines.flatMap((l) => l.values).filter((v) => v !== null);
  const max = Math.max(1, ...all);
  const nodes = lines.map((line) => {
    const poly = document.createElementNS('http://www.w3.org/2000/svg', 'polyline');
    poly.setAttribute('points', points(line.values, max));
    if (line.className) poly.setAttribute('class', line.className);
    return poly;
  });
  svg.replaceChildren(...nodes);
  const now = lines.map((l) => format(l.values.length ? l.values[l.values.length - 1] : null));
  figure.querySelector('.now').textContent = now.join(' / ');
  figure.querySelector('.scale').textContent = 'top: ' + format(max) + ' · last ' + Math.ceil(lines[0].values.length / 60) + ' min';
}

function drawCharts() {
  draw('chart-ops', [{ values: series.ops }], (v) => (v === null ? '–' : Math.round(v) + '/s'));
  draw('chart-latency', [{ values: series.p50 }, { values: series.p99, className: 'p99' }], micros);
  draw('chart-memory', [{ values: series.memory }], (v) => (v === null ? '–' : human(v)));
  draw('chart-clients', [{ values: series.clients }], (v) => (v === null ? '–' : String(Math.round(v))));
}

// ---- key browser

const PAGE_KEYS = 50;
const SCAN_ROUNDS = 20;
let cursor = '0';
let shownKeys = 0;
let current = null;
// Answers arrive in any order: only the latest search and the latest opened key are shown.
let searchSeq = 0;
let openSeq = 0;

$('key-search').addEventListener('submit', (event) => {
  event.preventDefault();
  searchKeys(true);
});
$('key-more').addEventListener('click', () => searchKeys(false));

// SCAN from the cursor until a page is full or the walk ends, then each key's size and TTL.
async function searchKeys(fresh) {
  const body = $('key-table').tBodies[0];
  const seq = ++searchSeq;
  if (fresh) {
    cursor = '0';
    shownKeys = 0;
    body.replaceChildren();
  }
  const pattern = $('key-pattern').value || '*';
  try {
    let keys = [];
    for (let round = 0; round < SCAN_ROUNDS && keys.length < PAGE_KEYS; round++) {
      const [next, found] = await one('SCAN', cursor, 'MATCH', pattern, 'COUNT', '100');
      if (seq !== searchSeq) return;
      keys = keys.concat(found);
      cursor = next;
      if (cursor === '0') break;
    }
    const facts = keys.length ? await tx(keys.flatMap((k) => [['STRLEN', k], ['PTTL', k]])) : [];
    if (seq !== searchSeq) return;
    keys.forEach((key, i) => body.append(keyRow(key, facts[2 * i], facts[2 * i + 1])));
    shownKeys += keys.length;
    $('key-count').textContent = shownKeys + (shownKeys === 1 ? ' key' : ' keys') + (cursor === '0' ? '' : ' so far');
    $('key-more').hidden = cursor === '0';
  } catch (e) {
    failed(e);
  }
}

function ttlText(pttl) {
  if (typeof pttl !== 'number') return '–';
  if (pttl === -1) return 'none';
  if (pttl === -2) return 'gone';
  return duration(Math.ceil(pttl / 1000));
}

function keyRow(key, size, pttl) {
  const row = el('tr');
  const cell = el('td');
  const open = el('button', showKey(key));
  open.type = 'button';
  open.addEventListener('click', () => openKey(key));
  cell.append(open);
  row.append(cell, el('td', typeof size === 'number' ? human(size) : '–'), el('td', ttlText(pttl)));
  return row;
}

async function openKey(key) {
  const seq = ++openSeq;
  try {
    const [value, pttl] = await tx([['GET', key], ['PTTL', key]]);
    if (seq !== openSeq) return;
    if (value === null) {
      notice('The key ' + showKey(key) + ' no longer exists.');
      return;
    }
    current = { key, bytes: bytesOf(value), pttl };
    const card = $('key-detail');
    card.hidden = false;
    $('key-name').textContent = showKey(key);
    $('key-editor').hidden = true;
    $('key-ttl').value = pttl > 0 ? Math.ceil(pttl / 1000) : '';
    renderValue();
    card.scrollIntoView({ block: 'nearest' });
    $('key-edit-open').focus();
  } catch (e) {
    failed(e);
  }
}

function viewMode() {
  return document.querySelector('input[name="view"]:checked').value;
}

document.querySelectorAll('input[name="view"]').forEach((radio) => radio.addEventListener('change', renderValue));

function renderValue() {
  if (!current) return;
  const bytes = current.bytes;
  const text = utf8(bytes);
  const mode = viewMode();
  let shown;
  let note = human(bytes.length) + ' · TTL ' + ttlText(current.pttl);
  if (mode === 'hex') {
    shown = hexDump(bytes);
  } else if (text === null) {
    shown = escaped(bytes);
    note += ' · not UTF-8: bytes shown as \\xHH, edited as hex';
  } else if (mode === 'json') {
    try {
      shown = JSON.stringify(JSON.parse(text), null, 2);
    } catch (e) {
      shown = text;
      note += ' · not JSON';
    }
  } else {
    shown = text;
  }
  $('key-value').textContent = shown;
  $('key-meta').textContent = note;
}

// Text values are edited as text; other values, or any value in the hex view, as hex digits,
// so no byte is lost on the way back.
function editsAsHex() {
  return viewMode() === 'hex' || utf8(current.bytes) === null;
}

$('key-edit-open').addEventListener('click', () => {
  if (!current) return;
  const hex = editsAsHex();
  $('key-edit').value = hex ? hexPlain(current.bytes) : utf8(current.bytes);
  $('key-edit-form').textContent = hex ? '(hex digits; spaces are ignored)' : '(text, saved as UTF-8)';
  $('key-editor').hidden = false;
  $('key-edit').focus();
});

$('key-cancel').addEventListener('click', () => {
  $('key-editor').hidden = true;
});

$('key-save').addEventListener('click', async () => {
  if (!current) return;
  const typed = $('key-edit').value;
  const bytes = editsAsHex() ? parseHex(typed) : encoder.encode(typed);
  if (bytes === null) {
    notice('The new value is not hex digits in pairs.');
    return;
  }
  try {
    await one('SET', current.key, { base64: toBase64(bytes) }, 'KEEPTTL');
    notice('');
    await openKey(current.key);
  } catch (e) {
    failed(e);
  }
});

$('key-ttl-set').addEventListener('click', async () => {
  if (!current) return;
  const typed = $('key-ttl').value.trim();
  if (typed && !/^[1-9][0-9]*$/.test(typed)) {
    notice('The TTL is a whole number of seconds above zero, or empty for none.');
    return;
  }
  try {
    await one(...(typed ? ['EXPIRE', current.key, typed] : ['PERSIST', current.key]));
    notice('');
    await openKey(current.key);
  } catch (e) {
    failed(e);
  }
});

$('key-delete').addEventListener('click', async () => {
  if (!current) return;
  const key = current.key;
  if (!(await confirmed('Delete the key ' + showKey(key) + '? This cannot be undone.', 'Delete'))) return;
  try {
    await one('DEL', key);
    current = null;
    $('key-detail').hidden = true;
    searchKeys(true);
  } catch (e) {
    failed(e);
  }
});

// A modal question; resolves true when the person confirms. Escape cancels ('cancel' fires
// at once, unlike 'close', which comes later and could reach the next question's handler).
function confirmed(question, action) {
  const dialog = $('confirm');
  $('confirm-text').textContent = question;
  $('confirm-ok').textContent = action;
  return new Promise((resolve) => {
    const done = (answer) => {
      $('confirm-ok').onclick = null;
      $('confirm-cancel').onclick = null;
      dialog.oncancel = null;
      if (dialog.open) dialog.close();
      resolve(answer);
    };
    $('confirm-ok').onclick = () => done(true);
    $('confirm-cancel').onclick = () => done(false);
    dialog.oncancel = (event) => {
      event.preventDefault();
      done(false);
    };
    dialog.showModal();
    $('confirm-cancel').focus();
  });
}

// ---- command console

const commandHistory = [];
let historyAt = 0;

$('console-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const input = $('console-input');
  const line = input.value.trim();
  if (!line) return;
  commandHistory.push(line);
  historyAt = commandHistory.length;
  input.value = '';
  const log = $('console-log');
  log.append(el('span', '> ' + line + '\n', 'cmd'));
  try {
    const response = await call('POST', '/v1/command', line);
    log.append(el('span', await response.text()));
  } catch (e) {
    if (e instanceof AuthError) failed(e);
    else log.append(el('span', '(error) ' + e.message + '\n'));
  }
  // The log keeps the last few hundred exchanges, so a long session cannot grow the page.
  while (log.childNodes.length > CONSOLE_ENTRIES) log.firstChild.remove();
  log.scrollTop = log.scrollHeight;
});

$('console-input').addEventListener('keydown', (event) => {
  if (event.key !== 'ArrowUp' && event.key !== 'ArrowDown') return;
  event.preventDefault();
  historyAt = Math.max(0, Math.min(commandHistory.length, historyAt + (event.key === 'ArrowUp' ? -1 : 1)));
  event.target.value = commandHistory[historyAt] || '';
});

// ---- clients and slow log

function parseClients(text) {
  return text.split('\n').filter(Boolean).map((line) => {
    const fields = {};
    for (const pair of line.split(' ')) {
      const at = pair.indexOf('=');
      if (at > 0) fields[pair.slice(0, at)] = pair.slice(at + 1);
    }
    return fields;
  });
}

$('clients-refresh').addEventListener('click', refreshClients);

async function refreshClients() {
  try {
    const clients = parseClients(await one('CLIENT', 'LIST'));
    const rows = clients.map((c) => {
      const row = el('tr');
      const kill = el('button', 'Kill', 'danger');
      kill.type = 'button';
      kill.setAttribute('aria-label', 'Kill client ' + c.id + ' at ' + c.addr);
      kill.addEventListener('click', () => killClient(c));
      const action = el('td');
      action.append(kill);
      row.append(el('td', c.id), el('td', c.addr), el('td', c.name), el('td', c.user), el('td', duration(c.age)), el('td', duration(c.idle)), el('td', c.cmd), action);
      return row;
    });
    $('client-table').tBodies[0].replaceChildren(...rows);
  } catch (e) {
    failed(e);
  }
}

async function killClient(client) {
  if (!(await confirmed('Disconnect client ' + client.id + ' (' + client.addr + ')?', 'Kill'))) return;
  try {
    await one('CLIENT', 'KILL', 'ID', client.id);
  } catch (e) {
    failed(e);
  }
  refreshClients();
}

$('slowlog-refresh').addEventListener('click', refreshSlowlog);

async function refreshSlowlog() {
  try {
    const [entries, threshold] = await tx([['SLOWLOG', 'GET', '100'], ['CONFIG', 'GET', 'slowlog-log-slower-than']]);
    if (Array.isArray(threshold)) $('slowlog-threshold').textContent = 'Commands taking at least ' + micros(Number(threshold[1])) + ' are kept (slowlog-log-slower-than).';
    const rows = (Array.isArray(entries) ? entries : []).map(([id, when, took, args, addr, name]) => {
      const row = el('tr');
      const command = args.map((a) => showKey(a)).join(' ');
      row.append(el('td', id), el('td', new Date(when * 1000).toLocaleString()), el('td', micros(took)), el('td', command), el('td', addr + (name ? ' ' + name : '')));
      return row;
    });
    $('slow-table').tBodies[0].replaceChildren(...rows);
  } catch (e) {
    failed(e);
  }
}

start();
