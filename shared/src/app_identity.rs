//! What makes an object an app's: the app's name, checked once for every place it goes
//! (label values, Secret and Lease names), and the labels our objects carry so
//! `kubectl get -l` finds an app's records and lock. The release store and the app lock
//! both build on it.

/// Says which tool manages an object (the recommended Kubernetes label).
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Our value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY: &str = "kubectl-gitops";
/// Names the app an object (a release record, the app's lock) belongs to.
pub const APP_LABEL: &str = "kubectl-gitops.io/app";
/// The longest app name: leaves room for `.r<N>` and for prefixes such as the lock's.
pub const MAX_APP_NAME: usize = 53;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid app name \"{name}\": {reason}")]
pub struct AppNameError {
    pub name: String,
    pub reason: String,
}

/// Checks that `name` can name an app: a DNS-1123 label of at most [`MAX_APP_NAME`]
/// characters, so it fits in label values and in the names derived from it.
pub fn validate_app_name(name: &str) -> Result<(), AppNameError> {
    let fail = |reason: String| {
        Err(AppNameError {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return fail("it is empty".into());
    }
    if name.len() > MAX_APP_NAME {
        return fail(format!(
            "it has {} characters, at most {MAX_APP_NAME} are allowed",
            name.len()
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return fail(format!(
            "'{bad}' is not allowed: use lowercase letters, digits and '-'"
        ));
    }
    if name.starts_with('-') || name.ends_with('-') {
        return fail("it must start and end with a letter or digit".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_names_are_dns_labels_of_at_most_53_characters() {
        for good in ["web", "a", "web-2", "0app", &"a".repeat(53)] {
            assert_eq!(validate_app_name(good), Ok(()), "{good}");
        }
        for (bad, reason) in [
            ("", "empty"),
            ("Web", "'W' is not allowed"),
            ("web_app", "'_' is not allowed"),
            ("web.app", "'.' is not allowed"),
            ("-web", "start and end"),
            ("web-", "start and end"),
            (&"a".repeat(54), "54 characters, at most 53"),
        ] {
            let err = validate_app_name(bad).unwrap_err();
            assert!(err.to_string().contains(reason), "{bad}: {err}");
            assert!(err.to_string().contains(&format!("\"{bad}\"")), "{err}");
        }
    }
}
