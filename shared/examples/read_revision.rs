//! Reads the files under a path at a revision straight from the object database, as every
//! plugin does before rendering, and prints how many files and bytes it read. The
//! benchmark (`bench/bench.py`) times it against `git worktree add` plus reading the
//! checked-out files: the same work, without parsing on either side.
//!
//!     cargo run --release -p kubectl-gitops-shared --example read_revision -- REPO REV [PATH]

use std::path::Path;
use std::process::ExitCode;

use gitops::source::Repo;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(repo), Some(rev)) = (args.first(), args.get(1)) else {
        eprintln!("usage: read_revision REPO REV [PATH]");
        return ExitCode::from(2);
    };
    let path = args.get(2).map(String::as_str).unwrap_or("");
    match read(Path::new(repo), rev, path) {
        Ok((files, bytes)) => {
            println!("{files} files, {bytes} bytes");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(2)
        }
    }
}

fn read(repo: &Path, rev: &str, path: &str) -> Result<(usize, usize), gitops::source::SourceError> {
    let repo = Repo::discover(repo)?;
    let commit = repo.resolve(rev)?;
    let snapshot = repo.snapshot(&commit, path)?;
    Ok(snapshot
        .files_under_root()
        .fold((0, 0), |(files, bytes), (_, data)| {
            (files + 1, bytes + data.len())
        }))
}
