//! Release records: what each sync did, kept in the cluster as Secrets.

pub mod elsewhere;
pub mod helm;
pub mod history;
pub mod manifest_documents;
pub mod record;
pub mod rollback;
pub mod store;
