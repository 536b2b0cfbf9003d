//! Collecting files: from a git tree, from a list of working-tree paths, from a plain
//! directory; then resolving symlinks inside what was collected.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::Path;
use std::sync::Arc;

use git2::{ObjectType, Oid, Repository};

use super::integrity::{self, Corrupt, LooseBlobs};
use super::{Snapshot, SourceError};

/// Limit on files copied through directory symlinks, so a hostile tree of links cannot
/// make us allocate without bound.
const MAX_LINKED_FILES: usize = 100_000;
/// Like the kernel's limit on symlinks followed while resolving one path.
const MAX_LINK_HOPS: usize = 40;
pub(super) const GIT_SYMLINK_MODE: i32 = 0o120000;

/// Regular files read so far, and symlinks (path -> target) not yet resolved.
#[derive(Debug, Default)]
pub(super) struct RawTree {
    files: BTreeMap<String, Vec<u8>>,
    links: BTreeMap<String, String>,
}

/// A name we are willing to put in a path: UTF-8, not special, not git's own directory,
/// and without control characters (a newline or an escape sequence in a file name would
/// reach error messages and diff headers, and no manifest needs one).
fn usable_name(name: &[u8]) -> Option<&str> {
    let name = std::str::from_utf8(name).ok()?;
    let special = matches!(name, "" | "." | "..")
        || name.eq_ignore_ascii_case(".git")
        || name.contains('/')
        || name.chars().any(char::is_control);
    (!special).then_some(name)
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}/{name}")
    }
}

/// Why a tree could not be read.
#[derive(Debug)]
pub(super) enum TreeError {
    Git(git2::Error),
    Corrupt(Corrupt),
}

impl From<git2::Error> for TreeError {
    fn from(error: git2::Error) -> Self {
        TreeError::Git(error)
    }
}

/// Walk `tree` once, taking every blob from `loose` (read while checking) or else straight
/// from the object database.
pub(super) fn read_git_tree(
    repo: &Repository,
    tree: &git2::Tree<'_>,
    loose: &LooseBlobs,
) -> Result<RawTree, TreeError> {
    // Reading through the odb skips libgit2's object cache, which would only hold every
    // blob in memory a second time.
    let odb = repo.odb()?;
    let objects = integrity::objects_dir(repo);
    // Large loose blobs were left unchecked by `Repo`'s first read (see integrity.rs).
    let read = |id: Oid| -> Result<Vec<u8>, TreeError> {
        if let Some(content) = loose.get(id) {
            return Ok(content.to_vec());
        }
        integrity::check_large_loose_object(&objects, id).map_err(TreeError::Corrupt)?;
        Ok(odb.read(id)?.data().to_vec())
    };
    let mut raw = RawTree::default();
    let mut pending: Vec<(String, Oid)> = vec![(String::new(), tree.id())];
    while let Some((prefix, id)) = pending.pop() {
        let tree = repo.find_tree(id)?;
        for entry in tree.iter() {
            let Some(name) = usable_name(entry.name_bytes()) else {
                continue;
            };
            let path = join(&prefix, name);
            match entry.kind() {
                Some(ObjectType::Tree) => pending.push((path, entry.id())),
                Some(ObjectType::Blob) if entry.filemode() == GIT_SYMLINK_MODE => {
                    if let Ok(target) = String::from_utf8(read(entry.id())?) {
                        raw.links.insert(path, target);
                    }
                }
                Some(ObjectType::Blob) => {
                    raw.files.insert(path, read(entry.id())?);
                }
                // Submodules (commit entries) have no content here.
                _ => {}
            }
        }
    }
    Ok(raw)
}

/// Read the listed repo-relative paths under `base` without following any symlink: a
/// symlink is recorded as a link, and a path below a symlinked directory is skipped.
pub(super) fn read_listed_files(
    base: &Path,
    paths: impl IntoIterator<Item = String>,
) -> Result<RawTree, SourceError> {
    let mut raw = RawTree::default();
    let mut dir_ok: HashMap<String, bool> = HashMap::new();
    for path in paths {
        if !path
            .split('/')
            .all(|part| usable_name(part.as_bytes()).is_some())
        {
            continue;
        }
        let parent = path.rsplit_once('/').map_or("", |(dir, _)| dir);
        if !real_directory(base, parent, &mut dir_ok) {
            continue;
        }
        read_entry(base, &path, &mut raw)?;
    }
    Ok(raw)
}

