//! A file's data key unwrapped for a PGP recipient, as sops does it: by running the user's
//! `gpg` (`$SOPS_GPG_EXEC` when set), which finds the secret key in its keyring
//! (`$GNUPGHOME`, else `~/.gnupg`). The wrapped key goes to gpg's stdin and the data key
//! comes back on its stdout: it is never written to disk.

use std::ffi::OsString;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The `gpg` to run, and the keyring it reads.
pub struct Gpg {
    program: OsString,
    /// A keyring given explicitly (`--homedir`); `None` leaves it to gpg (`$GNUPGHOME`).
    homedir: Option<PathBuf>,
}

/// Why gpg gave no data key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GpgFailure {
    /// The program could not be started: it is not installed (or not on `PATH`).
    Missing { program: String },
    /// gpg ran and refused, with what it said on stderr.
    Refused { stderr: String },
    /// gpg succeeded but its output is no 32-byte data key.
    NotAKey { len: usize },
}

impl std::fmt::Display for GpgFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GpgFailure::Missing { program } => write!(
                f,
                "`{program}` is not installed or not on PATH (install GnuPG, or set \
                 $SOPS_GPG_EXEC to the gpg to run)"
            ),
            GpgFailure::Refused { stderr } => {
                if stderr.is_empty() {
                    f.write_str("gpg failed without saying why")
                } else {
                    f.write_str(stderr)?;
                    if needs_passphrase(stderr) {
                        f.write_str(
                            " (the secret key is protected by a passphrase, which is never \
                             asked for here: unlock it in gpg-agent first, e.g. by decrypting \
                             anything with it once in a terminal)",
                        )?;
                    }
                    Ok(())
                }
            }
            GpgFailure::NotAKey { len } => write!(
                f,
                "gpg decrypted {len} bytes, not the 32-byte data key sops wraps"
            ),
        }
    }
}

/// What gpg says about its own keyring on any run, not about this message.
fn housekeeping(line: &str) -> bool {
    line.contains("trustdb")
        || line.starts_with("gpg: marginals needed")
        || line.starts_with("gpg: depth:")
        || (line.starts_with("gpg: keybox '") && line.ends_with("' created"))
}

/// gpg's ways of saying it could not ask for a passphrase.
fn needs_passphrase(stderr: &str) -> bool {
    [
        "Inappropriate ioctl for device",
        "No pinentry",
        "Bad passphrase",
        "Operation cancelled",
        "No passphrase given",
    ]
    .iter()
    .any(|sign| stderr.contains(sign))
}

impl Gpg {
    /// As sops runs it: `$SOPS_GPG_EXEC` or `gpg`, with gpg's own choice of keyring.
    pub fn from_env() -> Gpg {
        Gpg {
            program: std::env::var_os("SOPS_GPG_EXEC")
                .filter(|program| !program.is_empty())
                .unwrap_or_else(|| OsString::from("gpg")),
            homedir: None,
        }
    }

    /// `gpg` with the keyring in `homedir`, whatever `$GNUPGHOME` says.
    #[cfg(test)]
    pub fn with_homedir(homedir: impl Into<PathBuf>) -> Gpg {
        Gpg {
            program: OsString::from("gpg"),
            homedir: Some(homedir.into()),
        }
    }

    /// A program that is not there, to see how its absence reads.
    #[cfg(test)]
    pub fn missing() -> Gpg {
        Gpg {
            program: OsString::from("/nonexistent/gpg"),
            homedir: None,
        }
    }

    /// The keyring gpg reads, as a person would check it.
    pub fn keyring(&self) -> String {
        if let Some(dir) = &self.homedir {
            return dir.display().to_string();
        }
        match std::env::var_os("GNUPGHOME").filter(|dir| !dir.is_empty()) {
            Some(dir) => format!("$GNUPGHOME ({})", PathBuf::from(dir).display()),
            None => "~/.gnupg".to_string(),
        }
    }

    /// The data key in one recipient's `enc` (an ASCII-armored OpenPGP message).
    ///
    /// `--batch --no-tty`: never a prompt; a key that needs its passphrase fails with
    /// gpg's error. Not `--quiet`: gpg then hides why (a missing pinentry reads as "No
    /// secret key").
    pub fn unwrap(&self, enc: &str) -> Result<[u8; 32], GpgFailure> {
        let mut command = Command::new(&self.program);
        if let Some(dir) = &self.homedir {
            command.arg("--homedir").arg(dir);
        }
        let mut child = command
            .args(["--batch", "--no-tty", "--decrypt"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|err| match err.kind() {
                std::io::ErrorKind::NotFound => GpgFailure::Missing {
                    program: self.program.to_string_lossy().into_owned(),
                },
                _ => GpgFailure::Refused {
                    stderr: format!("could not run `{}`: {err}", self.program.display()),
                },
            })?;
        // The message is a few kilobytes at most: it fits the pipe, so writing it before
        // reading the output cannot block. A write error means gpg exited early; its
        // status and stderr say why.
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(enc.as_bytes());
        }
        let output = child
            .wait_with_output()
            .map_err(|err| GpgFailure::Refused {
                stderr: format!("could not run gpg: {err}"),
            })?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let lines: Vec<&str> = stderr
                .lines()
                .map(str::trim)
                .filter(|line| !line.is_empty() && !housekeeping(line))
                .collect();
            return Err(GpgFailure::Refused {
                stderr: lines.join("; "),
            });
        }
        let len = output.stdout.len();
        output
            .stdout
            .try_into()
            .map_err(|_| GpgFailure::NotAKey { len })
    }
}
