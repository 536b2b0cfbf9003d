//! The age keys a file can be decrypted with, found where sops finds them, and the file's
//! data key unwrapped with them.

use std::io::Read as _;
use std::path::PathBuf;
use std::str::FromStr as _;

use age::armor::ArmoredReader;
use age::x25519::Identity;

/// The age identities on this machine, and where they were looked for (for errors).
pub struct AgeKeys {
    identities: Vec<Identity>,
    /// Where keys were looked for, as a person would check them: `$SOPS_AGE_KEY`,
    /// `$SOPS_AGE_KEY_FILE (/path)`, a path.
    pub looked_in: Vec<String>,
}

/// A key file named by `$SOPS_AGE_KEY_FILE` that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("could not read the age key file {} named by $SOPS_AGE_KEY_FILE", path.display())]
pub struct KeyFileError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

impl AgeKeys {
    /// As sops does: `$SOPS_AGE_KEY` (keys, one a line) and `$SOPS_AGE_KEY_FILE`; without
    /// the latter, the user's sops key file (`$XDG_CONFIG_HOME/sops/age/keys.txt`, else
    /// `~/.config/sops/age/keys.txt`) when it exists.
    pub fn from_env() -> Result<AgeKeys, KeyFileError> {
        let mut keys = AgeKeys {
            identities: Vec::new(),
            looked_in: Vec::new(),
        };
        if let Ok(text) = std::env::var("SOPS_AGE_KEY") {
            keys.add_text(&text);
            keys.looked_in.push("$SOPS_AGE_KEY".to_string());
        }
        if let Some(path) = std::env::var_os("SOPS_AGE_KEY_FILE").map(PathBuf::from) {
            let text = std::fs::read_to_string(&path).map_err(|source| KeyFileError {
                path: path.clone(),
                source,
            })?;
            keys.add_text(&text);
            keys.looked_in
                .push(format!("$SOPS_AGE_KEY_FILE ({})", path.display()));
        } else if let Some(path) = user_key_file() {
            // A missing or unreadable default file is no error: there may be other keys.
            if let Ok(text) = std::fs::read_to_string(&path) {
                keys.add_text(&text);
            }
            keys.looked_in.push(path.display().to_string());
        }
        Ok(keys)
    }

    /// Keys from an age key file's text (comments and blank lines skipped).
    #[cfg(test)]
    pub fn from_text(text: &str) -> AgeKeys {
        let mut keys = AgeKeys {
            identities: Vec::new(),
            looked_in: vec!["the given keys".to_string()],
        };
        keys.add_text(text);
        keys
    }

    fn add_text(&mut self, text: &str) {
        let lines = text.lines().map(str::trim);
        let secrets = lines.filter(|line| line.starts_with("AGE-SECRET-KEY-"));
        self.identities
            .extend(secrets.filter_map(|line| Identity::from_str(line).ok()));
    }

    /// The data key in one recipient's `enc` (an armored age file), if one of our keys
    /// opens it.
    pub(super) fn unwrap(&self, enc: &str) -> Option<[u8; 32]> {
        if self.identities.is_empty() {
            return None;
        }
        let decryptor = age::Decryptor::new(ArmoredReader::new(enc.as_bytes())).ok()?;
        let identities = self.identities.iter().map(|i| i as &dyn age::Identity);
        let mut reader = decryptor.decrypt(identities).ok()?;
        let mut key = Vec::new();
        reader.read_to_end(&mut key).ok()?;
        key.try_into().ok()
    }
}

fn user_key_file() -> Option<PathBuf> {
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))?;
    Some(config.join("sops").join("age").join("keys.txt"))
}
