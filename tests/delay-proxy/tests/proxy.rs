//! The delaying proxy over real TCP on the loopback: a round trip costs at least twice the
//! delay (and a fresh connection one more for its handshake), a large transfer read in many
//! chunks is delayed once and not once per chunk, bytes keep their order both ways,
//! connections proceed in parallel, and ends of streams and teardown reach both sides.
//!
//! Timing bounds are lower bounds, plus upper bounds generous enough for a loaded 2-core
//! machine that still tell a delay from its accumulation or from serialization.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use kplug_delay_proxy::{Config, Proxy};

const GENEROUS: Duration = Duration::from_secs(5);

/// A server: each connection is handed to `f` on a thread of its own.
fn server(f: impl Fn(TcpStream) + Send + Sync + 'static) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let f = Arc::new(f);
    thread::spawn(move || {
        for c in l.incoming() {
            let Ok(c) = c else { continue };
            c.set_nodelay(true).unwrap();
            let f = f.clone();
            thread::spawn(move || f(c));
        }
    });
    addr
}

/// Echo every byte back; close when the client half-closes.
fn echo(mut c: TcpStream) {
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match c.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if c.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = c.shutdown(Shutdown::Write);
}

/// Byte `i` of the test stream.
fn pattern(i: u64) -> u8 {
    (i.wrapping_mul(2654435761) >> 13) as u8
}

fn proxy(upstream: SocketAddr, delay: Duration, handshake: bool) -> Proxy {
    let mut c = Config::new(upstream, delay);
    c.handshake = handshake;
    Proxy::start("127.0.0.1:0", c).unwrap()
}

fn connect(p: &Proxy) -> TcpStream {
    let c = TcpStream::connect(p.local_addr()).unwrap();
    c.set_nodelay(true).unwrap();
    c
}

/// One request byte out, one response byte back: the time it took.
fn exchange(c: &mut TcpStream, b: u8) -> Duration {
    let t = Instant::now();
    c.write_all(&[b]).unwrap();
    let mut r = [0u8];
    c.read_exact(&mut r).unwrap();
    assert_eq!(r[0], b);
    t.elapsed()
}

#[test]
fn a_round_trip_costs_twice_the_delay_and_a_new_connection_one_more() {
    let d = Duration::from_millis(25);
    let p = proxy(server(echo), d, true);
    let t = Instant::now();
    let mut c = connect(&p);
    let first = exchange(&mut c, 1);
    let first_from_connect = t.elapsed();
    assert!(
        first_from_connect >= 4 * d,
        "handshake + request + response: {first_from_connect:?} < 4 x {d:?}"
    );
    assert!(first < 4 * d + GENEROUS, "{first:?}");
    for i in 0..5 {
        let rtt = exchange(&mut c, i);
        assert!(rtt >= 2 * d, "round trip {i}: {rtt:?} < 2 x {d:?}");
        assert!(rtt < 2 * d + GENEROUS, "round trip {i}: {rtt:?}");
    }

    // Without the handshake's charge the first exchange is an ordinary round trip.
    let p = proxy(server(echo), d, false);
    let t = Instant::now();
    let mut c = connect(&p);
    exchange(&mut c, 7);
    let first = t.elapsed();
    assert!(first >= 2 * d && first < 2 * d + GENEROUS, "{first:?}");

    // No delay: a plain proxy.
    let p = proxy(server(echo), Duration::ZERO, true);
    let mut c = connect(&p);
    for i in 0..3 {
        assert!(exchange(&mut c, i) < GENEROUS);
    }
}

#[test]
fn a_large_transfer_is_delayed_once_not_per_chunk() {
    const TOTAL: u64 = 64 << 20;
    const WRITE: usize = 4096;
    // The server sends TOTAL bytes in small writes after a one-byte request.
    let addr = server(|mut c| {
        let mut go = [0u8];
        if c.read_exact(&mut go).is_err() {
            return;
        }
        let mut buf = vec![0u8; WRITE];
        let mut i = 0u64;
        while i < TOTAL {
            for (k, b) in buf.iter_mut().enumerate() {
                *b = pattern(i + k as u64);
            }
            if c.write_all(&buf).is_err() {
                return;
            }
            i += WRITE as u64;
        }
    });
    let fetch = |to: SocketAddr| {
        let t = Instant::now();
        let mut c = TcpStream::connect(to).unwrap();
        c.write_all(&[1]).unwrap();
        let mut buf = vec![0u8; 1 << 16];
        let mut got = 0u64;
        loop {
            let n = c.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            for (k, b) in buf[..n].iter().enumerate() {
                assert_eq!(
                    *b,
                    pattern(got + k as u64),
                    "byte {} out of order",
                    got + k as u64
                );
            }
            got += n as u64;
        }
        assert_eq!(got, TOTAL);
        t.elapsed()
    };
    let direct = fetch(addr);
    let d = Duration::from_millis(50);
    let p = proxy(addr, d, true);
    let proxied = fetch(p.local_addr());
    let chunks = p.stats().chunks_down;
    eprintln!(
        "64 MiB: direct {direct:?} ({:.0} MiB/s), through a {d:?} proxy {proxied:?} ({:.0} MiB/s), \
         {chunks} chunks delayed",
        64.0 / direct.as_secs_f64(),
        64.0 / proxied.as_secs_f64()
    );
    assert_eq!(p.stats().bytes_down, TOTAL);
    // Handshake, request, first response byte: 4 delays at least.
    assert!(proxied >= 4 * d, "{proxied:?}");
    // Delaying every chunk in turn would take chunks x d (at least 1024 x 50 ms = 51 s).
    assert!(
        chunks >= 1024,
        "only {chunks} chunks: the test proves nothing"
    );
    let accumulated = d * chunks as u32;
    assert!(
        proxied < accumulated / 4,
        "{proxied:?}: the delay accumulates per chunk ({chunks} chunks x {d:?} = {accumulated:?})"
    );
    assert!(proxied < 4 * d + direct * 4 + GENEROUS, "{proxied:?}");
}

