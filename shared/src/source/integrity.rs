//! Checking loose objects before libgit2 reads them.
//!
//! libgit2 1.9 loops forever inflating a loose object whose zlib stream is cut short (a
//! truncated file: a full disk, a bad copy): `git_zstream_get_output` retries without
//! progress and never gives up, and any read of the object (a revision, a tree, a status)
//! hangs at full CPU. Packed objects are read by code that notices. So before a
//! repository's first read, its loose objects are inflated here, with flate2, which
//! reports the truncation. Large blobs, which only our own tree walk reads, are checked
//! just before that read instead of up front.
//!
//! A small blob inflated here is kept ([`LooseBlobs`]), so that the walk takes its content
//! from here instead of having libgit2 open and inflate the same file a second time.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::ZlibDecoder;
use flate2::{Decompress, FlushDecompress, Status};
use git2::{ObjectType, Oid};

/// Loose files up to this size are checked up front; larger ones up front only when they
/// are not blobs (commits and trees are read by libgit2 on its own, blobs by our walk).
const EAGER_BYTES: u64 = 64 * 1024;

/// At most this many bytes of loose blob content are kept; past it the walk reads the rest
/// through libgit2, as it reads packed ones.
const KEPT_BYTES: usize = 64 * 1024 * 1024;

/// The content of the small loose blobs found while checking, by id. Each was inflated
/// whole, its header matched its length, and its content hashes to its id (as libgit2
/// checks when it reads an object), so it is what libgit2 would have read.
#[derive(Default)]
pub(super) struct LooseBlobs {
    by_id: HashMap<Oid, Vec<u8>>,
}

impl std::fmt::Debug for LooseBlobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LooseBlobs({} blobs)", self.by_id.len())
    }
}

impl LooseBlobs {
    pub(super) fn get(&self, id: Oid) -> Option<&[u8]> {
        self.by_id.get(&id).map(Vec::as_slice)
    }

    #[cfg(test)]
    pub(super) fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

/// A loose object that cannot be read whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Corrupt {
    pub id: String,
    pub message: String,
}

/// The object directory of `repo` (shared by its worktrees).
pub(super) fn objects_dir(repo: &git2::Repository) -> PathBuf {
    repo.commondir().join("objects")
}

/// Checks the loose objects under `objects` that libgit2 may read on its own: every one
/// except blobs larger than [`EAGER_BYTES`]. The fan-out directories are shared among a
/// few threads: a freshly committed repository can hold thousands of loose objects, and
/// this runs before anything else can start. Of several corrupt objects, the one with
/// the lowest id is reported. Returns the small blobs' content.
pub(super) fn check_loose_objects(objects: &Path) -> Result<LooseBlobs, Corrupt> {
    let Ok(dirs) = fs::read_dir(objects) else {
        return Ok(LooseBlobs::default());
    };
    let dirs: Vec<(String, PathBuf)> = dirs
        .flatten()
        .filter_map(|dir| {
            let name = dir.file_name();
            // Not pack/, info/ or temporary files.
            let prefix = name.to_str().filter(|n| is_hex(n, 2))?.to_string();
            Some((prefix, dir.path()))
        })
        .collect();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 4);
    let share = dirs.len().div_ceil(threads).max(1);
    let budget = KEPT_BYTES / threads;
    let found: Vec<Result<LooseBlobs, Corrupt>> = std::thread::scope(|scope| {
        let workers: Vec<_> = dirs
            .chunks(share)
            .map(|part| scope.spawn(move || check_dirs(part, budget)))
            .collect();
        workers
            .into_iter()
            .filter_map(|worker| worker.join().ok())
            .collect()
    });
    let mut blobs = LooseBlobs::default();
    let mut corrupt: Option<Corrupt> = None;
    for result in found {
        match result {
            Ok(part) => blobs.by_id.extend(part.by_id),
            Err(c) => {
                if corrupt.as_ref().is_none_or(|seen| c.id < seen.id) {
                    corrupt = Some(c);
                }
            }
        }
    }
    match corrupt {
        Some(corrupt) => Err(corrupt),
        None => Ok(blobs),
    }
}

