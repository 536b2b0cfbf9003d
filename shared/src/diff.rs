//! Comparing desired and live objects: normalising, masking Secrets, the change set, and
//! its text forms.
//!
//! The change set ([`ChangeSet`]) is computed apart from how it is shown: [`text`] renders
//! it for people, and its serde form ([`DiffReport`]) is the `-o json` document.

pub mod change;
pub mod mask;
pub mod normalise;
pub mod secret;
pub mod text;

pub use change::{
    Action, ChangeSet, DiffReport, FieldChange, ObjectChange, Summary, field_changes,
};
pub use mask::{mask_secret, mask_secret_pair};
pub use normalise::{NormaliseOptions, normalise, normalise_with};
pub use text::{TextOptions, markdown, names, summary_line, to_yaml, unified, unified_all};
