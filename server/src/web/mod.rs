//! The HTTP side of `minivm serve` beyond Leptos: the gate, the event stream,
//! the compiled site and its build identity.
pub mod captures;
pub mod console;
pub mod events;
pub mod guard;
pub mod site;
