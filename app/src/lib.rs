//! The MiniVM web app, shared by the server (feature `ssr`) and the browser
//! (feature `hydrate`).
//!
//! API boundary: the browser talks to the host only through the server
//! functions in [`api`]; their server halves call the engine. Nothing here
//! runs QEMU or touches the network itself.

pub mod api;
pub mod edit;
mod editor;
pub mod graph;
mod labs;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::{
    components::{Route, Router, Routes},
    StaticSegment,
};

/// The HTML document the server renders around the app.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <link rel="icon" href="/favicon.svg" type="image/svg+xml" />
                <HydrationScripts options />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    // Effects run only in the browser, after hydration: tests wait for this.
    Effect::new(move |_| {
        if let Some(body) = document().body() {
            let _ = body.set_attribute("data-hydrated", "true");
        }
    });
    view! {
        <Stylesheet id="leptos" href="/pkg/minivm.css" />
        <Title text="MiniVM Launcher" />
        <Router>
            <Routes fallback=|| view! { <p class="error">"Page not found."</p> }>
                <Route path=StaticSegment("") view=labs::LabsPage />
            </Routes>
        </Router>
    }
}
