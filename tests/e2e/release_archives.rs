//! The release: an archive per plugin for each of krew's four platforms, holding a binary
//! that runs there, and the committed krew manifests generated from the release's
//! checksums.

use std::path::{Path, PathBuf};
use std::process::Command;

use kubectl_gitops_tests::{TestCluster, describe, workspace_root};
use sha2::{Digest, Sha256};

/// Each plugin: its command and its binary.
pub(crate) const PLUGINS: [(&str, &str); 4] = [
    ("diff-git", "kubectl-diff_git"),
    ("sync", "kubectl-sync"),
    ("release-history", "kubectl-release_history"),
    ("drift", "kubectl-drift"),
];
const PLATFORMS: [&str; 4] = ["darwin-amd64", "darwin-arm64", "linux-amd64", "linux-arm64"];

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {}", describe(&out));
    String::from_utf8(out.stdout).unwrap()
}

pub(crate) fn sha256(path: &Path) -> String {
    run(Command::new("sha256sum").arg(path))
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// A plugin's krew manifest, parsed, after checking what every manifest must say: the
/// kind, name = file name = command, Cargo's version with a `v`, the descriptions.
pub(crate) fn parse_manifest(text: &str, plugin: &str) -> serde_json::Value {
    let doc: serde_json::Value = serde_yaml_ng::from_str(text).unwrap();
    assert_eq!(
        doc["apiVersion"],
        "krew.googlecontainertools.github.com/v1alpha2"
    );
    assert_eq!(doc["kind"], "Plugin");
    assert_eq!(
        doc["metadata"]["name"], plugin,
        "name = file name = command"
    );
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(doc["spec"]["version"], format!("v{version}"));
    for field in ["shortDescription", "description", "caveats", "homepage"] {
        assert!(
            doc["spec"][field]
                .as_str()
                .is_some_and(|s| !s.trim().is_empty()),
            "{plugin}: {field}"
        );
    }
    doc
}

/// The committed manifests are exactly what the generator makes from the committed
/// checksums (no hand edits, no stale version), and each lists krew's four platforms.
#[test]
fn the_committed_krew_manifests_are_generated_and_list_every_platform() {
    let root = workspace_root();
    let committed = root.join("krew-manifests");
    let regenerated = tempfile::tempdir().unwrap();
    run(Command::new("bash")
        .arg(root.join("scripts/krew-manifests.sh"))
        .arg("--sums")
        .arg(committed.join("SHA256SUMS"))
        .arg("--out")
        .arg(regenerated.path()));
    let sums = std::fs::read_to_string(committed.join("SHA256SUMS")).unwrap();
    let version = env!("CARGO_PKG_VERSION");
    for (plugin, binary) in PLUGINS {
        let file = format!("{plugin}.yaml");
        let text = std::fs::read_to_string(committed.join(&file))
            .unwrap_or_else(|e| panic!("krew-manifests/{file}: {e}"));
        assert_eq!(
            text,
            std::fs::read_to_string(regenerated.path().join(&file)).unwrap(),
            "krew-manifests/{file} differs from what scripts/krew-manifests.sh generates from \
             krew-manifests/SHA256SUMS: regenerate it"
        );
        let doc = parse_manifest(&text, plugin);
        let platforms = doc["spec"]["platforms"].as_array().unwrap();
        let mut listed: Vec<String> = platforms
            .iter()
            .map(|p| {
                let labels = &p["selector"]["matchLabels"];
                let (os, arch) = (
                    labels["os"].as_str().unwrap(),
                    labels["arch"].as_str().unwrap(),
                );
                let archive = format!("kubectl-gitops-{plugin}-v{version}-{os}-{arch}.tar.gz");
                assert!(
                    p["uri"]
                        .as_str()
                        .unwrap()
                        .ends_with(&format!("/v{version}/{archive}")),
                    "{plugin}: {}",
                    p["uri"]
                );
                let sha = p["sha256"].as_str().unwrap();
                assert!(
                    sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit()),
                    "{plugin}: sha256 {sha}"
                );
                assert!(
                    sums.lines().any(|l| l == format!("{sha}  {archive}")),
                    "{plugin}: {archive}'s sha256 is not the release's"
                );
                assert_eq!(p["bin"], binary);
                format!("{os}-{arch}")
            })
            .collect();
        listed.sort();
        assert_eq!(listed, PLATFORMS, "{plugin}");
    }
}

/// The little-endian u32 at `at`.
fn u32le(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
}

/// The big-endian u32 at `at` (code signatures are big-endian).
fn u32be(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap())
}

/// What the binary in an archive is built for.
#[derive(Debug, PartialEq)]
enum Format {
    Elf { machine: u16 },
    MachO { cpu: u32 },
}

fn format_of(bytes: &[u8]) -> Format {
    let u16le = |at: usize| u16::from_le_bytes(bytes[at..at + 2].try_into().unwrap());
    if bytes.starts_with(b"\x7fELF") {
        Format::Elf { machine: u16le(18) }
    } else if u32le(bytes, 0) == 0xfeed_facf {
        Format::MachO {
            cpu: u32le(bytes, 4),
        }
    } else {
        panic!("neither ELF nor 64-bit Mach-O")
    }
}

