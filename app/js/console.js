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