/// True when every component of `dir` under `base` is a real directory, not a symlink.
fn real_directory(base: &Path, dir: &str, cache: &mut HashMap<String, bool>) -> bool {
    if dir.is_empty() {
        return true;
    }
    if let Some(&known) = cache.get(dir) {
        return known;
    }
    let parent = dir.rsplit_once('/').map_or("", |(parent, _)| parent);
    let ok = real_directory(base, parent, cache)
        && fs::symlink_metadata(base.join(dir)).is_ok_and(|meta| meta.file_type().is_dir());
    cache.insert(dir.to_owned(), ok);
    ok
}

/// Record one path: regular files are read, symlinks remembered, anything else (missing,
/// directory, fifo, socket) skipped.
fn read_entry(base: &Path, path: &str, raw: &mut RawTree) -> Result<(), SourceError> {
    let full = base.join(path);
    let Ok(meta) = fs::symlink_metadata(&full) else {
        return Ok(());
    };
    let kind = meta.file_type();
    if kind.is_file() {
        let data = fs::read(&full).map_err(|e| SourceError::Read {
            path: full,
            message: e.to_string(),
        })?;
        raw.files.insert(path.to_owned(), data);
    } else if kind.is_symlink()
        && let Ok(target) = fs::read_link(&full)
        && let Some(target) = target.to_str()
    {
        raw.links.insert(path.to_owned(), target.to_owned());
    }
    Ok(())
}

/// A plain directory that is not a git repository (read as a working tree; root = "").
/// `.git` directories are skipped and symlinks are not followed.
pub fn read_directory(dir: &Path) -> Result<Snapshot, SourceError> {
    let meta = fs::metadata(dir).map_err(|e| SourceError::Read {
        path: dir.to_path_buf(),
        message: e.to_string(),
    })?;
    if !meta.is_dir() {
        return Err(SourceError::NotADirectory {
            path: dir.to_path_buf(),
        });
    }
    let mut raw = RawTree::default();
    let mut pending = vec![String::new()];
    while let Some(prefix) = pending.pop() {
        let here = dir.join(&prefix);
        let read_err = |e: std::io::Error| SourceError::Read {
            path: here.clone(),
            message: e.to_string(),
        };
        for entry in fs::read_dir(&here).map_err(read_err)? {
            let entry = entry.map_err(read_err)?;
            let Some(name) = entry
                .file_name()
                .to_str()
                .and_then(|n| usable_name(n.as_bytes()))
                .map(str::to_owned)
            else {
                continue;
            };
            let path = join(&prefix, &name);
            // DirEntry::file_type does not follow symlinks.
            match entry.file_type() {
                Ok(kind) if kind.is_dir() => pending.push(path),
                Ok(_) => read_entry(dir, &path, &mut raw)?,
                Err(_) => {}
            }
        }
    }
    let files = raw.resolve_links(&dir.display().to_string())?;
    Ok(Snapshot {
        files: Arc::new(files),
        root: String::new(),
        commit: None,
    })
}

impl RawTree {
    /// Give each symlink whose target stays inside the tree the content of that target (a
    /// file, or every file of a directory); drop the others. Nothing outside is ever read:
    /// targets are looked up only among the files already collected.
    pub(super) fn resolve_links(
        self,
        repo: &str,
    ) -> Result<BTreeMap<String, Vec<u8>>, SourceError> {
        let RawTree { mut files, links } = self;
        let targets: Vec<(&String, String)> = links
            .keys()
            .filter_map(|link| follow(&links, link).map(|target| (link, target)))
            .collect();
        // File links first, so that directory links below can copy them too.
        for (link, target) in &targets {
            if let Some(data) = files.get(target).cloned() {
                files.insert((*link).clone(), data);
            }
        }
        let mut copied = 0usize;
        for (link, target) in &targets {
            // A link to the root or to one of its own parents would contain itself.
            if target.is_empty()
                || files.contains_key(target)
                || link.starts_with(&format!("{target}/"))
            {
                continue;
            }
            let prefix = format!("{target}/");
            let below: Vec<(String, Vec<u8>)> = files
                .range::<str, _>((
                    std::ops::Bound::Included(prefix.as_str()),
                    std::ops::Bound::Unbounded,
                ))
                .take_while(|(path, _)| path.starts_with(&prefix))
                .map(|(path, data)| (format!("{link}/{}", &path[prefix.len()..]), data.clone()))
                .collect();
            copied += below.len();
            if copied > MAX_LINKED_FILES {
                return Err(SourceError::TooManyLinkedFiles {
                    repo: repo.to_owned(),
                    limit: MAX_LINKED_FILES,
                });
            }
            files.extend(below);
        }
        Ok(files)
    }
}