#[test]
fn both_directions_keep_their_order_while_streaming_at_once() {
    const TOTAL: u64 = 16 << 20;
    let d = Duration::from_millis(10);
    let p = proxy(server(echo), d, true);
    let c = connect(&p);
    let mut w = c.try_clone().unwrap();
    let writer = thread::spawn(move || {
        let mut buf = vec![0u8; 1000]; // odd sizes: chunk boundaries fall anywhere
        let mut i = 0u64;
        while i < TOTAL {
            let n = buf.len().min((TOTAL - i) as usize);
            for (k, b) in buf[..n].iter_mut().enumerate() {
                *b = pattern(i + k as u64);
            }
            w.write_all(&buf[..n]).unwrap();
            i += n as u64;
        }
        w.shutdown(Shutdown::Write).unwrap();
    });
    let mut r = c;
    let mut buf = vec![0u8; 1 << 16];
    let mut got = 0u64;
    loop {
        let n = r.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        for (k, b) in buf[..n].iter().enumerate() {
            assert_eq!(*b, pattern(got + k as u64), "byte {}", got + k as u64);
        }
        got += n as u64;
    }
    writer.join().unwrap();
    // The echo server closes after the client's half-close: every byte came back first.
    assert_eq!(got, TOTAL);
    let s = p.stats();
    assert_eq!((s.bytes_up, s.bytes_down), (TOTAL, TOTAL));
}

#[test]
fn connections_proceed_in_parallel() {
    const CONNS: usize = 32;
    const ROUNDS: u32 = 4;
    let d = Duration::from_millis(50);
    let p = Arc::new(proxy(server(echo), d, true));
    let start = Arc::new(Barrier::new(CONNS + 1));
    let threads: Vec<_> = (0..CONNS)
        .map(|i| {
            let (p, start) = (p.clone(), start.clone());
            thread::spawn(move || {
                start.wait();
                let mut c = connect(&p);
                for r in 0..ROUNDS {
                    exchange(&mut c, (i as u32 * ROUNDS + r) as u8);
                }
            })
        })
        .collect();
    start.wait();
    let t = Instant::now();
    for th in threads {
        th.join().unwrap();
    }
    let elapsed = t.elapsed();
    // One connection: a handshake and ROUNDS round trips, (2 + 2 x ROUNDS) x d = 500 ms.
    let one = d * (2 + 2 * ROUNDS);
    let serialized = one * CONNS as u32;
    eprintln!(
        "{CONNS} connections x {ROUNDS} round trips: {elapsed:?} (one alone: {one:?}, serialized: {serialized:?})"
    );
    assert!(elapsed >= one, "{elapsed:?}");
    assert!(
        elapsed < serialized / 4,
        "{elapsed:?}: connections were served one after another ({serialized:?})"
    );
    assert_eq!(p.stats().accepted, CONNS as u64);
}

#[test]
fn ends_of_streams_are_delayed_and_teardown_reaches_both_sides() {
    let d = Duration::from_millis(20);
    let p = proxy(server(echo), d, false);

    // Half-close: the echo server sees the end, answers with its own; both are delayed.
    let mut c = connect(&p);
    exchange(&mut c, 3);
    let t = Instant::now();
    c.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    let e = t.elapsed();
    assert!(e >= 2 * d && e < 2 * d + GENEROUS, "{e:?}");
    let t = Instant::now();
    while p.stats().active > 0 {
        assert!(
            t.elapsed() < GENEROUS,
            "the connection was not unregistered"
        );
        thread::sleep(Duration::from_millis(5));
    }

    // Dropping the proxy ends the connections it carries.
    let mut c = connect(&p);
    exchange(&mut c, 4);
    drop(p);
    let mut b = [0u8];
    c.set_read_timeout(Some(GENEROUS)).unwrap();
    match c.read(&mut b) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("expected the end of the connection, got {other:?}"),
    }

    // An unreachable server: the client's connection is closed, counted as failed.
    let dead = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap(); // now closed
    let p = proxy(dead, d, true);
    let mut c = connect(&p);
    c.set_read_timeout(Some(GENEROUS)).unwrap();
    let _ = c.write_all(&[1]);
    let r = c.read(&mut b);
    assert!(
        matches!(r, Ok(0))
            || r.as_ref().is_err_and(|e| !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            )),
        "{r:?}"
    );
    assert_eq!(p.stats().failed, 1);
}
