//! A TCP proxy that delays every byte by a fixed time in each direction: the network between
//! a client and a server on the same machine, made as far away as you like. The kernel here
//! has no `netem` qdisc, so `scripts/bench.sh --only s3` puts this proxy between each mount
//! and the S3 server to measure the mounts at a given round-trip time.
//!
//! **What `delay` means.** It is the *one-way* delay: every byte read from the client is
//! written to the server `delay` after it was read, and every byte read from the server is
//! written to the client `delay` after it was read. A request and its response therefore
//! cost `2 x delay` more than without the proxy: *20 ms of added round-trip time is
//! `--delay 10ms`*. A new connection also pays the TCP handshake's round trip, as over a
//! real link (SYN, SYN-ACK, then data): the client's first bytes are held until `2 x delay`
//! after the connection was accepted, then `delay` more, so the first response on a fresh
//! connection arrives `4 x delay` after `connect()` (turn this off with
//! [`Config::handshake`]).
//!
//! **Latency, not a bandwidth cap.** Each direction of each connection is two threads: a
//! reader that stamps every chunk it reads with its due time (read time + `delay`) and
//! queues it, and a writer that waits for each chunk's due time and writes it. Due times are
//! absolute, so a body streamed in a thousand chunks is delayed by `delay` once, not a
//! thousand times; the queue holds up to [`QUEUED_CHUNKS`] chunks of up to [`CHUNK`] bytes
//! (a bandwidth-delay product of up to 256 MiB per direction) before the reader waits.
//! Order is kept (one queue per direction); the two directions, and all connections, are
//! independent of each other: nothing is serialized. `TCP_NODELAY` is set on both sockets,
//! so small requests are not held back further by Nagle's algorithm.
//!
//! End of stream is delayed like data (a half-close reaches the other side `delay` later);
//! a failed write tears both sockets of the connection down.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Largest chunk one read takes from a socket.
pub const CHUNK: usize = 64 << 10;

/// Chunks queued per direction of a connection before its reader waits.
pub const QUEUED_CHUNKS: usize = 4096;

/// Time allowed to connect to the upstream server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Stack of the per-connection threads (their buffers are on the heap).
const STACK: usize = 256 << 10;

/// How the proxy forwards.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where connections go.
    pub upstream: SocketAddr,
    /// One-way delay added in each direction.
    pub delay: Duration,
    /// Charge a new connection the handshake's round trip (`2 x delay` before the client's
    /// first bytes start their own `delay`), as a real link would.
    pub handshake: bool,
}

impl Config {
    /// Forward to `upstream` with `delay` each way, handshake included.
    pub fn new(upstream: SocketAddr, delay: Duration) -> Self {
        Config {
            upstream,
            delay,
            handshake: true,
        }
    }
}

/// Counters of a proxy, for logs and tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections open now.
    pub active: u64,
    /// Connections closed because the upstream server could not be reached.
    pub failed: u64,
    /// Bytes forwarded client -> server.
    pub bytes_up: u64,
    /// Bytes forwarded server -> client.
    pub bytes_down: u64,
    /// Chunks (reads, each delayed on its own) client -> server.
    pub chunks_up: u64,
    /// Chunks server -> client.
    pub chunks_down: u64,
}

/// Counters of one direction.
#[derive(Default)]
struct Flow {
    bytes: AtomicU64,
    chunks: AtomicU64,
}

#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    accepted: AtomicU64,
    active: AtomicU64,
    failed: AtomicU64,
    up: Flow,
    down: Flow,
    next_id: AtomicU64,
    /// Both sockets of every open connection, to tear them down when the proxy stops.
    conns: Mutex<HashMap<u64, (TcpStream, TcpStream)>>,
}

/// A running proxy; dropping it closes the listener and every connection.
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy").field("addr", &self.addr).finish()
    }
}

