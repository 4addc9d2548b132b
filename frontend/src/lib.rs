//! The wasm entry point: hydrates the server-rendered page. No logic here.

// The editor's view types are deep (Leptos builds them from the markup).
#![recursion_limit = "256"]

#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
}
