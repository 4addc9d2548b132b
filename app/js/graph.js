// The canvas glue: cytoscape from npm, bundled by app/build.rs into
// js/dist/graph.mjs, which wasm-bindgen imports. Rust decides what to draw;
// this file only draws it.
import cytoscape from 'cytoscape';

let current = null;

const style = [
  { selector: 'node', style: { label: 'data(label)', 'font-size': 12, 'text-valign': 'bottom', 'text-margin-y': 4, color: '#1f2933' } },
  { selector: 'node[kind = "vm"]', style: { shape: 'round-rectangle', width: 46, height: 34, 'background-color': '#4a6fa5', 'border-width': 2, 'border-color': '#2c4a75' } },
  { selector: 'node[kind = "bridge"]', style: { shape: 'ellipse', width: 30, height: 30, 'background-color': '#e0a030', 'border-width': 2, 'border-color': '#a86f10' } },
  { selector: 'edge', style: { width: 2, 'line-color': '#8a9bb0', label: 'data(label)', 'font-size': 10, 'text-rotation': 'autorotate', 'text-background-color': '#fff', 'text-background-opacity': 0.8, 'curve-style': 'bezier' } },
  { selector: ':selected', style: { 'border-color': '#d33', 'line-color': '#d33' } },
];

export function renderGraph(container, lab, elementsJson) {
  if (current) current.destroy();
  const elements = JSON.parse(elementsJson);
  const allPlaced = elements.every((e) => e.group !== 'nodes' || e.position);
  current = cytoscape({
    container,
    elements,
    style,
    layout: allPlaced ? { name: 'preset', fit: true, padding: 30 } : { name: 'grid', padding: 30 },
    wheelSensitivity: 0.3,
  });
  const cy = current;
  // Test hook: end-to-end tests ask cytoscape itself, not the pixels.
  window.__minivmGraph = {
    lab,
    counts: () => ({
      vms: cy.nodes('[kind = "vm"]').length,
      bridges: cy.nodes('[kind = "bridge"]').length,
      links: cy.edges().length,
    }),
  };
  container.dataset.rendered = lab;
}