/// A 64-bit Mach-O binary's load commands: (command, offset of the command).
fn load_commands(bytes: &[u8]) -> Vec<(u32, usize)> {
    let mut at = 32;
    (0..u32le(bytes, 16))
        .map(|_| {
            let command = (u32le(bytes, at), at);
            at += u32le(bytes, at + 4) as usize;
            command
        })
        .collect()
}

/// The libraries a Mach-O binary loads at start (LC_LOAD_DYLIB, LC_LOAD_WEAK_DYLIB).
fn macho_dylibs(bytes: &[u8]) -> Vec<String> {
    load_commands(bytes)
        .into_iter()
        .filter(|(cmd, _)| *cmd == 0xc || *cmd == 0x8000_0018)
        .map(|(_, at)| {
            let name =
                &bytes[at + u32le(bytes, at + 8) as usize..at + u32le(bytes, at + 4) as usize];
            let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
            String::from_utf8_lossy(&name[..end]).into_owned()
        })
        .collect()
}

/// The lowest macOS version a Mach-O binary runs on (LC_BUILD_VERSION), as (major, minor).
fn macos_minimum(bytes: &[u8]) -> (u32, u32) {
    let (_, at) = load_commands(bytes)
        .into_iter()
        .find(|(cmd, _)| *cmd == 0x32)
        .expect("no LC_BUILD_VERSION");
    assert_eq!(u32le(bytes, at + 8), 1, "the platform is macOS");
    let minos = u32le(bytes, at + 12);
    (minos >> 16, (minos >> 8) & 0xff)
}

/// macOS on Apple silicon runs only signed code: the binary's ad-hoc signature must cover
/// every page of it as it is in the archive. Returns the number of pages checked.
fn check_code_signature(bytes: &[u8]) -> usize {
    let (_, at) = load_commands(bytes)
        .into_iter()
        .find(|(cmd, _)| *cmd == 0x1d)
        .expect("no LC_CODE_SIGNATURE: macOS on arm64 refuses to run it");
    let blob = u32le(bytes, at + 8) as usize;
    assert_eq!(u32be(bytes, blob), 0xfade_0cc0, "an embedded signature");
    let directory = (0..u32be(bytes, blob + 8) as usize)
        .map(|i| blob + u32be(bytes, blob + 12 + 8 * i + 4) as usize)
        .find(|&d| u32be(bytes, d) == 0xfade_0c02)
        .expect("a code directory");
    let hash_offset = u32be(bytes, directory + 16) as usize;
    let code_slots = u32be(bytes, directory + 28) as usize;
    let code_limit = u32be(bytes, directory + 32) as usize;
    let (hash_size, hash_type, page_shift) = (
        bytes[directory + 36] as usize,
        bytes[directory + 37],
        bytes[directory + 39],
    );
    assert_eq!((hash_size, hash_type), (32, 2), "SHA-256 page hashes");
    assert_eq!(
        code_limit, blob,
        "the signature covers everything before it"
    );
    let page = 1usize << page_shift;
    assert_eq!(code_slots, code_limit.div_ceil(page), "one hash per page");
    for slot in 0..code_slots {
        let start = slot * page;
        let content = &bytes[start..(start + page).min(code_limit)];
        let expected = &bytes[directory + hash_offset + slot * hash_size..][..hash_size];
        assert!(
            Sha256::digest(content).as_slice() == expected,
            "page {slot} does not match its signature"
        );
    }
    code_slots
}

/// The newest glibc symbol version an ELF binary needs.
fn newest_glibc(binary: &Path) -> (u32, u32) {
    let versions = run(Command::new("readelf").arg("-V").arg(binary));
    versions
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .filter_map(|word| word.strip_prefix("GLIBC_"))
        .filter_map(|v| {
            let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
            Some((parts.next()??, parts.next().flatten().unwrap_or(0)))
        })
        .max()
        .expect("no glibc symbol versions")
}

