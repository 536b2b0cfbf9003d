//! What one run works with: the connection, the cluster, the ignore rules and the app
//! list's entries, and what they make of each app's check and heal.

use anyhow::{Context, Result};
use gitops::app_file::AppSpec;
use gitops::drift::{CheckRequest, HealOptions, IgnoreRule, IgnoreRules};
use gitops::kubeconfig::Connection;
use gitops::live::LiveCluster;

use gitops_cli::DEFAULT_TIMEOUT;

use crate::Args;

/// What one run works with.
pub struct Session {
    pub connection: Connection,
    pub cluster: LiveCluster,
    /// The flags' and --config's ignore rules.
    pub rules: IgnoreRules,
    /// The apps of the repository's app list to check here (empty: as the flags say).
    pub listed: Vec<AppSpec>,
}

impl Session {
    pub async fn connect(
        args: &Args,
        context: Option<&str>,
        listed: Vec<AppSpec>,
        rules: IgnoreRules,
    ) -> Result<Session> {
        let options = args.connection.options_for(context, None);
        let mut connection = args.connection.connect_to(&options).await?;
        if args.heal {
            // Healing writes: bounded as a sync is. One connection serves every app of
            // the context, so the longest of their `timeout:`s bounds it.
            let listed_timeout = listed.iter().filter_map(|spec| spec.timeout).max();
            connection.retry_budget = args
                .change
                .timeout
                .or(listed_timeout)
                .unwrap_or(DEFAULT_TIMEOUT);
        }
        let cluster = LiveCluster::connect(&connection).await?;
        warn_unknown_kinds(&cluster, &rules);
        for spec in &listed {
            warn_unknown_kinds(&cluster, &spec.ignore_rules());
        }
        Ok(Session {
            connection,
            cluster,
            rules,
            listed,
        })
    }

    /// The app list's entry for `app`, when the app comes from the list.
    pub fn spec(&self, app: &str) -> Option<&AppSpec> {
        self.listed.iter().find(|spec| spec.name == app)
    }
}

/// A rule naming a kind the cluster does not serve matches nothing: a misspelt
/// `--ignore-path Deploymnet:/spec/replicas` would silently ignore nothing. Said on stderr
/// (not refused: the kind's CRD may be missing on only some of the clusters checked).
fn warn_unknown_kinds(cluster: &LiveCluster, rules: &IgnoreRules) {
    let served = cluster.served_kinds();
    for rule in &rules.rules {
        let Some(kind) = &rule.kind else { continue };
        let serves = |(group, served): &(String, String)| {
            served == kind && rule.group.as_ref().is_none_or(|g| g == group)
        };
        if served.iter().any(serves) {
            continue;
        }
        let named = gitops::objects::group_kind(rule.group.as_deref().unwrap_or_default(), kind);
        let guess = served
            .iter()
            .find(|(_, served)| similar(served, kind))
            .map(|(group, served)| match group.as_str() {
                "" => format!(" (did you mean {served}?)"),
                group => format!(" (did you mean {served}.{group}?)"),
            })
            .unwrap_or_default();
        eprintln!(
            "warning: the ignore rule for kind {named} matches nothing: the cluster serves no such kind{guess}"
        );
    }
}

/// The same letters ignoring case, or one letter off, or two swapped: a likely typo.
fn similar(a: &str, b: &str) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (
        a.to_lowercase().chars().collect(),
        b.to_lowercase().chars().collect(),
    );
    if a == b {
        return true;
    }
    if a.len() == b.len() {
        let differ: Vec<usize> = (0..a.len()).filter(|&i| a[i] != b[i]).collect();
        return match differ.as_slice() {
            [_] => true,
            [i, j] => *j == i + 1 && a[*i] == b[*j] && a[*j] == b[*i],
            _ => false,
        };
    }
    let (short, long) = if a.len() < b.len() {
        (&a, &b)
    } else {
        (&b, &a)
    };
    long.len() == short.len() + 1
        && (0..long.len()).any(|skip| {
            long.iter()
                .enumerate()
                .filter(|(i, _)| *i != skip)
                .map(|(_, c)| c)
                .eq(short.iter())
        })
}

/// The rules from --ignore-manager, --ignore-path and --config.
pub fn flag_rules(args: &Args) -> Result<IgnoreRules> {
    let mut rules = IgnoreRules::default();
    for manager in &args.ignore_manager {
        rules.rules.push(IgnoreRule::manager(manager));
    }
    for spec in &args.ignore_path {
        rules.rules.push(IgnoreRule::path(spec)?);
    }
    if let Some(file) = &args.config {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read the config file {}", file.display()))?;
        rules.extend(IgnoreRules::from_config(
            &file.display().to_string(),
            &text,
        )?);
    }
    Ok(rules)
}

/// What to check for `app` in `namespace`: the flags, and the app list's entry if any
/// (its ignore rules added, its path unless --path).
pub fn request(args: &Args, session: &Session, namespace: &str, app: &str) -> CheckRequest {
    let listed = session.spec(app);
    let mut rules = session.rules.clone();
    if let Some(spec) = listed {
        rules.extend(spec.ignore_rules());
    }
    CheckRequest {
        app: app.to_string(),
        namespace: namespace.to_string(),
        rules,
        against: args.against.clone(),
        git: args.git.clone(),
        repo: args.repo.location.clone(),
        path: args
            .path
            .clone()
            .or_else(|| listed.map(|spec| spec.path.clone())),
        show_secrets: args.output.show_secrets,
    }
}

/// How `app` is healed: the flags, else its entry of the app list (`wait:`, `timeout:`).
pub fn heal_options(args: &Args, session: &Session, app: &str) -> HealOptions {
    HealOptions {
        prune_strays: args.prune_strays,
        wait: args.change.wait_for(session.spec(app)),
        history_max: args.change.history_max,
        who: session.connection.actor(),
        lock_duration: args.change.lock_duration,
        cancel: gitops_cli::interrupt::install(),
    }
}

#[cfg(test)]
mod tests {
    use super::similar;

    #[test]
    fn a_typo_of_a_kind_is_similar_and_another_kind_is_not() {
        for (typed, kind) in [
            ("Deploymnet", "Deployment"),
            ("deployment", "Deployment"),
            ("Deploment", "Deployment"),
            ("ConfigMapp", "ConfigMap"),
            ("Secert", "Secret"),
        ] {
            assert!(similar(typed, kind), "{typed} ~ {kind}");
        }
        for (typed, kind) in [("Service", "Secret"), ("Job", "CronJob"), ("Pod", "Node")] {
            assert!(!similar(typed, kind), "{typed} !~ {kind}");
        }
    }
}
