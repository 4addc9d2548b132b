// The browser side of the editor, bundled by app/build.rs (esbuild) with
// the npm packages into js/dist/graph.mjs, which wasm-bindgen imports:
// the canvas (canvas.js), the event socket and file plumbing (events.js),
// and the serial console (console.js).
export { Editor } from './canvas.js';
export { Events, downloadText, readFirstFile, readAllFiles } from './events.js';
export { ConsoleView } from './console.js';
