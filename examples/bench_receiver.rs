//! A webhook receiver for the benchmark: answers 204 to every POST (any path) and counts them;
//! `GET /count` returns the count so far as plain text. It checks no signature and keeps no
//! body, so that it costs the delivering server as little as a receiver can.
//!
//!   bench_receiver [PORT]        (127.0.0.1, port 18195 unless given)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::http::Method;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};

/// POSTs answered so far.
static RECEIVED: AtomicU64 = AtomicU64::new(0);

/// Any POST is a delivery: read its body, count it, answer 204.
async fn receive(request: HttpRequest, _body: web::Bytes) -> HttpResponse {
    if request.method() != Method::POST {
        return HttpResponse::MethodNotAllowed().finish();
    }
    RECEIVED.fetch_add(1, Ordering::Relaxed);
    HttpResponse::NoContent().finish()
}

async fn count() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body(RECEIVED.load(Ordering::Relaxed).to_string())
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args().nth(1).map(|p| p.parse().expect("PORT must be a number")).unwrap_or(18195);
    // One worker: a delivery costs it microseconds, and the server and wrk need the cores.
    HttpServer::new(|| App::new().route("/count", web::get().to(count)).default_service(web::to(receive)))
        .workers(1)
        .bind(("127.0.0.1", port))?
        .run()
        .await
}
