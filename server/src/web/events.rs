//! `GET /ws/events?since=SEQ`: the event stream. First what the page missed
//! after `since` (or a `resync`), then live events, as JSON text frames.

use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use engine::service::Service;
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;

#[derive(Deserialize)]
pub struct Since {
    #[serde(default)]
    since: u64,
}

pub async fn handler(
    ws: WebSocketUpgrade,
    Query(q): Query<Since>,
    State(service): State<Arc<Service>>,
) -> Response {
    ws.on_upgrade(move |socket| stream(socket, service, q.since))
}

async fn stream(mut socket: WebSocket, service: Arc<Service>, since: u64) {
    let (missed, mut rx) = service.bus.subscribe(since);
    for e in missed {
        if send(&mut socket, &e).await.is_err() {
            return;
        }
    }
    loop {
        tokio::select! {
            e = rx.recv() => match e {
                Ok(e) => if send(&mut socket, &e).await.is_err() { return },
                // Too slow a reader: tell it to reload rather than skip silently.
                Err(RecvError::Lagged(_)) => {
                    let resync = topology::events::Event { seq: 0, kind: topology::events::EventKind::Resync };
                    let _ = send(&mut socket, &resync).await;
                    return;
                }
                Err(RecvError::Closed) => return,
            },
            m = socket.recv() => match m {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                _ => {}
            },
        }
    }
}

async fn send(socket: &mut WebSocket, e: &topology::events::Event) -> Result<(), axum::Error> {
    socket
        .send(Message::Text(
            serde_json::to_string(e).expect("serializes").into(),
        ))
        .await
}