impl Proxy {
    /// Listen on `listen` (port 0: any free port) and forward as `config` says.
    pub fn start(listen: impl ToSocketAddrs, config: Config) -> io::Result<Proxy> {
        let listener = TcpListener::bind(listen)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        let acceptor = std::thread::Builder::new()
            .name("delay-proxy-accept".into())
            .spawn(move || accept_loop(listener, config, s))?;
        Ok(Proxy {
            addr,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its counters now.
    pub fn stats(&self) -> Stats {
        let s = &self.shared;
        Stats {
            accepted: s.accepted.load(Ordering::Relaxed),
            active: s.active.load(Ordering::Relaxed),
            failed: s.failed.load(Ordering::Relaxed),
            bytes_up: s.up.bytes.load(Ordering::Relaxed),
            bytes_down: s.down.bytes.load(Ordering::Relaxed),
            chunks_up: s.up.chunks.load(Ordering::Relaxed),
            chunks_down: s.down.chunks.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the acceptor blocked in accept().
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
        let conns = std::mem::take(&mut *self.shared.conns.lock().unwrap());
        for (_, (c, u)) in conns {
            let _ = c.shutdown(Shutdown::Both);
            let _ = u.shutdown(Shutdown::Both);
        }
    }
}

fn accept_loop(listener: TcpListener, config: Config, shared: Arc<Shared>) {
    for conn in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(client) = conn else {
            // EMFILE and the like: back off instead of spinning.
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        let accepted = Instant::now();
        shared.accepted.fetch_add(1, Ordering::Relaxed);
        let (config, shared) = (config.clone(), shared.clone());
        // The upstream connect happens on the connection's own thread: a slow server never
        // holds up the next accept.
        let spawned = std::thread::Builder::new()
            .name("delay-proxy-conn".into())
            .stack_size(STACK)
            .spawn(move || serve(client, accepted, &config, &shared));
        if spawned.is_err() {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Forward one connection: this thread reads client -> server, three more do the rest.
fn serve(client: TcpStream, accepted: Instant, config: &Config, shared: &Arc<Shared>) {
    let upstream = match TcpStream::connect_timeout(&config.upstream, CONNECT_TIMEOUT) {
        Ok(u) => u,
        Err(_) => {
            shared.failed.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let clones = (|| {
        Ok::<_, io::Error>((
            client.try_clone()?,
            client.try_clone()?,
            upstream.try_clone()?,
            upstream.try_clone()?,
            (client.try_clone()?, upstream.try_clone()?),
        ))
    })();
    let Ok((client_w, client_x, upstream_r, upstream_x, registered)) = clones else {
        return;
    };
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    shared.active.fetch_add(1, Ordering::Relaxed);
    shared.conns.lock().unwrap().insert(id, registered);
    // Whoever of the two writers ends last unregisters the connection.
    let left = Arc::new(AtomicU64::new(2));
    let done = {
        let shared = shared.clone();
        move || {
            if left.fetch_sub(1, Ordering::AcqRel) == 1 {
                shared.conns.lock().unwrap().remove(&id);
                shared.active.fetch_sub(1, Ordering::Relaxed);
            }
        }
    };
    let delay = config.delay;
    let first_up = if config.handshake {
        accepted + 2 * delay
    } else {
        accepted
    };
    let (up_tx, up_rx) = sync_channel(QUEUED_CHUNKS);
    let (down_tx, down_rx) = sync_channel(QUEUED_CHUNKS);
    let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
        std::thread::Builder::new()
            .name(name.into())
            .stack_size(STACK)
            .spawn(f)
            .is_ok()
    };
    // Out of threads: a part that does not start counts as ended, the sockets are shut
    // down, and the parts that did start end with them.
    let mut ok = true;
    for (name, dst, peer, rx) in [
        ("delay-proxy-up-w", upstream, client_x, up_rx),
        ("delay-proxy-down-w", client_w, upstream_x, down_rx),
    ] {
        let done = done.clone();
        let started = ok
            && spawn(
                name,
                Box::new({
                    let done = done.clone();
                    move || {
                        write_side(dst, peer, rx);
                        done();
                    }
                }),
            );
        if !started {
            ok = false;
            done();
        }
    }
    ok = ok && {
        let s = shared.clone();
        spawn(
            "delay-proxy-down-r",
            Box::new(move || read_side(upstream_r, down_tx, delay, accepted, &s.down)),
        )
    };
    if !ok {
        let _ = client.shutdown(Shutdown::Both);
        if let Some((_, u)) = shared.conns.lock().unwrap().get(&id) {
            let _ = u.shutdown(Shutdown::Both);
        }
        return;
    }
    read_side(client, up_tx, delay, first_up, &shared.up);
}

/// A chunk of one direction, or its end, with the time it is due at the other side.
enum Msg {
    Data(Instant, Vec<u8>),
    End(Instant),
}

/// Read `src` and queue what it sends, each chunk due `delay` after it was read (and not
/// before `earliest + delay`).
fn read_side(
    mut src: TcpStream,
    tx: SyncSender<Msg>,
    delay: Duration,
    earliest: Instant,
    flow: &Flow,
) {
    let mut buf = vec![0u8; CHUNK];
    let due = || Instant::now().max(earliest) + delay;
    loop {
        match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                flow.bytes.fetch_add(n as u64, Ordering::Relaxed);
                flow.chunks.fetch_add(1, Ordering::Relaxed);
                if tx.send(Msg::Data(due(), buf[..n].to_vec())).is_err() {
                    return; // the writer is gone: it tore the connection down
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let _ = tx.send(Msg::End(due()));
}

/// Write what the queue holds to `dst`, each chunk at its due time; at the end of the
/// stream, half-close `dst`. A failed write tears down `dst` and `peer` (the socket of the
/// other side, so its reader stops).
fn write_side(mut dst: TcpStream, peer: TcpStream, rx: Receiver<Msg>) {
    let wait = |due: Instant| {
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
    };
    for msg in rx {
        match msg {
            Msg::Data(due, bytes) => {
                wait(due);
                if dst.write_all(&bytes).is_err() {
                    let _ = dst.shutdown(Shutdown::Both);
                    let _ = peer.shutdown(Shutdown::Both);
                    return;
                }
            }
            Msg::End(due) => {
                wait(due);
                let _ = dst.shutdown(Shutdown::Write);
                return;
            }
        }
    }
    // The reader ended without an end marker (it could not queue it): end here too.
    let _ = dst.shutdown(Shutdown::Write);
}

/// Parse a delay: a number and a unit (`10ms`, `1.5ms`, `250us`, `0.02s`, `500ns`), or `0`.
pub fn parse_delay(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("{s:?}: a unit is needed (ns, us, ms, s)"))?;
    let (num, unit) = s.split_at(split);
    let v: f64 = num
        .parse()
        .map_err(|_| format!("{s:?}: {num:?} is not a number"))?;
    let scale = match unit {
        "ns" => 1e-9,
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (ns, us, ms, s)")),
    };
    Duration::try_from_secs_f64(v * scale).map_err(|e| format!("{s:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_parse() {
        assert_eq!(parse_delay("10ms"), Ok(Duration::from_millis(10)));
        assert_eq!(parse_delay("1.5ms"), Ok(Duration::from_micros(1500)));
        assert_eq!(parse_delay("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_delay("0.02s"), Ok(Duration::from_millis(20)));
        assert_eq!(parse_delay("0"), Ok(Duration::ZERO));
        assert_eq!(parse_delay("0ms"), Ok(Duration::ZERO));
        for bad in ["", "10", "ms", "10 m", "-1ms", "1.2.3ms"] {
            assert!(parse_delay(bad).is_err(), "{bad}");
        }
    }
}
