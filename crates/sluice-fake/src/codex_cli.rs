//! How the Codex CLI opens a turn, to measure what a proxy's answer to its WebSocket attempt
//! costs: [`CodexTransport::open_turn`] first tries the Responses WebSocket (a `GET
//! /v1/responses` with `Upgrade: websocket`, the headers the real CLI sends), and falls back
//! to `POST` the way codex-rs does (`core/src/client.rs`, `stream_responses_websocket`): a
//! handshake answered **426 Upgrade Required** falls back at once; any other answer (a 404,
//! a 200 that does not switch protocols, a reset) is a stream error that goes through the
//! turn's retry budget — `stream_max_retries` (5) retries with exponential backoff from
//! 200 ms — before the session gives up on WebSockets.
//!
//! [`UpgradeIgnorer`] is a server that ignores the upgrade, answering every request 404 as
//! the capture server did: the case the CLI retries against.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// The CLI's WebSocket attempt and fallback policy.
#[derive(Clone, Debug)]
pub struct CodexTransport {
    /// The first retry's delay; each next one doubles (codex-rs: 200 ms).
    pub initial_backoff: Duration,
    /// Retries after the first attempt (codex-rs `stream_max_retries` default: 5).
    pub max_retries: u32,
}

impl Default for CodexTransport {
    fn default() -> Self {
        CodexTransport {
            initial_backoff: Duration::from_millis(200),
            max_retries: 5,
        }
    }
}

/// What opening one turn took.
#[derive(Clone, Debug)]
pub struct TurnOpening {
    /// The status of each WebSocket handshake (`None`: no answer / connection error).
    pub handshakes: Vec<Option<u16>>,
    /// From the first handshake until the CLI would send its `POST`.
    pub fallback_after: Duration,
}

impl CodexTransport {
    /// Try the WebSocket at `addr` as the CLI does, falling back per its policy. The handshake
    /// carries the headers of `fixtures/client-requests/codex_ws_upgrade.json`.
    pub async fn open_turn(&self, addr: SocketAddr) -> TurnOpening {
        let started = Instant::now();
        let mut handshakes = Vec::new();
        for attempt in 0..=self.max_retries {
            let status = handshake(addr).await.ok();
            handshakes.push(status);
            match status {
                // Falls back to HTTP for the rest of the session, at once.
                Some(426) => break,
                // Protocols switched: the CLI would stay on WebSocket (not a fallback).
                Some(101) => break,
                _ if attempt < self.max_retries => {
                    tokio::time::sleep(self.initial_backoff * 2u32.pow(attempt)).await;
                }
                _ => {}
            }
        }
        TurnOpening {
            handshakes,
            fallback_after: started.elapsed(),
        }
    }
}

/// One WebSocket handshake; the status line's code.
async fn handshake(addr: SocketAddr) -> io::Result<u16> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let request = format!(
        "GET /v1/responses HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: EHsE79842mNBsNYsCLmF+Q==\r\n\
         authorization: Bearer sk-codex-placeholder\r\noriginator: codex_exec\r\n\
         openai-beta: responses_websockets=2026-02-06\r\nversion: 0.169.0\r\n\
         session-id: 01a2017e-12a2-7562-b506-b91fc652a1f9\r\n\
         sec-websocket-extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut head = Vec::with_capacity(256);
    let mut buffer = [0u8; 256];
    while !head.windows(2).any(|w| w == b"\r\n") {
        let n = stream.read(&mut buffer).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        head.extend_from_slice(&buffer[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    line.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| io::ErrorKind::InvalidData.into())
}

/// A server that ignores WebSocket upgrades: every request gets `404 Not Found`.
pub struct UpgradeIgnorer {
    addr: SocketAddr,
    cancel: CancellationToken,
}

impl UpgradeIgnorer {
    /// Listen on `127.0.0.1:0`. Must be called from within a tokio runtime.
    pub async fn start() -> io::Result<UpgradeIgnorer> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    () = stop.cancelled() => return,
                    accepted = listener.accept() => accepted,
                };
                let Ok((mut socket, _)) = accepted else {
                    continue;
                };
                tokio::spawn(async move {
                    let mut buffer = [0u8; 4096];
                    let _ = socket.read(&mut buffer).await;
                    let _ = socket
                        .write_all(
                            b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        )
                        .await;
                });
            }
        });
        Ok(UpgradeIgnorer { addr, cancel })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for UpgradeIgnorer {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}
