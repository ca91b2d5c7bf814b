//! `--metrics-addr HOST:PORT`: `GET /metrics` answers `.kplug/metrics` (the Prometheus text
//! format of `prometheus.rs`), rendered at each request from the mount's live document.
//!
//! One thread, blocking (`tiny_http`): a scrape every few seconds needs no more, and it
//! never touches the FUSE request path. The address is bound before the mount appears, so
//! a port in use is a one-line mount error. A bare `PORT` or `:PORT` binds the loopback
//! interface: exposing metrics beyond the machine is a choice (`0.0.0.0:PORT`).

use std::net::{SocketAddr, ToSocketAddrs};

use super::prometheus;
use super::schema::Stats;

/// Parse `HOST:PORT`, `:PORT` or `PORT` (the last two on 127.0.0.1).
pub fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    let full = match s.strip_prefix(':') {
        Some(port) => format!("127.0.0.1:{port}"),
        None if s.parse::<u16>().is_ok() => format!("127.0.0.1:{s}"),
        None => s.to_string(),
    };
    full.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| format!("{s:?} is not HOST:PORT (e.g. 127.0.0.1:9464, or :9464)"))
}

/// A bound metrics endpoint, not yet serving.
pub struct MetricsServer {
    server: tiny_http::Server,
}

impl MetricsServer {
    /// Bind `addr`.
    pub fn bind(addr: SocketAddr) -> Result<Self, String> {
        let server = tiny_http::Server::http(addr)
            .map_err(|e| format!("--metrics-addr {addr}: cannot listen: {e}"))?;
        Ok(Self { server })
    }

    /// The address bound (the port chosen, for port 0).
    pub fn addr(&self) -> Option<SocketAddr> {
        self.server.server_addr().to_ip()
    }

    /// Serve `GET /metrics` from `stats` (`None` once the mount is gone: the thread ends).
    pub fn spawn(self, stats: impl Fn() -> Option<Stats> + Send + 'static) -> std::io::Result<()> {
        std::thread::Builder::new()
            .name("kplugfs-metrics".into())
            .spawn(move || {
                for req in self.server.incoming_requests() {
                    let path = req.url().split('?').next().unwrap_or("");
                    let response = match (req.method(), path) {
                        (tiny_http::Method::Get, "/metrics") => {
                            let Some(s) = stats() else { break };
                            let header = tiny_http::Header::from_bytes(
                                &b"Content-Type"[..],
                                prometheus::CONTENT_TYPE.as_bytes(),
                            )
                            .expect("static header");
                            tiny_http::Response::from_string(prometheus::render(&s))
                                .with_header(header)
                        }
                        _ => tiny_http::Response::from_string("only GET /metrics is served\n")
                            .with_status_code(404),
                    };
                    if let Err(e) = req.respond(response) {
                        tracing::debug!("metrics endpoint: {e}");
                    }
                }
            })
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_default_to_loopback() {
        assert_eq!(parse_addr(":9464").unwrap().to_string(), "127.0.0.1:9464");
        assert_eq!(parse_addr("9464").unwrap().to_string(), "127.0.0.1:9464");
        assert_eq!(parse_addr("0.0.0.0:80").unwrap().to_string(), "0.0.0.0:80");
        assert!(parse_addr("nohost").unwrap_err().contains("HOST:PORT"));
    }
}
