//! Chart versions and version ranges as Helm reads them (Masterminds semver v3): `^1.2`,
//! `~1.2.3`, `>=1.0 <2.0`, `1.x`, `*`, `1.2.3`, `a, b` (and), `a || b` (or), `1.2 - 1.4`.
//! A prerelease version matches only a range whose group names a prerelease itself.

use std::cmp::Ordering;
use std::fmt;

/// A version: `v` prefix allowed, missing minor and patch read as 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    pub prerelease: String,
    /// The text as written (`v1.2`), which Helm keeps in a Chart.lock.
    pub original: String,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.original)
    }
}

fn identifiers_ok(text: &str) -> bool {
    !text.is_empty()
        && text.split('.').all(|part| {
            !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

impl Version {
    /// Parses a version as Helm does for index entries and tags; `None` if it is not one.
    pub fn parse(text: &str) -> Option<Version> {
        let original = text.to_string();
        let text = text.strip_prefix('v').unwrap_or(text);
        let (text, metadata) = match text.split_once('+') {
            Some((t, m)) => (t, Some(m)),
            None => (text, None),
        };
        if metadata.is_some_and(|m| !identifiers_ok(m)) {
            return None;
        }
        let (core, prerelease) = match text.split_once('-') {
            Some((c, p)) => (c, p),
            None => (text, ""),
        };
        if !prerelease.is_empty() && !identifiers_ok(prerelease) {
            return None;
        }
        if text.contains('-') && prerelease.is_empty() {
            return None;
        }
        let mut numbers = [0u64; 3];
        let parts: Vec<&str> = core.split('.').collect();
        if parts.is_empty() || parts.len() > 3 {
            return None;
        }
        for (slot, part) in numbers.iter_mut().zip(&parts) {
            if part.is_empty() || !part.chars().all(|c| c.is_ascii_digit()) {
                return None;
            }
            *slot = part.parse().ok()?;
        }
        Some(Version {
            major: numbers[0],
            minor: numbers[1],
            patch: numbers[2],
            prerelease: prerelease.to_string(),
            original,
        })
    }

    /// Semver precedence (build metadata ignored).
    pub fn compare(&self, other: &Version) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            .then_with(|| compare_prerelease(&self.prerelease, &other.prerelease))
    }
}

fn compare_prerelease(a: &str, b: &str) -> Ordering {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => return Ordering::Equal,
        (true, false) => return Ordering::Greater,
        (false, true) => return Ordering::Less,
        _ => {}
    }
    let (left, right): (Vec<&str>, Vec<&str>) = (a.split('.').collect(), b.split('.').collect());
    for i in 0..left.len().max(right.len()) {
        let (x, y) = (left.get(i).copied(), right.get(i).copied());
        let order = match (x, y) {
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (None, None) => Ordering::Equal,
            (Some(x), Some(y)) => match (x.parse::<u64>(), y.parse::<u64>()) {
                (Ok(x), Ok(y)) => x.cmp(&y),
                (Ok(_), Err(_)) => Ordering::Less,
                (Err(_), Ok(_)) => Ordering::Greater,
                (Err(_), Err(_)) => x.cmp(y),
            },
        };
        if order != Ordering::Equal {
            return order;
        }
    }
    Ordering::Equal
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Equal,
    NotEqual,
    Greater,
    Less,
    GreaterEqual,
    LessEqual,
    Tilde,
    Caret,
}

#[derive(Debug, Clone)]
struct Constraint {
    op: Op,
    version: Version,
    /// `1` or `1.x`: the minor (and patch) are wildcards.
    minor_dirty: bool,
    /// `1.2` or `1.2.x`: the patch is a wildcard.
    patch_dirty: bool,
    dirty: bool,
}

/// A version range: groups joined by `||`, each a list of constraints that must all hold.
#[derive(Debug, Clone)]
pub struct Range {
    groups: Vec<(Vec<Constraint>, bool)>,
}

fn is_x(part: &str) -> bool {
    matches!(part, "x" | "X" | "*")
}

fn parse_constraint(text: &str) -> Option<Constraint> {
    let text = text.trim();
    let ops = [
        ("!=", Op::NotEqual),
        (">=", Op::GreaterEqual),
        ("=>", Op::GreaterEqual),
        ("<=", Op::LessEqual),
        ("=<", Op::LessEqual),
        ("~>", Op::Tilde),
        (">", Op::Greater),
        ("<", Op::Less),
        ("~", Op::Tilde),
        ("^", Op::Caret),
        ("=", Op::Equal),
    ];
    let (op, rest) = ops
        .iter()
        .find_map(|(prefix, op)| text.strip_prefix(prefix).map(|rest| (*op, rest)))
        .unwrap_or((Op::Equal, text));
    let rest = rest.trim();
    let body = rest.strip_prefix('v').unwrap_or(rest);
    let (core, suffix) = match body.find(['-', '+']) {
        Some(at) => body.split_at(at),
        None => (body, ""),
    };
    let parts: Vec<&str> = core.split('.').collect();
    if parts.len() > 3
        || parts
            .iter()
            .any(|p| p.is_empty() || !(is_x(p) || p.chars().all(|c| c.is_ascii_digit())))
    {
        return None;
    }
    let at = |i: usize| parts.get(i).copied().unwrap_or("");
    let (text, minor_dirty, patch_dirty) = if is_x(at(0)) {
        (format!("0.0.0{suffix}"), false, false)
    } else if at(1).is_empty() || is_x(at(1)) {
        (format!("{}.0.0{suffix}", at(0)), true, false)
    } else if at(2).is_empty() || is_x(at(2)) {
        (format!("{}.{}.0{suffix}", at(0), at(1)), false, true)
    } else {
        (format!("{core}{suffix}"), false, false)
    };
    let dirty = is_x(at(0)) || minor_dirty || patch_dirty;
    let version = Version::parse(&text)?;
    Some(Constraint {
        op,
        version,
        minor_dirty,
        patch_dirty,
        dirty,
    })
}

/// `1.2 - 1.4.5` as `>=1.2 <=1.4.5`.
fn rewrite_hyphen_ranges(group: &str) -> String {
    let words: Vec<&str> = group.split_whitespace().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < words.len() {
        if i + 2 < words.len() && words[i + 1] == "-" {
            out.push(format!(">={},", words[i].trim_end_matches(',')));
            out.push(format!("<={}", words[i + 2]));
            i += 3;
        } else {
            out.push(words[i].to_string());
            i += 1;
        }
    }
    out.join(" ")
}

/// Splits a group into its constraints: separated by commas or spaces, an operator may
/// be followed by spaces (`>= 1.0`).
fn split_group(group: &str) -> Vec<String> {
    let mut items: Vec<String> = Vec::new();
    for word in group.split([',', ' ', '\t']).filter(|w| !w.is_empty()) {
        match items.last_mut() {
            Some(last) if last.chars().all(|c| "<>=!~^".contains(c)) => last.push_str(word),
            _ => items.push(word.to_string()),
        }
    }
    items
}

impl Range {
    /// Parses a range; `None` if Helm would refuse it.
    /// The range a chart is asked for at (`""`: any version), or the error that says how
    /// to write one.
    pub fn asked(name: &str, version: &str) -> Result<Range, super::error::ChartSourceError> {
        let text = if version.trim().is_empty() {
            "*"
        } else {
            version
        };
        Range::parse(text).ok_or_else(|| super::error::ChartSourceError::InvalidVersion {
            name: name.to_string(),
            version: version.to_string(),
            advice: "write a version (1.2.3) or a range (^1.2, ~1.2.3, >=1.0 <2.0)".to_string(),
        })
    }

    pub fn parse(text: &str) -> Option<Range> {
        if text.len() > 512 {
            return None;
        }
        let mut groups = Vec::new();
        for group in text.split("||") {
            let group = rewrite_hyphen_ranges(group);
            let items = split_group(&group);
            let constraints = if items.is_empty() {
                if !group.trim().is_empty() {
                    return None;
                }
                vec![parse_constraint("*")?]
            } else {
                items
                    .iter()
                    .map(|item| parse_constraint(item))
                    .collect::<Option<Vec<_>>>()?
            };
            let has_pre = constraints.iter().any(|c| !c.version.prerelease.is_empty());
            groups.push((constraints, has_pre));
        }
        Some(Range { groups })
    }

    pub fn matches(&self, v: &Version) -> bool {
        self.groups
            .iter()
            .any(|(constraints, has_pre)| constraints.iter().all(|c| c.check(v, *has_pre)))
    }
}

impl Constraint {
    fn check(&self, v: &Version, include_pre: bool) -> bool {
        if !v.prerelease.is_empty() && !include_pre {
            return false;
        }
        let c = &self.version;
        let order = v.compare(c);
        match self.op {
            Op::Equal if self.dirty => self.tilde(v),
            Op::Equal => order == Ordering::Equal,
            Op::NotEqual => self.not_equal(v),
            Op::Greater if !self.dirty => order == Ordering::Greater,
            Op::Greater => {
                if v.major != c.major {
                    v.major > c.major
                } else if self.minor_dirty {
                    false
                } else if self.patch_dirty {
                    v.minor > c.minor
                } else {
                    order == Ordering::Greater
                }
            }
            Op::Less => order == Ordering::Less,
            Op::GreaterEqual => order != Ordering::Less,
            Op::LessEqual if !self.dirty => order != Ordering::Greater,
            Op::LessEqual => {
                !(v.major > c.major
                    || (v.major == c.major && v.minor > c.minor && !self.minor_dirty))
            }
            Op::Tilde => self.tilde(v),
            Op::Caret => self.caret(v),
        }
    }

    fn tilde(&self, v: &Version) -> bool {
        let c = &self.version;
        if v.compare(c) == Ordering::Less {
            return false;
        }
        if c.major == 0 && c.minor == 0 && c.patch == 0 && !self.minor_dirty && !self.patch_dirty {
            return true;
        }
        v.major == c.major && (v.minor == c.minor || self.minor_dirty)
    }

    fn caret(&self, v: &Version) -> bool {
        let c = &self.version;
        if v.compare(c) == Ordering::Less {
            return false;
        }
        if c.major > 0 || self.minor_dirty {
            return v.major == c.major;
        }
        if v.major > 0 {
            return false;
        }
        if c.minor > 0 || self.patch_dirty {
            return v.minor == c.minor;
        }
        if v.minor > 0 {
            return false;
        }
        v.patch == c.patch
    }

    fn not_equal(&self, v: &Version) -> bool {
        let c = &self.version;
        if self.dirty {
            if c.major != v.major {
                return true;
            }
            if self.minor_dirty {
                return false;
            }
            if c.minor != v.minor {
                return true;
            }
            if self.patch_dirty {
                return compare_prerelease(&v.prerelease, &c.prerelease) != Ordering::Equal;
            }
        }
        v.compare(c) != Ordering::Equal
    }
}

/// The newest of `versions` that `range` accepts.
pub fn newest_matching<'a, I>(range: &Range, versions: I) -> Option<Version>
where
    I: IntoIterator<Item = &'a str>,
{
    versions
        .into_iter()
        .filter_map(Version::parse)
        .filter(|v| range.matches(v))
        .max_by(|a, b| a.compare(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(range: &str, version: &str) -> bool {
        let r = Range::parse(range).unwrap_or_else(|| panic!("range {range}"));
        r.matches(&Version::parse(version).unwrap_or_else(|| panic!("version {version}")))
    }

    #[test]
    fn ranges_match_as_helm_matches_them() {
        let cases = [
            ("^1.2", "1.2.0", true),
            ("^1.2", "1.9.9", true),
            ("^1.2", "2.0.0", false),
            ("^1.2", "1.1.9", false),
            ("^0.2.3", "0.2.9", true),
            ("^0.2.3", "0.3.0", false),
            ("^0.0.3", "0.0.4", false),
            ("~1.2.3", "1.2.9", true),
            ("~1.2.3", "1.3.0", false),
            ("~1", "1.9.0", true),
            ("~1", "2.0.0", false),
            (">=1.0 <2.0", "1.5.0", true),
            (">=1.0 <2.0", "2.0.0", false),
            (">= 1.0, < 2.0", "1.0.0", true),
            ("1.x", "1.4.2", true),
            ("1.x", "2.0.0", false),
            ("1.2.x", "1.2.7", true),
            ("1.2.x", "1.3.0", false),
            ("*", "7.1.0", true),
            ("", "7.1.0", true),
            ("1.2.3", "1.2.3", true),
            ("1.2.3", "1.2.4", false),
            ("v1.2.3", "1.2.3", true),
            ("=1.2.3", "1.2.3", true),
            ("!=1.2.3", "1.2.4", true),
            ("!=1.2.3", "1.2.3", false),
            ("<1.2 || >=3", "1.1.0", true),
            ("<1.2 || >=3", "2.0.0", false),
            ("<1.2 || >=3", "3.1.0", true),
            ("1.2 - 1.4.5", "1.4.5", true),
            ("1.2 - 1.4.5", "1.4.6", false),
            (">1.x", "2.0.0", true),
            (">1.x", "1.9.0", false),
            ("<=1.2", "1.2.9", true),
            ("<=1.2", "1.3.0", false),
            // Prereleases only when the range names one.
            ("^1.0", "1.5.0-beta.1", false),
            ("*", "1.5.0-rc1", false),
            (">=1.5.0-0", "1.5.0-beta.1", true),
            (">=1.0.0-alpha <2.0.0-0", "1.9.0-rc.1", true),
            ("^1.0.0-0", "1.0.0-alpha", true),
        ];
        for (range, version, want) in cases {
            assert_eq!(ok(range, version), want, "{version} in {range}");
        }
    }

    #[test]
    fn invalid_ranges_are_refused() {
        for range in ["abc", ">>1", "1.2.3.4", "^", "1.a"] {
            assert!(Range::parse(range).is_none(), "{range}");
        }
    }

    #[test]
    fn prerelease_order_and_newest() {
        let r = Range::parse(">=1.0.0-0").unwrap();
        let got = newest_matching(
            &r,
            [
                "1.0.0-alpha",
                "1.0.0-alpha.1",
                "1.0.0-beta.2",
                "1.0.0-beta.11",
                "0.9.0",
            ],
        );
        assert_eq!(got.unwrap().original, "1.0.0-beta.11");
        let r = Range::parse("^2").unwrap();
        let got = newest_matching(
            &r,
            ["2.1.0", "2.10.0", "2.9.0", "3.0.0", "2.11.0-rc.1", "junk"],
        );
        assert_eq!(got.unwrap().original, "2.10.0");
        assert!(Version::parse("01.2.3").is_some()); // loose, as Helm reads index entries
        assert!(Version::parse("1.2.3-").is_none());
    }
}
