// Browser plumbing the editor asks for: the event websocket with
// reconnection, downloading and reading files.

// The event stream, reconnecting with backoff; `since` follows the last
// event seen so that a reconnect catches up. `onMessage(json)` per event,
// `onStatus(text)` on connection changes.
export class Events {
  constructor(since, onMessage, onStatus) {
    this.since = since;
    this.onMessage = onMessage;
    this.onStatus = onStatus;
    this.delay = 250;
    this.closed = false;
    this.connect();
  }

  connect() {
    if (this.closed) return;
    const proto = location.protocol === 'https:' ? 'wss' : 'ws';
    const ws = new WebSocket(`${proto}://${location.host}/ws/events?since=${this.since}`);
    this.ws = ws;
    ws.onopen = () => {
      this.delay = 250;
      this.onStatus('connected');
      document.body.dataset.events = 'connected';
    };
    ws.onmessage = (m) => {
      try {
        const e = JSON.parse(m.data);
        if (e.seq > this.since) this.since = e.seq;
        if (e.type === 'vm_state') window.__minivmLastEvent = performance.now();
      } catch (_) { /* Rust reports bad JSON */ }
      this.onMessage(m.data);
    };
    ws.onclose = () => {
      document.body.dataset.events = 'disconnected';
      if (this.closed) return;
      this.onStatus('reconnecting');
      setTimeout(() => this.connect(), this.delay);
      this.delay = Math.min(this.delay * 2, 5000);
    };
  }

  close() {
    this.closed = true;
    if (this.ws) this.ws.close();
  }
}

export function downloadText(filename, text) {
  const url = URL.createObjectURL(new Blob([text], { type: 'application/json' }));
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

// The text of the first file chosen in an <input type=file>.
export function readFirstFile(input, onText) {
  const f = input.files && input.files[0];
  if (f) f.text().then(onText);
}

// Every file chosen (a folder's, with their paths in it): a JSON object
// path → text. A folder's own name is left out of the paths, so that they
// are relative to the folder, as a .clab.yml names them.
export function readAllFiles(input, onJson) {
  const files = Array.from(input.files || []);
  Promise.all(files.map((f) => f.text().then((t) => {
    const rel = f.webkitRelativePath || f.name;
    const i = rel.indexOf('/');
    return [f.webkitRelativePath && i >= 0 ? rel.slice(i + 1) : rel, t];
  }))).then((pairs) => onJson(JSON.stringify(Object.fromEntries(pairs))));
}