/// Resolve the symlink at `link` to a path inside the tree, as the kernel would, but over
/// the recorded links only. None when it leaves the tree, is absolute, or loops.
fn follow(links: &BTreeMap<String, String>, link: &str) -> Option<String> {
    // A stack of components still to walk: the next one is last.
    let mut pending: Vec<String> = Vec::new();
    let push_reversed = |pending: &mut Vec<String>, path: &str| {
        pending.extend(path.split('/').rev().map(str::to_owned));
    };
    let target = links.get(link)?;
    if target.starts_with('/') {
        return None;
    }
    push_reversed(&mut pending, target);
    let parent = link.rsplit_once('/').map_or("", |(dir, _)| dir);
    let mut resolved: Vec<String> = parent
        .split('/')
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect();
    let mut hops = 1;
    while let Some(part) = pending.pop() {
        match part.as_str() {
            "" | "." => {}
            ".." => {
                resolved.pop()?;
            }
            _ => {
                resolved.push(part);
                let here = resolved.join("/");
                if let Some(next) = links.get(&here) {
                    hops += 1;
                    if hops > MAX_LINK_HOPS || next.starts_with('/') {
                        return None;
                    }
                    resolved.pop();
                    push_reversed(&mut pending, next);
                }
            }
        }
    }
    Some(resolved.join("/"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn raw(files: &[&str], links: &[(&str, &str)]) -> RawTree {
        RawTree {
            files: files
                .iter()
                .map(|p| (p.to_string(), p.as_bytes().to_vec()))
                .collect(),
            links: links
                .iter()
                .map(|(l, t)| (l.to_string(), t.to_string()))
                .collect(),
        }
    }

    #[test]
    fn links_inside_the_tree_resolve_and_others_are_dropped() {
        let tree = raw(
            &["base/kustomization.yaml", "base/deploy.yaml", "apps/x.yaml"],
            &[
                ("alias.yaml", "apps/x.yaml"),
                ("overlay/base", "../base"),
                ("chain.yaml", "overlay/base/deploy.yaml"),
                ("abs", "/etc/passwd"),
                ("up", "../outside"),
                ("deep", "apps/../../outside"),
                ("loop1", "loop2"),
                ("loop2", "loop1"),
                ("dangling", "nope"),
                ("self", "."),
                ("apps/parent", ".."),
            ],
        );
        let files = tree.resolve_links("repo").unwrap();
        assert_eq!(files["alias.yaml"], b"apps/x.yaml");
        assert_eq!(files["overlay/base/deploy.yaml"], b"base/deploy.yaml");
        assert_eq!(files["chain.yaml"], b"base/deploy.yaml");
        for dropped in [
            "abs",
            "up",
            "deep",
            "loop1",
            "loop2",
            "dangling",
            "self",
            "apps/parent",
        ] {
            assert!(
                !files
                    .keys()
                    .any(|k| k == dropped || k.starts_with(&format!("{dropped}/"))),
                "{dropped}"
            );
        }
    }

    #[test]
    fn usable_names_exclude_specials() {
        assert_eq!(usable_name(b"a.yaml"), Some("a.yaml"));
        for bad in [
            &b".."[..],
            b".",
            b"",
            b".git",
            b".GIT",
            b"a/b",
            b"\xff\xfe",
            b"a\nb.yaml",
            b"\x1b[31mred.yaml",
        ] {
            assert_eq!(usable_name(bad), None);
        }
    }
}
