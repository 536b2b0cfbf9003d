//! The dashboard: every app's health, drift, resource tree and history as web pages,
//! served on loopback by `kubectl release-history --web` with the user's own kubeconfig.
//! Nothing is installed in the cluster.
//!
//! - [`token`]: the random token the URL carries once, then a cookie;
//! - [`guard`]: what every request must pass (Host header, token, method) and the headers
//!   every answer carries (a strict Content-Security-Policy among them);
//! - [`data`]: what a page shows, read from the clusters with the library's own readers
//!   (release history, drift check, resource tree), each app's state kept by [`states`]
//!   until a watch sees a change, and [`overview`] the overview's rows from them;
//! - [`pages`]: that data as HTML, every text escaped, every state a word and a symbol;
//! - [`live`]: one label-selected watch per kind the apps hold, telling open pages to
//!   refresh (server-sent events);
//! - [`actions`]: with `--allow-actions`, a rollback, asked for and then recorded as the
//!   command line records one;
//! - [`server`]: the HTTP/1.1 server and its routes;
//! - [`report`]: `-o html`, one app's history as a self-contained page.

pub mod actions;
pub mod data;
pub mod guard;
pub mod html;
pub mod live;
pub mod overview;
pub mod pages;
pub mod report;
pub mod server;
pub mod states;
pub mod token;

use std::net::SocketAddr;

pub use server::{Dashboard, bind, serve};

#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot make the dashboard's token: the system's random source failed")]
    Random,
}
