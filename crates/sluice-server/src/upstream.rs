//! The shared HTTP client sluice uses to reach upstreams: pooled keep-alive connections,
//! HTTP/2 where a TLS upstream offers it (ALPN), `TCP_NODELAY`, no redirects, and no body
//! decompression (bodies pass through byte for byte).

use std::sync::Once;

use sluice_config::UpstreamSettings;

/// Install ring as the process-wide rustls provider (reqwest is built without one).
pub fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // `Err` means another provider is installed already, which is just as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Build the upstream client from the `[upstream]` settings.
pub fn build_client(settings: &UpstreamSettings) -> reqwest::Result<reqwest::Client> {
    install_crypto_provider();
    reqwest::Client::builder()
        .connect_timeout(settings.connect_timeout)
        .pool_idle_timeout(settings.pool_idle_timeout)
        .pool_max_idle_per_host(settings.pool_max_idle_per_host)
        .tcp_nodelay(true)
        .tcp_keepalive(std::time::Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("sluice/", env!("CARGO_PKG_VERSION")))
        .build()
}