/// Every plugin, built for each of krew's platforms by the release script, is in an
/// archive with its completion script and LICENSE; the binary is for that platform, the
/// Linux ones run (arm64 under qemu; release-history reads the test cluster) and need
/// glibc 2.17 at most, the macOS ones need macOS 11 at most, load only system libraries,
/// and (arm64) carry a valid signature.
/// Run on its own by tests/run.sh (ignored here): it builds the workspace four times.
#[test]
#[ignore]
fn release_archives_for_every_krew_platform_hold_a_binary_that_runs_there() {
    let root = workspace_root();
    let work = tempfile::tempdir().unwrap();
    let dist = work.path().join("dist");
    run(Command::new("bash")
        .arg(root.join("scripts/release-archives.sh"))
        .args(["--profile", "dev", "--all", "--out"])
        .arg(&dist));
    let version = env!("CARGO_PKG_VERSION");
    let qemu_root = PathBuf::from("/usr/aarch64-linux-gnu");
    let cluster = TestCluster::get();
    let namespace = cluster.namespace("release-archives");
    for platform in PLATFORMS {
        for (plugin, binary) in PLUGINS {
            let archive = dist.join(format!(
                "kubectl-gitops-{plugin}-v{version}-{platform}.tar.gz"
            ));
            // Exactly these files, no directory entry (extracting into ~/bin must not
            // change its mode), the binary executable.
            let names = run(Command::new("tar").arg("-tzf").arg(&archive));
            let mut names: Vec<&str> = names.lines().collect();
            names.sort_unstable();
            let mut want = vec![
                "LICENSE".to_string(),
                binary.to_string(),
                format!("kubectl_complete-{}", &binary[8..]),
            ];
            want.sort();
            assert_eq!(names, want, "{platform} {plugin}");
            let listing = run(Command::new("tar").arg("-tvzf").arg(&archive));
            assert!(
                listing
                    .lines()
                    .any(|l| l.starts_with("-rwxr-xr-x") && l.ends_with(&format!(" {binary}"))),
                "{platform} {plugin}: the binary is not executable\n{listing}"
            );
            let unpacked = work.path().join(platform).join(plugin);
            std::fs::create_dir_all(&unpacked).unwrap();
            run(Command::new("tar")
                .arg("-xzf")
                .arg(&archive)
                .arg("-C")
                .arg(&unpacked));
            let path = unpacked.join(binary);
            let bytes = std::fs::read(&path).unwrap();
            let want_version = format!("kubectl {plugin} {version} (commit ");
            match platform {
                "linux-amd64" | "linux-arm64" => {
                    let machine = if platform == "linux-amd64" { 62 } else { 183 };
                    assert_eq!(
                        format_of(&bytes),
                        Format::Elf { machine },
                        "{platform} {plugin}"
                    );
                    assert!(
                        newest_glibc(&path) <= (2, 17),
                        "{platform} {plugin} needs glibc {:?}",
                        newest_glibc(&path)
                    );
                    let native = || {
                        if platform == "linux-amd64" {
                            Command::new(&path)
                        } else {
                            let mut qemu = Command::new("qemu-aarch64");
                            qemu.arg("-L").arg(&qemu_root).arg(&path);
                            qemu
                        }
                    };
                    let out = run(native().arg("--version"));
                    assert!(out.starts_with(&want_version), "{platform}: {out}");
                    // And it talks to the real API server (TLS, HTTP/2, a LIST).
                    if plugin == "release-history" {
                        let out = run(native()
                            .args(["-n", &namespace.name, "-o", "json", "--kubeconfig"])
                            .arg(&cluster.admin_kubeconfig));
                        let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
                        assert_eq!(doc["apps"], serde_json::json!([]), "{platform}: {out}");
                    }
                }
                _ => {
                    let cpu = if platform == "darwin-amd64" {
                        0x0100_0007
                    } else {
                        0x0100_000c
                    };
                    assert_eq!(
                        format_of(&bytes),
                        Format::MachO { cpu },
                        "{platform} {plugin}"
                    );
                    assert!(macos_minimum(&bytes) <= (11, 0), "{platform} {plugin}");
                    let dylibs = macho_dylibs(&bytes);
                    assert!(
                        dylibs
                            .iter()
                            .any(|d| d.ends_with("/Security.framework/Versions/A/Security")),
                        "{dylibs:?}"
                    );
                    for dylib in &dylibs {
                        assert!(
                            dylib.starts_with("/usr/lib/")
                                || dylib.starts_with("/System/Library/Frameworks/"),
                            "{platform} {plugin} loads {dylib}, which a Mac does not have"
                        );
                    }
                    if platform == "darwin-arm64" {
                        assert!(check_code_signature(&bytes) > 100);
                    }
                }
            }
        }
    }

    // The manifests made from these archives list all four, with their checksums.
    let manifests = work.path().join("manifests");
    run(Command::new("bash")
        .arg(root.join("scripts/krew-manifests.sh"))
        .arg(&dist)
        .arg("--out")
        .arg(&manifests));
    let sums = std::fs::read_to_string(manifests.join("SHA256SUMS")).unwrap();
    for (plugin, _) in PLUGINS {
        let doc = parse_manifest(
            &std::fs::read_to_string(manifests.join(format!("{plugin}.yaml"))).unwrap(),
            plugin,
        );
        let platforms = doc["spec"]["platforms"].as_array().unwrap();
        assert_eq!(platforms.len(), 4, "{plugin}");
        for (p, platform) in platforms.iter().zip(PLATFORMS) {
            let archive = dist.join(format!(
                "kubectl-gitops-{plugin}-v{version}-{platform}.tar.gz"
            ));
            let sha = sha256(&archive);
            assert_eq!(p["sha256"], sha.as_str(), "{plugin} {platform}");
            let line = format!("{sha}  {}", archive.file_name().unwrap().to_string_lossy());
            assert!(sums.lines().any(|l| l == line), "{line} not in SHA256SUMS");
        }
    }
}
