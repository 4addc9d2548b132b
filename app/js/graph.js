// The canvas glue: cytoscape and cytoscape-edgehandles from npm, bundled by
// app/build.rs into js/dist/graph.mjs, which wasm-bindgen imports. Rust owns
// the topology: this file draws what Rust gives it (setElements, setStates)
// and reports what the user does with the mouse and keyboard as events
// (drop, move, link, select, delete, undo, redo), which Rust turns into
// edits. Also the bits of browser plumbing Rust asks for: the event
// websocket with reconnection, downloading and reading files.
import cytoscape from 'cytoscape';
import edgehandles from 'cytoscape-edgehandles';

cytoscape.use(edgehandles);

const STATE_COLOURS = {
  defined: '#9aa5b1', stopped: '#9aa5b1', starting: '#e0a030', running: '#2f9e44',
  crashed: '#d6336c',
};

const style = [
  { selector: 'node', style: { label: 'data(display)', 'font-size': 12, 'text-valign': 'bottom', 'text-margin-y': 4, 'text-wrap': 'wrap', color: '#1f2933' } },
  { selector: 'node[kind = "vm"]', style: { shape: 'round-rectangle', width: 46, height: 34, 'background-color': '#4a6fa5', 'border-width': 3, 'border-color': '#9aa5b1' } },
  ...Object.entries(STATE_COLOURS).map(([s, c]) => ({ selector: `node[state = "${s}"]`, style: { 'border-color': c } })),
  { selector: 'node[state = "running"]', style: { 'background-color': '#2f9e44' } },
  { selector: 'node[state = "crashed"]', style: { 'background-color': '#d6336c' } },
  { selector: 'node[state = "starting"]', style: { 'background-color': '#e0a030' } },
  { selector: 'node[kind = "bridge"]', style: { shape: 'ellipse', width: 30, height: 30, 'background-color': '#e0a030', 'border-width': 2, 'border-color': '#a86f10' } },
  { selector: 'edge', style: { width: 2, 'line-color': '#8a9bb0', label: 'data(label)', 'font-size': 10, 'text-rotation': 'autorotate', 'text-background-color': '#fff', 'text-background-opacity': 0.8, 'curve-style': 'bezier' } },
  { selector: 'edge.failing', style: { 'line-color': '#d6336c', 'line-style': 'dashed', width: 3 } },
  { selector: 'edge.passing', style: { 'line-color': '#2f9e44' } },
  { selector: ':selected', style: { 'border-color': '#1c7ed6', 'border-width': 4, 'line-color': '#1c7ed6' } },
  { selector: '.eh-handle', style: { 'background-color': '#1c7ed6', width: 10, height: 10, shape: 'ellipse', 'overlay-opacity': 0, 'border-width': 0 } },
  { selector: '.eh-hover', style: { 'background-color': '#1c7ed6' } },
  { selector: '.eh-preview, .eh-ghost-edge', style: { 'line-color': '#1c7ed6', 'line-style': 'dashed' } },
];

function display(data, state) {
  return data.kind === 'vm' && state ? `${data.label}\n${state}` : data.label;
}

function typing(e) {
  const t = e.target;
  return t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.tagName === 'SELECT' || t.isContentEditable);
}

