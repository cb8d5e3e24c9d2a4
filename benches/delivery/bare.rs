//! Phase (a): a bare HTTP client POSTing to the receiver, with nothing between them. Its
//! threads' CPU per request is the HTTP half of a delivery's floor.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{header, Request};
use hyper_util::rt::TokioIo;

use crate::measure::Measured;
use crate::CONNECTIONS;

/// `size` byte POSTs over [`CONNECTIONS`] keep-alive connections to the receiver's `/hook` for
/// `seconds`, each worker on the load client's runtime (its caller's).
pub(crate) async fn bare_client(receiver: SocketAddr, size: usize, seconds: f64) -> Measured {
    let body = Bytes::from(vec![b'x'; size]);
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(seconds);
    // A request still running at the deadline may take this much longer, no more.
    let hard_deadline = deadline + Duration::from_secs(10);
    let workers: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let body = body.clone();
            tokio::spawn(async move {
                let stream = tokio::net::TcpStream::connect(receiver)
                    .await
                    .expect("the receiver accepts");
                stream.set_nodelay(true).expect("TCP_NODELAY");
                let (mut sender, connection) =
                    hyper::client::conn::http1::handshake(TokioIo::new(stream))
                        .await
                        .expect("HTTP handshake");
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                let (mut ok, mut failed) = (0u64, 0u64);
                while tokio::time::Instant::now() < deadline {
                    let request = Request::post("/hook")
                        .header(header::HOST, "127.0.0.1")
                        .header(header::CONTENT_TYPE, "application/octet-stream")
                        .body(Full::new(body.clone()))
                        .expect("a valid request");
                    let exchange = async {
                        sender.ready().await?;
                        let response = sender.send_request(request).await?;
                        let status = response.status();
                        response.into_body().collect().await?;
                        Ok::<_, hyper::Error>(status)
                    };
                    match tokio::time::timeout_at(hard_deadline, exchange).await {
                        Ok(Ok(StatusCode::NO_CONTENT)) => ok += 1,
                        Ok(Ok(_)) => failed += 1,
                        Ok(Err(_)) | Err(_) => {
                            failed += 1;
                            break;
                        }
                    }
                }
                (ok, failed)
            })
        })
        .collect();
    let (mut ok, mut failed) = (0, 0);
    for worker in workers {
        let (o, f) = worker.await.expect("load worker ran");
        ok += o;
        failed += f;
    }
    let wall = started.elapsed();
    if failed > 0 {
        eprintln!("delivery: {failed} bare HTTP requests failed");
    }
    Measured::new(ok, ok, wall, true)
}
