//! The wave an object asks to be applied in: `kubectl-gitops.io/sync-wave` or Argo CD's
//! `argocd.argoproj.io/sync-wave`, an integer as a string, 0 without either. Read where
//! objects are read, so hooks (ordered by their wave too) and members share one rule.

use serde_json::Value;

use super::ObjectKey;
use crate::render::Origin;

/// An integer (negative allowed, default 0): lower waves are applied first.
pub const WAVE_ANNOTATION: &str = "kubectl-gitops.io/sync-wave";

/// Argo CD's wave annotation, honoured exactly like ours.
pub const ARGO_WAVE_ANNOTATION: &str = "argocd.argoproj.io/sync-wave";

#[derive(Debug, thiserror::Error)]
pub enum WaveError {
    #[error(
        "{origin}: the {annotation} annotation of {key} is {value:?}, not an integer: use a whole number such as \"-1\" or \"2\""
    )]
    NotAnInteger {
        key: Box<ObjectKey>,
        origin: Origin,
        annotation: &'static str,
        value: String,
    },
    #[error(
        "{origin}: the {annotation} annotation of {key} is {value}, not a string: quote it (\"{value}\"), as every annotation value must be"
    )]
    NotAString {
        key: Box<ObjectKey>,
        origin: Origin,
        annotation: &'static str,
        value: String,
    },
    #[error(
        "{origin}: {key} has two different waves: {WAVE_ANNOTATION} is {ours} and {ARGO_WAVE_ANNOTATION} is {argo}; keep one of them"
    )]
    TwoWaves {
        key: Box<ObjectKey>,
        origin: Origin,
        ours: i64,
        argo: i64,
    },
}

/// The wave `object` (`key`, from `origin`) asks for: ours or Argo CD's annotation, which
/// must agree when both are there; 0 without either.
pub fn wave_of(object: &Value, key: &ObjectKey, origin: &Origin) -> Result<i64, WaveError> {
    let annotations = object.pointer("/metadata/annotations");
    let read = |annotation: &'static str| -> Result<Option<i64>, WaveError> {
        match annotations.and_then(|a| a.get(annotation)) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => {
                text.trim()
                    .parse::<i64>()
                    .map(Some)
                    .map_err(|_| WaveError::NotAnInteger {
                        key: Box::new(key.clone()),
                        origin: origin.clone(),
                        annotation,
                        value: text.clone(),
                    })
            }
            Some(other) => Err(WaveError::NotAString {
                key: Box::new(key.clone()),
                origin: origin.clone(),
                annotation,
                value: other.to_string(),
            }),
        }
    };
    match (read(WAVE_ANNOTATION)?, read(ARGO_WAVE_ANNOTATION)?) {
        (Some(ours), Some(argo)) if ours != argo => Err(WaveError::TwoWaves {
            key: Box::new(key.clone()),
            origin: origin.clone(),
            ours,
            argo,
        }),
        (Some(wave), _) | (None, Some(wave)) => Ok(wave),
        (None, None) => Ok(0),
    }
}
