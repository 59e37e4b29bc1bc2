//! The listener's own limits: slow clients are cut off, connections are bounded, and
//! shutdown does not wait for a client that never finishes its request.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use api::http::server::{serve, ConnectionLimits};
use axum::extract::ConnectInfo;
use axum::routing::get;
use axum::Router;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

struct Server {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

async fn start(limits: ConnectionLimits) -> Server {
    let router = Router::new().route(
        "/whoami",
        get(|ConnectInfo(client): ConnectInfo<SocketAddr>| async move { client.ip().to_string() }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, router, limits, async {
        let _ = stopped.await;
    }));
    Server { addr, stop, task }
}

fn limits(max_connections: usize) -> ConnectionLimits {
    ConnectionLimits {
        header_read_timeout: Duration::from_millis(300),
        max_connections,
        shutdown_grace: Duration::from_secs(2),
    }
}

/// A client sending its headers a line every 100 ms, for ever. Returns how long the
/// server kept the connection open (`None`: still open after `give_up`).
async fn slowloris(addr: SocketAddr, give_up: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /whoami HTTP/1.1\r\nHost: test\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    while started.elapsed() < give_up {
        if stream.write_all(b"X-Slow: 1\r\n").await.is_err() {
            return Some(started.elapsed());
        }
        // The server closing shows as end of stream (or an error) on a read.
        match tokio::time::timeout(Duration::from_millis(100), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            // A 408 answer or the like before closing also ends the attempt.
            Ok(Ok(_)) => {}
            Err(_) => {}
        }
    }
    None
}

async fn whoami(addr: SocketAddr) -> String {
    let response = reqwest::Client::new()
        .get(format!("http://{addr}/whoami"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    response.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_trickling_its_headers_is_cut_off_while_others_are_served() {
    let server = start(limits(16)).await;
    let slow = tokio::spawn(slowloris(server.addr, Duration::from_secs(10)));
    assert_eq!(whoami(server.addr).await, "127.0.0.1");
    let held = slow
        .await
        .unwrap()
        .expect("the slow client was never cut off");
    assert!(held < Duration::from_secs(5), "held for {held:?}");
    server.stop.send(()).unwrap();
    server.task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connections_are_bounded_and_slots_come_back() {
    // Two slots, both taken by slow clients: the next request waits to be accepted and
    // is served once the slow ones are cut off.
    let server = start(limits(2)).await;
    let slow: Vec<_> = (0..2)
        .map(|_| tokio::spawn(slowloris(server.addr, Duration::from_secs(10))))
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(whoami(server.addr).await, "127.0.0.1");
    for held in slow {
        assert!(held.await.unwrap().is_some());
    }
    // And the slots are free again for ordinary clients.
    for _ in 0..5 {
        assert_eq!(whoami(server.addr).await, "127.0.0.1");
    }
    server.stop.send(()).unwrap();
    server.task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_does_not_wait_for_a_client_that_never_finishes() {
    let server = start(ConnectionLimits {
        // Longer than the grace period: only the grace period can end this.
        header_read_timeout: Duration::from_secs(60),
        ..limits(16)
    })
    .await;
    let slow = tokio::spawn(slowloris(server.addr, Duration::from_secs(30)));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let asked = Instant::now();
    server.stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), server.task)
        .await
        .expect("shutdown waited for the slow client")
        .unwrap();
    assert!(asked.elapsed() < Duration::from_secs(5));
    assert!(
        slow.await.unwrap().is_some(),
        "the slow client's connection is closed at shutdown"
    );
}
