//! The sluice proxy server as a library.
//!
//! [`serve`] runs sluice on any listener with any shutdown signal; [`AppState::new`] builds
//! everything it shares from a validated [`sluice_config::Config`]. The binary is a thin
//! shell around these two; tests start the real server on `127.0.0.1:0` the same way.

pub mod accounts;
pub mod admin;
pub mod auth;
pub mod dashboard;
pub mod error;
pub mod manage;
pub mod observe;
pub mod provider;
pub mod proxy;
pub mod server;
pub mod state;
pub mod status;
pub mod translate;
pub mod upstream;

pub use server::{DEFAULT_DRAIN, router, serve, serve_with_drain};
pub use state::{AppState, StartError};
