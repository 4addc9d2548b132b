//! `GET /ws/console/{lab}/{vm}`: a VM's serial console. The scrollback
//! first, then live output, as binary frames; whatever the client sends is
//! typed into the console. Any number of clients may attach; closing one
//! releases nothing the VM or the others need.

use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use engine::service::Service;
use tokio::sync::broadcast::error::RecvError;

/// The largest console input message taken.
const MAX_INPUT: usize = 64 * 1024;

pub async fn handler(
    ws: WebSocketUpgrade,
    Path((lab, vm)): Path<(String, String)>,
    State(service): State<Arc<Service>>,
) -> Response {
    if topology::names::check_name(&lab).is_err() || topology::names::check_name(&vm).is_err() {
        return (StatusCode::BAD_REQUEST, "invalid lab or VM name").into_response();
    }
    let console = match service.engine.console(&lab, &vm) {
        Ok(c) => c,
        Err(e) => return (StatusCode::CONFLICT, engine::report(&e)).into_response(),
    };
    // A frame is what a person types or pastes: 64 KiB bounds what one
    // message can queue.
    ws.max_message_size(MAX_INPUT)
        .max_frame_size(MAX_INPUT)
        .on_upgrade(move |socket| attach(socket, console))
}

async fn attach(mut socket: WebSocket, console: Arc<engine::console::Console>) {
    let (scrollback, mut rx) = console.attach();
    if socket
        .send(Message::Binary(scrollback.into()))
        .await
        .is_err()
    {
        return;
    }
    loop {
        tokio::select! {
            out = rx.recv() => match out {
                Ok(bytes) => if socket.send(Message::Binary(bytes.to_vec().into())).await.is_err() { return },
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return,
            },
            input = socket.recv() => match input {
                // Waits (this viewer alone) while the guest does not read.
                Some(Ok(Message::Text(t))) => { let _ = console.send(t.as_bytes().to_vec()).await; }
                Some(Ok(Message::Binary(b))) => { let _ = console.send(b.to_vec()).await; }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                _ => {}
            },
        }
    }
}
