//! The retries of one call are counted for the thread that made it
//! ([`kplug_store::last_call_retries`], what a probe's backend event reports): a server that
//! answers every request `503 Slow Down` makes the client retry until its retry time runs
//! out, and the count equals the requests the server saw (each failed in a way the client
//! retries; the last one when the retry time had run out). A test binary of
//! its own: it sets the process's credentials, which no other test may read meanwhile.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use kplug_store::{Store, StoreOptions, last_call_retries};

/// Answer every HTTP request on `listener` with 503, counting them.
fn slow_down(listener: TcpListener, seen: Arc<AtomicU32>) {
    for conn in listener.incoming() {
        let Ok(conn) = conn else { return };
        let seen = seen.clone();
        std::thread::spawn(move || {
            let mut r = BufReader::new(conn.try_clone().unwrap());
            let mut w = conn;
            loop {
                // Headers up to the blank line; a body of Content-Length bytes.
                let mut len = 0usize;
                let mut line = String::new();
                loop {
                    line.clear();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0u8; len];
                if r.read_exact(&mut body).is_err() {
                    return;
                }
                seen.fetch_add(1, Ordering::SeqCst);
                let reply = "HTTP/1.1 503 Slow Down\r\ncontent-length: 0\r\n\r\n";
                if w.write_all(reply.as_bytes()).is_err() {
                    return;
                }
            }
        });
    }
}

#[test]
fn a_calls_retries_are_counted_for_its_thread() {
    // SAFETY: the only test of this binary; no other thread reads the environment.
    unsafe {
        std::env::set_var("AWS_ACCESS_KEY_ID", "test");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(AtomicU32::new(0));
    let counter = seen.clone();
    std::thread::spawn(move || slow_down(listener, counter));
    let s = Store::open(
        "s3://bucket",
        &StoreOptions {
            endpoint: Some(format!("http://{addr}")),
            retry_timeout: Duration::from_secs(1),
            ..StoreOptions::default()
        },
    )
    .unwrap();
    assert_eq!(last_call_retries(), 0, "no call yet");
    let e = s.get_range("obj", 0..10, None).unwrap_err();
    let requests = seen.load(Ordering::SeqCst);
    assert!(
        requests >= 2,
        "the client retried: {requests} requests, {e}"
    );
    assert_eq!(
        last_call_retries(),
        requests,
        "every request failed and was retried or last"
    );
    // Another thread's calls are its own.
    std::thread::spawn(|| assert_eq!(last_call_retries(), 0))
        .join()
        .unwrap();
}