/// [`check_loose_objects`] for some fan-out directories (`prefix`, path), keeping up to
/// `budget` bytes of blob content.
fn check_dirs(dirs: &[(String, PathBuf)], mut budget: usize) -> Result<LooseBlobs, Corrupt> {
    let mut blobs = LooseBlobs::default();
    let mut inflater = Inflater::new();
    for (prefix, dir) in dirs {
        let Ok(files) = fs::read_dir(dir) else {
            continue;
        };
        for file in files.flatten() {
            let name = file.file_name();
            let Some(rest) = name.to_str().filter(|n| is_hex(n, 38)) else {
                continue;
            };
            let id = format!("{prefix}{rest}");
            let object = match inflater.small_file(&file.path()) {
                Ok(Some(object)) => object,
                Ok(None) => {
                    check_file(&id, &file.path(), true)?;
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(corrupt(&id, &e)),
            };
            if let Ok(oid) = Oid::from_str(&id)
                && let Some(content) = blob_content(oid, object)
                && content.len() <= budget
            {
                budget -= content.len();
                blobs.by_id.insert(oid, content);
            }
        }
    }
    Ok(blobs)
}

/// Inflates small loose objects one after another, with one decompressor and one input
/// buffer for all of them (a new decompressor is a zeroed allocation of tens of KiB, which
/// for thousands of small objects costs more than inflating them).
struct Inflater {
    z: Decompress,
    compressed: Vec<u8>,
}

impl Inflater {
    fn new() -> Inflater {
        Inflater {
            z: Decompress::new(true),
            compressed: Vec::new(),
        }
    }

    /// The whole object (header and content) in the loose file at `path`, inflated; None
    /// if the file is larger than [`EAGER_BYTES`].
    fn small_file(&mut self, path: &Path) -> io::Result<Option<Vec<u8>>> {
        let mut file = File::open(path)?;
        if file.metadata()?.len() > EAGER_BYTES {
            return Ok(None);
        }
        self.compressed.clear();
        file.read_to_end(&mut self.compressed)?;
        let mut object = Vec::with_capacity(self.compressed.len() * 3 + 64);
        self.z.reset(true);
        loop {
            let consumed = usize::try_from(self.z.total_in()).unwrap_or(usize::MAX);
            let input = self.compressed.get(consumed..).unwrap_or_default();
            let status = self
                .z
                .decompress_vec(input, &mut object, FlushDecompress::Finish)
                .map_err(|_| {
                    io::Error::new(io::ErrorKind::InvalidData, "corrupt deflate stream")
                })?;
            match status {
                Status::StreamEnd => return Ok(Some(object)),
                // Out of room: grow and go on.
                _ if object.len() == object.capacity() => object.reserve(object.capacity()),
                // All the input taken, and the stream has not ended.
                _ => return Err(io::ErrorKind::UnexpectedEof.into()),
            }
        }
    }
}

/// The content of `object` (a whole inflated loose object) if it is a blob whose header
/// gives its length and whose content hashes to `id`; None for anything else, which
/// libgit2 reads (and reports) itself.
fn blob_content(id: Oid, mut object: Vec<u8>) -> Option<Vec<u8>> {
    let header_end = object.iter().position(|&b| b == 0)?;
    let length: usize = std::str::from_utf8(object[..header_end].strip_prefix(b"blob ")?)
        .ok()?
        .parse()
        .ok()?;
    if object.len() - header_end - 1 != length {
        return None;
    }
    object.drain(..=header_end);
    let hashed = Oid::hash_object(ObjectType::Blob, &object).ok()?;
    (hashed == id).then_some(object)
}

/// Checks one loose object file (a `large` blob is left for later). A file gone by the
/// time it is opened is not corrupt: a `git gc` running meanwhile packed or pruned it (git
/// starts one in the background after a commit that leaves many loose objects), and
/// libgit2 reads it from the pack.
fn check_file(id: &str, path: &Path, large: bool) -> Result<(), Corrupt> {
    let checked = if large {
        object_kind(path).and_then(|kind| {
            if kind == "blob" {
                Ok(())
            } else {
                inflate(path)
            }
        })
    } else {
        inflate(path)
    };
    match checked {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other.map_err(|e| corrupt(id, &e)),
    }
}

/// Checks `id` if it is a loose object that [`check_loose_objects`] left for later; a
/// packed or missing object is libgit2's to read or report.
pub(super) fn check_large_loose_object(objects: &Path, id: Oid) -> Result<(), Corrupt> {
    let hex = id.to_string();
    let path = objects.join(&hex[..2]).join(&hex[2..]);
    if fs::metadata(&path).is_ok_and(|m| m.is_file() && m.len() > EAGER_BYTES) {
        check_file(&hex, &path, false)?;
    }
    Ok(())
}

/// Checks `id` if it is a loose object, whatever its size: for a read that takes a few
/// objects by id instead of checking every loose one first.
pub(super) fn check_one_loose_object(objects: &Path, id: Oid) -> Result<(), Corrupt> {
    let hex = id.to_string();
    check_file(&hex, &objects.join(&hex[..2]).join(&hex[2..]), false)
}

fn is_hex(name: &str, len: usize) -> bool {
    name.len() == len && name.bytes().all(|b| b.is_ascii_hexdigit())
}

fn corrupt(id: &str, error: &io::Error) -> Corrupt {
    Corrupt {
        id: id.to_string(),
        message: match error.kind() {
            io::ErrorKind::UnexpectedEof => {
                "its compressed data ends early (a truncated file?)".to_string()
            }
            _ => error.to_string(),
        },
    }
}

/// Inflates a whole loose object, keeping nothing.
fn inflate(path: &Path) -> io::Result<()> {
    let file = File::open(path)?;
    io::copy(&mut ZlibDecoder::new(BufReader::new(file)), &mut io::sink())?;
    Ok(())
}

/// The type word of a loose object's header (`blob 123\0...`).
fn object_kind(path: &Path) -> io::Result<String> {
    let file = File::open(path)?;
    let mut head = Vec::new();
    ZlibDecoder::new(BufReader::new(file))
        .take(32)
        .read_to_end(&mut head)?;
    let word = head.split(|&b| b == b' ').next().unwrap_or_default();
    Ok(String::from_utf8_lossy(word).into_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use std::time::{Duration, Instant};

    use super::super::test_support::TestRepo;
    use super::super::{Repo, SourceError};
    use super::*;

    /// `len` random letters: compressed, still more than [`EAGER_BYTES`].
    fn random_letters(len: usize) -> String {
        let mut x = 1u64;
        (0..len)
            .map(|_| {
                x = x
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                char::from(b'a' + ((x >> 33) % 26) as u8)
            })
            .collect()
    }

    /// A repository whose file `path` (committed) has its loose blob replaced by `bytes`.
    fn damaged(content: &str, damage: impl Fn(&[u8]) -> Vec<u8>) -> (TestRepo, String) {
        let t = TestRepo::new();
        t.write("good/cm.yaml", content);
        t.commit("one");
        let id = t.git(&["rev-parse", "HEAD:good/cm.yaml"]);
        let id = id.trim().to_string();
        let path = t.dir.join(".git/objects").join(&id[..2]).join(&id[2..]);
        let bytes = fs::read(&path).unwrap();
        let mut perms = fs::metadata(&path).unwrap().permissions();
        #[allow(clippy::permissions_set_readonly_false)] // a test fixture, removed with it
        perms.set_readonly(false);
        fs::set_permissions(&path, perms).unwrap();
        fs::write(&path, damage(&bytes)).unwrap();
        (t, id)
    }

    #[test]
    fn a_truncated_loose_object_is_an_error_not_a_hang() {
        let small = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: fine\n".to_string();
        // Large enough to be checked only when the walk reaches it.
        let large = random_letters(200_000);
        for content in [small, large] {
            for cut in [2, 3] {
                let (t, id) = damaged(&content, |b| b[..b.len() * (cut - 1) / cut].to_vec());
                let started = Instant::now();
                let repo = Repo::discover(&t.dir).unwrap();
                let err = repo
                    .resolve("HEAD")
                    .and_then(|commit| repo.snapshot(&commit, "good"))
                    .unwrap_err();
                assert!(started.elapsed() < Duration::from_secs(10));
                let text = err.to_string();
                assert!(matches!(err, SourceError::CorruptObject { .. }), "{text}");
                assert!(text.contains(&id[..7]), "{text}");
                assert!(text.contains("ends early"), "{text}");
                // The working tree is read through git's status, which reads trees too; a
                // large blob is not read there, so only a small one is refused.
                let fresh = Repo::discover(&t.dir).unwrap();
                match fresh.working_tree("good") {
                    Err(err) => assert!(err.to_string().contains(&id[..7]), "{err}"),
                    Ok(_) => assert!(content.len() > EAGER_BYTES as usize),
                }
            }
        }
    }

    #[test]
    fn garbage_in_a_loose_object_is_an_error() {
        let (t, id) = damaged("x: 1\n", |_| b"this is not zlib".to_vec());
        let repo = Repo::discover(&t.dir).unwrap();
        let err = repo.resolve("HEAD").unwrap_err().to_string();
        assert!(
            err.contains(&id[..7]) && err.contains("corrupt deflate stream"),
            "{err}"
        );
        // Telling a revision from a path says so too, rather than "HEAD" being unknown.
        let err = super::super::classify_positional(&repo, "HEAD", &t.dir).unwrap_err();
        assert!(matches!(err, SourceError::CorruptObject { .. }), "{err}");
    }

    #[test]
    fn a_loose_object_a_concurrent_gc_packed_is_not_corrupt() {
        let t = TestRepo::new();
        t.write("a.yaml", "a: 1\n");
        t.commit("one");
        let id = t.git(&["rev-parse", "HEAD:a.yaml"]).trim().to_string();
        let path = t.dir.join(".git/objects").join(&id[..2]).join(&id[2..]);
        assert!(path.is_file());
        // As listed before the gc, opened after it.
        t.git(&["gc", "--quiet", "--prune=now"]);
        assert!(!path.exists(), "the gc packed it");
        check_file(&id, &path, false).unwrap();
        check_file(&id, &path, true).unwrap();
        let repo = Repo::discover(&t.dir).unwrap();
        let commit = repo.resolve("HEAD").unwrap();
        repo.snapshot(&commit, "").unwrap();
    }

    #[test]
    fn small_loose_blobs_are_kept_as_libgit2_reads_them() {
        let t = TestRepo::new();
        t.write("a.yaml", "a: 1\n");
        t.write("empty.yaml", "");
        t.write("large.txt", &random_letters(200_000));
        t.commit("one");
        let id = |spec: &str| Oid::from_str(t.git(&["rev-parse", spec]).trim()).unwrap();
        let blobs = check_loose_objects(&t.dir.join(".git/objects")).unwrap();
        assert_eq!(blobs.get(id("HEAD:a.yaml")), Some(&b"a: 1\n"[..]));
        assert_eq!(blobs.get(id("HEAD:empty.yaml")), Some(&b""[..]));
        // Large blobs are read by the walk; commits and trees are not blobs.
        let large_file = |spec: &str| {
            let hex = id(spec).to_string();
            fs::metadata(t.dir.join(".git/objects").join(&hex[..2]).join(&hex[2..]))
                .unwrap()
                .len()
        };
        assert!(large_file("HEAD:large.txt") > EAGER_BYTES);
        assert!(blobs.get(id("HEAD:large.txt")).is_none());
        assert!(blobs.get(id("HEAD")).is_none());
        assert!(blobs.get(id("HEAD^{tree}")).is_none());
        let repo = Repo::discover(&t.dir).unwrap();
        let snapshot = repo.snapshot(&repo.resolve("HEAD").unwrap(), "").unwrap();
        let files: Vec<(&str, usize)> = snapshot
            .files_under_root()
            .map(|(path, data)| (path, data.len()))
            .collect();
        assert_eq!(
            files,
            [("a.yaml", 5), ("empty.yaml", 0), ("large.txt", 200_000)]
        );
    }

    #[test]
    fn a_loose_blob_whose_content_is_not_its_id_is_not_kept_and_the_read_fails() {
        // Sound zlib, right length, other content: only hashing tells.
        let (t, id) = damaged("a: 1\n", |_| {
            let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut z, b"blob 5\0b: 2\n").unwrap();
            z.finish().unwrap()
        });
        let blobs = check_loose_objects(&t.dir.join(".git/objects")).unwrap();
        assert_eq!(blobs.get(Oid::from_str(&id).unwrap()), None);
        let repo = Repo::discover(&t.dir).unwrap();
        let err = repo
            .resolve("HEAD")
            .and_then(|commit| repo.snapshot(&commit, "good"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("hash mismatch"), "{err}");
    }

    #[test]
    fn sound_objects_pass() {
        let t = TestRepo::new();
        t.write("a.yaml", "a: 1\n");
        t.commit("one");
        let objects = t.dir.join(".git/objects");
        check_loose_objects(&objects).unwrap();
        let id = Oid::from_str(t.git(&["rev-parse", "HEAD:a.yaml"]).trim()).unwrap();
        check_large_loose_object(&objects, id).unwrap();
        // Not loose at all: libgit2's to answer.
        check_large_loose_object(&objects, Oid::ZERO_SHA1).unwrap();
    }
}
