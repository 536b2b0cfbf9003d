//! Every plugin run of the suite is recorded (arguments, stdout, stderr) under
//! `STATE/plugin-runs/`, so a final check can prove that no canary value (a Secret value
//! in the fixtures, the bearer tokens of the test users) ever reached a user's screen.
//!
//! The plugins are recorded, not kubectl itself: `kubectl get secret -o yaml` prints
//! Secret values by design. Recording works through PATH: kubectl finds a small wrapper
//! per plugin first, which tees the plugin's output into the log and then `exec`s the real
//! binary, so the process id, signals and exit status stay the plugin's own.
//! Runs on a terminal (tests of colour on a pty) are not recorded, since teeing would
//! take the terminal away from the plugin.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The value of the canary Secret in the fixtures (`canary_secret_yaml`).
pub const CANARY_SECRET_VALUE: &str = "kgo-canary-5e3c1f08b7d94a62";

/// The plaintext of the SOPS-encrypted Secret in the fixtures (tests/e2e/sops.rs): once
/// decrypted it is Secret data like any other, and must never be printed either.
pub const SOPS_CANARY_VALUE: &str = "kgo-sops-canary-9d41b7e2c05a";

/// Where plugin runs are recorded.
pub fn runs_dir(state: &Path) -> PathBuf {
    state.join("plugin-runs")
}

/// A manifest holding the canary Secret (as `data`, base64, and as `stringData`).
pub fn canary_secret_yaml(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\ntype: Opaque\ndata:\n  password: {}\nstringData:\n  token: {CANARY_SECRET_VALUE}\n",
        base64(CANARY_SECRET_VALUE.as_bytes())
    )
}

/// Remembers a credential the suite created (a service account token), so the final
/// check looks for it too.
pub fn remember_credential(state: &Path, name: &str, value: &str) {
    let dir = runs_dir(state).join("credentials");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), value).unwrap();
}

/// The directory of recording wrappers, one per plugin binary in `plugin_dir`, written
/// once per test process.
pub fn wrapper_dir(state: &Path, plugin_dir: &Path) -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let log = runs_dir(state).join("log");
        let bin = runs_dir(state).join(format!("bin-{}", std::process::id()));
        std::fs::create_dir_all(&log).unwrap();
        std::fs::create_dir_all(&bin).unwrap();
        for entry in std::fs::read_dir(plugin_dir).unwrap() {
            let path = entry.unwrap().path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if !name.starts_with("kubectl-") || name.contains('.') || !path.is_file() {
                continue;
            }
            let script = format!(
                "#!/usr/bin/env bash\n\
                 # Records this run for the suite's canary check, then becomes the plugin.\n\
                 # A run on a terminal is not recorded: the tee would take the terminal away.\n\
                 if [ -t 1 ] || [ -t 2 ]; then exec {real} \"$@\"; fi\n\
                 log={log}/$(date +%s%N)-$$-{name}\n\
                 printf '%s\\n' \"$@\" >\"$log.args\"\n\
                 exec > >(tee \"$log.out\") 2> >(tee \"$log.err\" >&2)\n\
                 exec {real} \"$@\"\n",
                log = shell_quote(&log.display().to_string()),
                real = shell_quote(&path.display().to_string()),
            );
            let target = bin.join(name);
            std::fs::write(&target, script).unwrap();
            make_executable(&target);
        }
        bin
    })
}

fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut perms = std::fs::metadata(path).unwrap().permissions();
    perms.set_mode(0o755);
    std::fs::set_permissions(path, perms).unwrap();
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// Base64 (standard, padded), enough for fixtures.
pub fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The canaries: the Secret value (plain and base64), the bearer tokens of the test
/// control plane's kubeconfigs, and the credentials tests remembered.
pub fn canaries(state: &Path) -> Vec<(String, String)> {
    let mut out = vec![
        (
            "canary Secret value".to_string(),
            CANARY_SECRET_VALUE.to_string(),
        ),
        (
            "canary Secret value (base64)".to_string(),
            base64(CANARY_SECRET_VALUE.as_bytes()),
        ),
        (
            "decrypted SOPS value".to_string(),
            SOPS_CANARY_VALUE.to_string(),
        ),
        (
            "decrypted SOPS value (base64)".to_string(),
            base64(SOPS_CANARY_VALUE.as_bytes()),
        ),
    ];
    if let Ok(tokens) = std::fs::read_to_string(state.join("tokens.csv")) {
        for line in tokens.lines() {
            let mut fields = line.split(',');
            if let (Some(token), Some(user)) = (fields.next(), fields.next())
                && !token.is_empty()
            {
                out.push((format!("bearer token of user {user}"), token.to_string()));
            }
        }
    }
    if let Ok(entries) = std::fs::read_dir(runs_dir(state).join("credentials")) {
        for entry in entries.flatten() {
            if let Ok(value) = std::fs::read_to_string(entry.path())
                && !value.trim().is_empty()
            {
                let name = entry.file_name().to_string_lossy().into_owned();
                out.push((format!("credential {name}"), value.trim().to_string()));
            }
        }
    }
    out
}

/// What the final check found.
#[derive(Debug, Default)]
pub struct CanaryReport {
    /// Recorded runs looked at (those without `--show-secrets`).
    pub checked: usize,
    /// Runs skipped because they passed `--show-secrets`.
    pub skipped: usize,
    /// `file: which canary` for every leak.
    pub leaks: Vec<String>,
}

/// Looks for every canary in every recorded run's stdout and stderr.
pub fn check_canaries(state: &Path) -> CanaryReport {
    let canaries = canaries(state);
    let mut report = CanaryReport::default();
    let Ok(entries) = std::fs::read_dir(runs_dir(state).join("log")) else {
        return report;
    };
    let mut args_files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "args"))
        .collect();
    args_files.sort();
    for args_file in args_files {
        let args = std::fs::read_to_string(&args_file).unwrap_or_default();
        if args.lines().any(|a| a == "--show-secrets") {
            report.skipped += 1;
            continue;
        }
        report.checked += 1;
        for stream in ["out", "err"] {
            let file = args_file.with_extension(stream);
            let text =
                String::from_utf8_lossy(&std::fs::read(&file).unwrap_or_default()).into_owned();
            for (what, value) in &canaries {
                if text.contains(value.as_str()) {
                    report.leaks.push(format!(
                        "{} ({}): {what}",
                        file.display(),
                        args.lines().collect::<Vec<_>>().join(" ")
                    ));
                }
            }
        }
    }
    report
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_the_standard_alphabet_and_padding() {
        assert_eq!(super::base64(b"kgo"), "a2dv");
        assert_eq!(super::base64(b"kg"), "a2c=");
        assert_eq!(super::base64(b"k"), "aw==");
    }
}
