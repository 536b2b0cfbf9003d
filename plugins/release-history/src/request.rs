//! What the positional arguments ask for, checked against the flags before anything
//! connects, so a typo fails fast.

use anyhow::{Result, bail};

use crate::{Args, Format};

/// What the positional arguments ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Apps,
    History {
        app: String,
    },
    One {
        app: String,
        revision: u32,
    },
    Diff {
        app: String,
        before: u32,
        after: u32,
    },
}

impl Request {
    /// Checks the arguments before anything connects, so a typo fails fast.
    pub fn from_args(args: &Args) -> Result<Request> {
        let request = match (&args.app, args.revisions.as_slice()) {
            (None, _) => Request::Apps,
            (Some(app), []) => Request::History { app: app.clone() },
            (Some(app), [one]) => match one.split_once("..") {
                Some((a, b)) => Request::Diff {
                    app: app.clone(),
                    before: revision(a)?,
                    after: revision(b)?,
                },
                None => Request::One {
                    app: app.clone(),
                    revision: revision(one)?,
                },
            },
            (Some(app), [a, b]) => Request::Diff {
                app: app.clone(),
                before: revision(a)?,
                after: revision(b)?,
            },
            (Some(_), _) => bail!("give at most two revisions: REV, REV_A REV_B or REV_A..REV_B"),
        };
        if args.namespaces.all && request != Request::Apps {
            bail!(
                "-A lists the apps of every namespace; for one app's releases, name its namespace with -n"
            );
        }
        if args.max.is_some() && !matches!(request, Request::History { .. }) {
            bail!(
                "--max limits the list of one app's releases: kubectl release-history APP --max N"
            );
        }
        if args.manifest && !matches!(request, Request::One { .. }) {
            bail!(
                "--manifest prints the manifest of one release: kubectl release-history APP REV --manifest"
            );
        }
        if args.web.web
            && (request != Request::Apps || args.output.format.is_some() || args.max.is_some())
        {
            bail!(
                "--web serves every app of the namespace (-A: of every namespace) in the browser; leave out APP, REV, -o and --max"
            );
        }
        if args.output.format == Some(Format::Html) && !matches!(request, Request::History { .. }) {
            bail!(
                "-o html writes one app's releases as a page: kubectl release-history APP -o html > report.html"
            );
        }
        if args.output.format == Some(Format::Tree) {
            if !matches!(request, Request::History { .. } | Request::One { .. }) {
                bail!(
                    "-o tree shows one app's resource tree: kubectl release-history APP -o tree (its deployed release) or APP REV -o tree"
                );
            }
            if args.max.is_some() || args.manifest {
                bail!(
                    "-o tree shows the release's objects as they are now; leave out --max and --manifest"
                );
            }
        }
        Ok(request)
    }
}

/// A release number: a positive integer.
fn revision(text: &str) -> Result<u32> {
    match text.trim().parse::<u32>() {
        Ok(n) if n > 0 => Ok(n),
        _ => bail!(
            "\"{text}\" is not a release number: give a revision such as 3 (see the REVISION column)"
        ),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn request(words: &[&str]) -> Result<Request> {
        let args = <Args as clap::Parser>::try_parse_from(
            std::iter::once("kubectl-release_history").chain(words.iter().copied()),
        )?;
        Request::from_args(&args)
    }

    #[test]
    fn positionals_choose_the_view() {
        assert_eq!(request(&[]).unwrap(), Request::Apps);
        assert_eq!(request(&["-A"]).unwrap(), Request::Apps);
        assert_eq!(
            request(&["web", "--max", "3"]).unwrap(),
            Request::History { app: "web".into() }
        );
        assert_eq!(
            request(&["web", "3", "--manifest"]).unwrap(),
            Request::One {
                app: "web".into(),
                revision: 3
            }
        );
        let diff = Request::Diff {
            app: "web".into(),
            before: 2,
            after: 5,
        };
        assert_eq!(request(&["web", "2", "5"]).unwrap(), diff);
        assert_eq!(
            request(&["web", "-o", "tree"]).unwrap(),
            Request::History { app: "web".into() }
        );
        assert_eq!(request(&["web", "2..5"]).unwrap(), diff);
    }

    #[test]
    fn misuse_is_refused_with_the_right_usage() {
        let err = |words: &[&str]| request(words).unwrap_err().to_string();
        assert!(err(&["web", "x"]).contains("\"x\" is not a release number"));
        assert!(err(&["web", "0"]).contains("\"0\" is not a release number"));
        assert!(err(&["web", "2.."]).contains("\"\" is not a release number"));
        assert!(err(&["web", "-A"]).contains("name its namespace with -n"));
        assert!(err(&["web", "3", "--max", "2"]).contains("--max limits"));
        assert!(err(&["web", "--manifest"]).contains("--manifest prints"));
        assert!(err(&["--max", "0"]).contains("0"));
        assert!(err(&["web", "1", "2", "3"]).contains("unexpected value"));
        assert!(err(&["-o", "tree"]).contains("-o tree shows one app's"));
        assert!(err(&["web", "--web"]).contains("--web serves every app"));
        assert!(err(&["-o", "html"]).contains("-o html writes one app's"));
        assert!(err(&["web", "1..2", "-o", "html"]).contains("-o html writes one app's"));
        assert_eq!(
            request(&["web", "-o", "html", "--max", "3"]).unwrap(),
            Request::History { app: "web".into() }
        );
        assert!(err(&["--web", "-o", "json"]).contains("--web serves every app"));
        assert!(err(&["--open"]).contains("--web"));
        assert_eq!(request(&["--web", "-A", "--open"]).unwrap(), Request::Apps);
        assert!(err(&["web", "1..2", "-o", "tree"]).contains("-o tree shows one app's"));
        assert!(err(&["web", "-o", "tree", "--max", "2"]).contains("leave out --max"));
        assert!(err(&["web", "1", "-o", "tree", "--manifest"]).contains("leave out --max"));
    }
}