// One editor per canvas element. `onEvent(type, json)` goes back to Rust.
export class Editor {
  constructor(container, lab, onEvent) {
    this.lab = lab;
    this.emit = (type, payload) => onEvent(type, JSON.stringify(payload ?? null));
    this.states = {};
    this.cy = cytoscape({ container, elements: [], style, wheelSensitivity: 0.3, boxSelectionEnabled: true });
    const cy = this.cy;
    this.eh = cy.edgehandles({
      canConnect: (s, t) => s !== t && s.data('kind') !== t.data('kind'),
      edgeParams: () => ({ data: { temporary: true } }),
      snap: true,
      hoverDelay: 50,
    });
    cy.on('ehcomplete', (_e, source, target, added) => {
      added.remove();
      this.emit('link', { source: source.id(), target: target.id() });
    });
    cy.on('dragfree', 'node', (e) => {
      const n = e.target;
      this.emit('move', { id: n.id(), x: Math.round(n.position('x')), y: Math.round(n.position('y')) });
    });
    // Right-click (or long press) on a VM: Rust shows its menu there.
    cy.on('cxttap', 'node[kind = "vm"]', (e) => {
      const p = e.renderedPosition ?? e.target.renderedPosition();
      this.emit('context', { id: e.target.id(), x: Math.round(p.x), y: Math.round(p.y) });
    });
    cy.on('tap', () => this.emit('context', null));
    const selection = () => this.emit('select', cy.$(':selected').map((e) => e.id()));
    cy.on('select unselect', () => {
      clearTimeout(this.selTimer);
      this.selTimer = setTimeout(selection, 0);
    });
    // Palette: HTML drag and drop onto the canvas.
    for (const item of document.querySelectorAll('[data-palette]')) {
      item.addEventListener('dragstart', (e) => e.dataTransfer.setData('text/plain', item.dataset.palette));
    }
    container.addEventListener('dragover', (e) => e.preventDefault());
    container.addEventListener('drop', (e) => {
      e.preventDefault();
      const kind = e.dataTransfer.getData('text/plain');
      if (kind !== 'vm' && kind !== 'bridge') return;
      const r = container.getBoundingClientRect();
      const pan = cy.pan();
      const zoom = cy.zoom();
      const x = Math.round((e.clientX - r.left - pan.x) / zoom);
      const y = Math.round((e.clientY - r.top - pan.y) / zoom);
      this.emit('drop', { kind, x, y });
    });
    this.onKey = (e) => {
      if (typing(e)) return;
      const mod = e.ctrlKey || e.metaKey;
      if (mod && (e.key === 'z' || e.key === 'Z')) {
        e.preventDefault();
        this.emit(e.shiftKey ? 'redo' : 'undo');
      } else if (mod && e.key === 'y') {
        e.preventDefault();
        this.emit('redo');
      } else if (e.key === 'Delete' || e.key === 'Backspace') {
        const ids = cy.$(':selected').map((x) => x.id());
        if (ids.length) {
          e.preventDefault();
          this.emit('delete', ids);
        }
      }
    };
    document.addEventListener('keydown', this.onKey);
    this.firstLayout = true;
    // Test hook: end-to-end tests ask cytoscape itself, not the pixels.
    window.__minivmGraph = this.hook();
    container.dataset.rendered = lab;
  }

  hook() {
    const cy = this.cy;
    return {
      lab: this.lab,
      editor: this,
      counts: () => ({
        vms: cy.nodes('[kind = "vm"]').length,
        bridges: cy.nodes('[kind = "bridge"]').length,
        links: cy.edges().length,
      }),
      // Where a node is on the page, for mouse-driven tests.
      pagePosition: (id) => {
        const n = cy.getElementById(id);
        const r = cy.container().getBoundingClientRect();
        const p = n.renderedPosition();
        return { x: r.left + p.x, y: r.top + p.y };
      },
      failing: () => cy.edges('.failing').map((e) => e.id()).sort(),
      state: (vm) => cy.getElementById(`vm:${vm}`).data('state') ?? null,
      ids: () => cy.elements().map((e) => e.id()),
    };
  }

  // Brings the canvas to `elementsJson` (Rust's rendering of the topology):
  // adds, removes and updates by id, so the view keeps its zoom and pan.
  setElements(elementsJson) {
    const cy = this.cy;
    const elements = JSON.parse(elementsJson);
    const want = new Set(elements.map((e) => e.data.id));
    cy.batch(() => {
      cy.elements().filter((e) => !want.has(e.id())).remove();
      for (const el of elements) {
        const state = this.states[el.data.label];
        el.data.display = display(el.data, el.data.kind === 'vm' ? state : null);
        if (el.data.kind === 'vm') el.data.state = state ?? 'defined';
        const have = cy.getElementById(el.data.id);
        if (have.nonempty()) {
          have.data(el.data);
          if (el.position && !have.grabbed()) have.position(el.position);
        } else {
          cy.add(el);
        }
      }
    });
    if (this.firstLayout) {
      this.firstLayout = false;
      const unplaced = cy.nodes().filter((n) => !elements.find((e) => e.data.id === n.id() && e.position));
      if (unplaced.length) cy.layout({ name: 'grid', padding: 30 }).run();
      cy.fit(undefined, 30);
      if (cy.zoom() > 1.5) cy.zoom({ level: 1.5, renderedPosition: { x: cy.width() / 2, y: cy.height() / 2 } });
    }
    cy.container().dataset.elements = String(cy.elements().length);
  }

