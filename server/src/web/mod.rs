//! The HTTP side of `minivm serve` beyond Leptos: the gate, the event stream.
pub mod console;
pub mod events;
pub mod guard;
