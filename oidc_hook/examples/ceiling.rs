//! The ceiling for the token-hook benchmark (`scripts/bench-hook`): a
//! minimal axum handler on the same runtime settings as `curfew hook
//! serve`, that reads the request body and answers 204 without deciding
//! anything. Prints `ceiling: listening on http://ADDR`.
//!
//! ```text
//! cargo run --release -p curfew-oidc --example ceiling -- 127.0.0.1:0
//! ```
#![forbid(unsafe_code)]

use std::io::Write as _;

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;

async fn hook(_body: Bytes) -> StatusCode {
    StatusCode::NO_CONTENT
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    let mut out = std::io::stdout();
    writeln!(
        out,
        "ceiling: listening on http://{}",
        listener.local_addr()?
    )?;
    out.flush()?;
    axum::serve(listener, Router::new().route("/token-hook", post(hook))).await
}
