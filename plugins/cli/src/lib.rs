//! What every kubectl-gitops plugin's command line shares: kubectl's connection flags,
//! the output and colour flags, and `main`'s error printing and exit codes. The library
//! (`gitops`) stays free of clap; this crate is the one place flags are defined.

mod connection;
mod exit;

pub use connection::ConnectionArgs;
pub use exit::{Outcome, run};