  // VM name → state; nodes show it by colour and a second label line.
  setStates(statesJson) {
    this.states = JSON.parse(statesJson);
    const cy = this.cy;
    cy.batch(() => {
      cy.nodes('[kind = "vm"]').forEach((n) => {
        const s = this.states[n.data('label')] ?? 'defined';
        n.data({ state: s, display: display(n.data(), s) });
      });
    });
    window.__minivmLastPaint = performance.now();
  }

  select(ids) {
    const cy = this.cy;
    cy.batch(() => {
      cy.elements().unselect();
      for (const id of ids) cy.getElementById(id).select();
    });
  }

  // The connectivity check's verdict on the links: `failing` and `passing`
  // are lists of edge ids (an edge in both is failing).
  setCheck(failingJson, passingJson) {
    const failing = new Set(JSON.parse(failingJson));
    const passing = new Set(JSON.parse(passingJson));
    this.cy.batch(() => {
      this.cy.edges().forEach((e) => {
        e.toggleClass('failing', failing.has(e.id()));
        e.toggleClass('passing', !failing.has(e.id()) && passing.has(e.id()));
      });
    });
  }

  setDrawMode(on) {
    if (on) this.eh.enableDrawMode();
    else this.eh.disableDrawMode();
  }

  fit() {
    this.cy.fit(undefined, 30);
  }

  destroy() {
    document.removeEventListener('keydown', this.onKey);
    this.cy.destroy();
  }
}

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

// A VM's serial console in the page: xterm.js on the websocket
// /ws/console/LAB/VM (scrollback first, then live; typing goes back).
import { Terminal } from '@xterm/xterm';
import { FitAddon } from '@xterm/addon-fit';
import xtermCss from '@xterm/xterm/css/xterm.css';

function injectXtermCss() {
  if (document.getElementById('xterm-css')) return;
  const s = document.createElement('style');
  s.id = 'xterm-css';
  s.textContent = xtermCss;
  document.head.appendChild(s);
}

export class ConsoleView {
  constructor(container, lab, vm, onStatus) {
    injectXtermCss();
    this.term = new Terminal({ convertEol: false, cursorBlink: true, fontSize: 13, scrollback: 5000 });
    this.fit = new FitAddon();
    this.term.loadAddon(this.fit);
    this.term.open(container);
    this.fit.fit();
    this.resize = new ResizeObserver(() => { try { this.fit.fit(); } catch (_) { /* detached */ } });
    this.resize.observe(container);
    const proto = location.protocol === 'https:' ? 'wss' : 'ws';
    const ws = new WebSocket(`${proto}://${location.host}/ws/console/${encodeURIComponent(lab)}/${encodeURIComponent(vm)}`);
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    ws.onopen = () => { onStatus('connected'); container.dataset.console = 'connected'; };
    ws.onmessage = (m) => this.term.write(new Uint8Array(m.data));
    ws.onclose = () => { onStatus('closed'); container.dataset.console = 'closed'; };
    this.term.onData((d) => { if (ws.readyState === WebSocket.OPEN) ws.send(d); });
    // Test hook: the text the terminal holds.
    window.__minivmConsole = {
      vm,
      text: () => {
        const b = this.term.buffer.active;
        const lines = [];
        for (let i = 0; i < b.length; i++) lines.push(b.getLine(i)?.translateToString(true) ?? '');
        return lines.join('\n');
      },
    };
  }

  focus() {
    this.term.focus();
  }

  destroy() {
    this.resize.disconnect();
    this.ws.close();
    this.term.dispose();
  }
}
