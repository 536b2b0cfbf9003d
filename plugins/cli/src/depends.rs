//! Which destinations wait for which: an app list entry's `depends_on` names apps, and an
//! app with several contexts is one destination per context. A dependency resolves to the
//! app on the same context when it is deployed there (each cluster waits for its own
//! database), else to the app on every context it is deployed to.
//!
//! The list itself is checked for cycles and unknown names when it is read
//! ([`gitops::app_file`]); this only maps names onto the destinations of one run.

use crate::Target;

/// For each destination of `targets`, the indices of the destinations it waits for.
pub fn dependencies(targets: &[Target]) -> Vec<Vec<usize>> {
    targets
        .iter()
        .map(|target| {
            let names = target.spec.as_ref().map(|s| s.depends_on.as_slice());
            let mut waits = Vec::new();
            for name in names.unwrap_or_default() {
                let deployed: Vec<usize> = (0..targets.len())
                    .filter(|&i| &targets[i].app == name)
                    .collect();
                let same_context: Vec<usize> = deployed
                    .iter()
                    .copied()
                    .filter(|&i| targets[i].context == target.context)
                    .collect();
                match same_context.is_empty() {
                    true => waits.extend(deployed),
                    false => waits.extend(same_context),
                }
            }
            waits.sort_unstable();
            waits.dedup();
            waits
        })
        .collect()
}

/// Whether any destination waits for another: without, everything starts at once.
pub fn any(dependencies: &[Vec<usize>]) -> bool {
    dependencies.iter().any(|d| !d.is_empty())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use gitops::app_file::AppFile;

    fn targets(list: &str, flag_contexts: &[&str]) -> Vec<Target> {
        let file = AppFile::parse(".kubectl-gitops.yaml", list)
            .unwrap()
            .unwrap();
        let mut out = Vec::new();
        for spec in &file.apps {
            let contexts: Vec<Option<String>> = match (flag_contexts, spec.contexts.as_slice()) {
                ([], []) => vec![None],
                ([], listed) => listed.iter().cloned().map(Some).collect(),
                (flags, _) => flags.iter().map(|c| Some(c.to_string())).collect(),
            };
            for context in contexts {
                out.push(Target {
                    app: spec.name.clone(),
                    spec: Some(spec.clone()),
                    context,
                    root: spec.path.clone(),
                    chart: spec.chart.clone(),
                    kubeconfig: None,
                });
            }
        }
        out
    }

    #[test]
    fn a_dependency_is_on_the_same_context_when_it_is_deployed_there() {
        // 0 db@eu, 1 db@us, 2 web@eu, 3 web@us, 4 report@hq
        let list = "apps:\n\
            - name: db\n  path: db\n  contexts: [eu, us]\n\
            - name: web\n  path: web\n  contexts: [eu, us]\n  depends_on: [db]\n\
            - name: report\n  path: r\n  contexts: [hq]\n  depends_on: [db, web]\n";
        let targets = targets(list, &[]);
        let deps = dependencies(&targets);
        assert_eq!(deps, [vec![], vec![], vec![0], vec![1], vec![0, 1, 2, 3]]);
        assert!(any(&deps));
    }

    #[test]
    fn context_flags_put_every_dependency_on_the_same_context() {
        let list = "apps:\n- name: a\n  path: a\n- name: b\n  path: b\n  depends_on: [a]\n\
                    - name: c\n  path: c\n";
        let deps = dependencies(&targets(list, &["x", "y"]));
        assert_eq!(deps, [vec![], vec![], vec![0], vec![1], vec![], vec![]]);
        let none = dependencies(&targets("apps:\n- name: a\n  path: a\n", &[]));
        assert!(!any(&none));
    }
}
