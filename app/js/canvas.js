// The canvas: cytoscape and cytoscape-edgehandles from npm. Rust owns the
// topology. The two talk in typed messages, one JSON object each, tagged by
// `type` (app/src/editor/canvas.rs: `ToCanvas` and `FromCanvas`): Rust sends
// what to draw (`receive`: elements, states, select, check, draw_mode,
// fit, captures); this file reports what the user does with the mouse and keyboard
// (drop, move, link, select, delete, context, close_menu, undo, redo),
// which Rust turns into edits.
import cytoscape from 'cytoscape';
import edgehandles from 'cytoscape-edgehandles';

cytoscape.use(edgehandles);

// White line drawings of each kind of device, drawn over the node's colour.
const GLYPHS = {
  router: '<path d="M6 20h28M20 6v28M29 15l5 5-5 5M11 15l-5 5 5 5M15 11l5-5 5 5M15 29l5 5 5-5"/>',
  switch: '<path d="M6 14h26M27 9l5 5-5 5M34 26H8M13 21l-5 5 5 5"/>',
  server: '<path d="M9 8h22v8H9zM9 19h22v8H9zM13 12h2M13 23h2M9 30h22"/>',
  host: '<path d="M7 9h26v17H7zM20 26v5M13 33h14"/>',
};
const glyph = (paths) =>
  'data:image/svg+xml;utf8,' +
  encodeURIComponent(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 40 40" fill="none" stroke="#ffffff" stroke-width="2.5" stroke-linecap="round" stroke-linejoin="round">${paths}</svg>`);

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
  // Device kinds: a shape and a white glyph over the state's colour.
  { selector: 'node[device = "router"]', style: { shape: 'ellipse', width: 42, height: 42, 'background-image': glyph(GLYPHS.router), 'background-fit': 'contain' } },
  { selector: 'node[device = "switch"]', style: { shape: 'rectangle', width: 54, height: 30, 'background-image': glyph(GLYPHS.switch), 'background-fit': 'contain' } },
  { selector: 'node[device = "server"]', style: { shape: 'round-rectangle', width: 32, height: 44, 'background-image': glyph(GLYPHS.server), 'background-fit': 'contain' } },
  { selector: 'node[device = "host"]', style: { 'background-image': glyph(GLYPHS.host), 'background-fit': 'contain' } },
  { selector: 'node[kind = "bridge"]', style: { shape: 'ellipse', width: 30, height: 30, 'background-color': '#e0a030', 'border-width': 2, 'border-color': '#a86f10' } },
  { selector: 'edge', style: { width: 2, 'line-color': '#8a9bb0', label: 'data(label)', 'font-size': 10, 'text-rotation': 'autorotate', 'text-background-color': '#fff', 'text-background-opacity': 0.8, 'curve-style': 'bezier' } },
  // An impaired link is dashed; a link set down looks cut (dotted, faded).
  { selector: 'edge[?impaired]', style: { 'line-style': 'dashed', 'line-dash-pattern': [8, 4], 'line-color': '#e8590c', color: '#c2410c' } },
  { selector: 'edge[?down]', style: { 'line-style': 'dotted', 'line-dash-pattern': [2, 10], opacity: 0.45, color: '#d6336c' } },
  // A link or bridge being captured on.
  { selector: '.capturing', style: { 'underlay-color': '#7048e8', 'underlay-opacity': 0.35, 'underlay-padding': 6 } },
  { selector: 'edge.failing', style: { 'line-color': '#d6336c', 'line-style': 'dashed', width: 3 } },
  { selector: 'edge.passing', style: { 'line-color': '#2f9e44' } },
  { selector: '.test-failing', style: { 'underlay-color': '#d6336c', 'underlay-opacity': 0.35, 'underlay-padding': 8 } },
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

// One editor per canvas element. `onMessage(json)` takes a `FromCanvas`
// message back to Rust.
export class Editor {
  constructor(container, lab, onMessage) {
    this.lab = lab;
    this.emit = (msg) => onMessage(JSON.stringify(msg));
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
      this.emit({ type: 'link', source: source.id(), target: target.id() });
    });
    cy.on('dragfree', 'node', (e) => {
      const n = e.target;
      this.emit({ type: 'move', id: n.id(), x: Math.round(n.position('x')), y: Math.round(n.position('y')) });
    });
    // Right-click (or long press) on a VM, a link or a bridge: Rust shows
    // its menu there.
    cy.on('cxttap', 'node, edge', (e) => {
      const p = e.renderedPosition ?? e.target.renderedPosition();
      this.emit({ type: 'context', id: e.target.id(), x: Math.round(p.x), y: Math.round(p.y) });
    });
    cy.on('tap', () => this.emit({ type: 'close_menu' }));
    const selection = () => this.emit({ type: 'select', ids: cy.$(':selected').map((e) => e.id()) });
    cy.on('select unselect', () => {
      clearTimeout(this.selTimer);
      this.selTimer = setTimeout(selection, 0);
    });
    // Palette: HTML drag and drop onto the canvas (node templates come and
    // go, so the page listens, not each item).
    this.onDragStart = (e) => {
      const item = e.target.closest?.('[data-palette]');
      if (item) e.dataTransfer.setData('text/plain', item.dataset.palette);
    };
    document.addEventListener('dragstart', this.onDragStart);
    container.addEventListener('dragover', (e) => e.preventDefault());
    container.addEventListener('drop', (e) => {
      e.preventDefault();
      const kind = e.dataTransfer.getData('text/plain');
      if (kind !== 'vm' && kind !== 'bridge' && !kind.startsWith('tpl:')) return;
      const r = container.getBoundingClientRect();
      const pan = cy.pan();
      const zoom = cy.zoom();
      const x = Math.round((e.clientX - r.left - pan.x) / zoom);
      const y = Math.round((e.clientY - r.top - pan.y) / zoom);
      this.emit({ type: 'drop', what: kind, x, y });
    });
    this.onKey = (e) => {
      if (typing(e)) return;
      const mod = e.ctrlKey || e.metaKey;
      if (mod && (e.key === 'z' || e.key === 'Z')) {
        e.preventDefault();
        this.emit({ type: e.shiftKey ? 'redo' : 'undo' });
      } else if (mod && e.key === 'y') {
        e.preventDefault();
        this.emit({ type: 'redo' });
      } else if (e.key === 'Delete' || e.key === 'Backspace') {
        const ids = cy.$(':selected').map((x) => x.id());
        if (ids.length) {
          e.preventDefault();
          this.emit({ type: 'delete', ids });
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
      capturing: () => cy.elements('.capturing').map((e) => e.id()).sort(),
      highlighted: () => cy.elements('.test-failing').map((e) => e.id()).sort(),
      // The size of the PNG the PNG button downloads.
      pngSize: () => {
        const bb = cy.elements().boundingBox();
        return { w: bb.w, h: bb.h };
      },
      // Where an edge's middle is on the page, and its label and data.
      edgePagePosition: (id) => {
        const e = cy.getElementById(id);
        const r = cy.container().getBoundingClientRect();
        const p = e.renderedMidpoint();
        return { x: r.left + p.x, y: r.top + p.y };
      },
      edgeData: (id) => {
        const e = cy.getElementById(id);
        return { label: e.data('label'), impaired: !!e.data('impaired'), down: !!e.data('down') };
      },
      state: (vm) => cy.getElementById(`vm:${vm}`).data('state') ?? null,
      device: (vm) => cy.getElementById(`vm:${vm}`).data('device') ?? null,
      ids: () => cy.elements().map((e) => e.id()),
    };
  }

  // One `ToCanvas` message from Rust.
  receive(json) {
    const m = JSON.parse(json);
    switch (m.type) {
      case 'elements': return this.setElements(m.elements);
      case 'states': return this.setStates(m.states);
      case 'select': return this.select(m.ids);
      case 'check': return this.setCheck(m.failing, m.passing);
      case 'draw_mode': return this.setDrawMode(m.on);
      case 'fit': return this.fit();
      case 'captures': return this.setCaptures(m.ids);
      case 'highlight': return this.setHighlight(m.ids);
      case 'png': return this.downloadPng(m.filename);
      default: throw new Error(`unknown message to the canvas: ${m.type}`);
    }
  }

  // Brings the canvas to `elements` (Rust's rendering of the topology):
  // adds, removes and updates by id, so the view keeps its zoom and pan.
  setElements(elements) {
    const cy = this.cy;
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
  setStates(states) {
    this.states = states;
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
  setCheck(failingIds, passingIds) {
    const failing = new Set(failingIds);
    const passing = new Set(passingIds);
    this.cy.batch(() => {
      this.cy.edges().forEach((e) => {
        e.toggleClass('failing', failing.has(e.id()));
        e.toggleClass('passing', !failing.has(e.id()) && passing.has(e.id()));
      });
    });
  }

  // The elements (edge and bridge ids) a capture runs on.
  setCaptures(ids) {
    const on = new Set(ids);
    this.cy.batch(() => {
      this.cy.elements().forEach((e) => e.toggleClass('capturing', on.has(e.id())));
    });
  }

  // What failing lab tests involve: VMs, bridges and links.
  setHighlight(ids) {
    const on = new Set(ids);
    this.cy.batch(() => {
      this.cy.elements().forEach((e) => e.toggleClass('test-failing', on.has(e.id())));
    });
  }

  // The whole drawing (not only what is in view) as a PNG download.
  downloadPng(filename) {
    const uri = this.cy.png({ full: true, bg: '#ffffff', scale: 1 });
    const a = document.createElement('a');
    a.href = uri;
    a.download = filename;
    document.body.appendChild(a);
    a.click();
    a.remove();
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
    document.removeEventListener('dragstart', this.onDragStart);
    this.cy.destroy();
  }
}
