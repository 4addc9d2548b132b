//! `GET /captures/{id}.pcap`: a capture's pcap file, as a download (while
//! the capture runs, what it has written so far).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use engine::service::Service;

pub async fn download(Path(file): Path<String>, State(service): State<Arc<Service>>) -> Response {
    let Some(id) = file.strip_suffix(".pcap") else {
        return (StatusCode::NOT_FOUND, "a capture is /captures/ID.pcap").into_response();
    };
    let Some(path) = service.captures.pcap_path(id) else {
        return (StatusCode::NOT_FOUND, format!("no capture {id:?}")).into_response();
    };
    match tokio::fs::read(&path).await {
        Ok(bytes) => (
            [
                (
                    header::CONTENT_TYPE,
                    "application/vnd.tcpdump.pcap".to_string(),
                ),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{id}.pcap\""),
                ),
            ],
            bytes,
        )
            .into_response(),
        Err(e) => (
            StatusCode::NOT_FOUND,
            format!("capture {id:?} has no file: {e}"),
        )
            .into_response(),
    }
}
