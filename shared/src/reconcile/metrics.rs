//! The reconciler's metrics: a small registry updated by the loop and the webhook
//! endpoint, rendered in the Prometheus text exposition format (version 0.0.4).
//!
//! Metric families come out sorted by name and each family's series sorted by their
//! label values, so two renders of the same state are the same text.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// The upper bounds of the sync duration buckets, in seconds; `+Inf` follows them.
pub const DURATION_BUCKETS: [f64; 11] = [
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// How one sync of an app ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncOutcome {
    /// Objects were created, updated or pruned.
    Synced,
    /// Nothing differed: nothing was written.
    Unchanged,
    Failed,
    /// Drift was found and applied over.
    Healed,
}

impl SyncOutcome {
    pub const ALL: [SyncOutcome; 4] = [
        SyncOutcome::Synced,
        SyncOutcome::Unchanged,
        SyncOutcome::Failed,
        SyncOutcome::Healed,
    ];

    /// The value of the `outcome` label.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncOutcome::Synced => "synced",
            SyncOutcome::Unchanged => "unchanged",
            SyncOutcome::Failed => "failed",
            SyncOutcome::Healed => "healed",
        }
    }
}

/// The registry. Every method takes `&self`: share it in an `Arc`.
#[derive(Debug, Default)]
pub struct Metrics {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    durations: BTreeMap<String, Histogram>,
    /// Keyed by app, then the outcome's label value, so series sort as they render.
    syncs: BTreeMap<(String, &'static str), u64>,
    drifted: BTreeMap<String, bool>,
    last_success: BTreeMap<String, f64>,
    queue_depth: u64,
    leader: bool,
    webhooks_accepted: u64,
    webhooks_refused: u64,
}

/// Cumulative counts: `buckets[i]` counts the observations at most `DURATION_BUCKETS[i]`.
#[derive(Debug, Default)]
struct Histogram {
    buckets: [u64; DURATION_BUCKETS.len()],
    sum: f64,
    count: u64,
}

impl Metrics {
    /// A sync of `app` ended with `outcome` after `seconds`, at `finished_unix` (seconds
    /// since the Unix epoch). Only a sync that did not fail moves the last success time.
    pub fn sync_finished(&self, app: &str, outcome: SyncOutcome, seconds: f64, finished_unix: f64) {
        // A clock stepped back (or a NaN) must not poison the sum for the process's life.
        let seconds = if seconds.is_finite() && seconds > 0.0 {
            seconds
        } else {
            0.0
        };
        let mut state = self.lock();
        let histogram = state.durations.entry(app.to_string()).or_default();
        for (bucket, bound) in histogram.buckets.iter_mut().zip(DURATION_BUCKETS) {
            if seconds <= bound {
                *bucket += 1;
            }
        }
        histogram.sum += seconds;
        histogram.count += 1;
        // Every outcome of a known app is a series from its first sync on, so a rate over
        // `failed` exists before the first failure.
        for each in SyncOutcome::ALL {
            state
                .syncs
                .entry((app.to_string(), each.as_str()))
                .or_insert(0);
        }
        *state
            .syncs
            .entry((app.to_string(), outcome.as_str()))
            .or_insert(0) += 1;
        if outcome != SyncOutcome::Failed {
            state.last_success.insert(app.to_string(), finished_unix);
        }
    }

    /// Whether `app` differed from its desired state at the last check; the number of
    /// drifted apps follows from these.
    pub fn set_drift(&self, app: &str, drifted: bool) {
        self.lock().drifted.insert(app.to_string(), drifted);
    }

    /// Drops every series of `app`: it left the list of apps.
    pub fn forget_app(&self, app: &str) {
        let mut state = self.lock();
        state.durations.remove(app);
        state.syncs.retain(|(each, _), _| each != app);
        state.drifted.remove(app);
        state.last_success.remove(app);
    }

    /// How many apps wait for a sync.
    pub fn set_queue_depth(&self, depth: usize) {
        self.lock().queue_depth = u64::try_from(depth).unwrap_or(u64::MAX);
    }

    pub fn set_leader(&self, leader: bool) {
        self.lock().leader = leader;
    }

    /// A webhook request was accepted (its signature held and it was a push or a ping)
    /// or refused.
    pub fn webhook(&self, accepted: bool) {
        let mut state = self.lock();
        if accepted {
            state.webhooks_accepted += 1;
        } else {
            state.webhooks_refused += 1;
        }
    }

    /// The registry in the Prometheus text format, version 0.0.4.
    pub fn render(&self) -> String {
        let state = self.lock();
        let mut out = String::new();

        family(
            &mut out,
            "kubectl_gitops_app_drifted",
            "gauge",
            "Whether the app differed from its desired state at the last check (1) or not (0).",
        );
        for (app, drifted) in &state.drifted {
            sample(
                &mut out,
                "kubectl_gitops_app_drifted",
                &[("app", app.as_str())],
                f64::from(u8::from(*drifted)),
            );
        }

        family(
            &mut out,
            "kubectl_gitops_apps_drifted",
            "gauge",
            "How many apps differed from their desired state at the last check.",
        );
        let drifted = state.drifted.values().filter(|d| **d).count();
        sample(&mut out, "kubectl_gitops_apps_drifted", &[], drifted as f64);

        family(
            &mut out,
            "kubectl_gitops_last_successful_sync_timestamp_seconds",
            "gauge",
            "When the app's last sync that did not fail finished, in seconds since the Unix epoch.",
        );
        for (app, at) in &state.last_success {
            sample(
                &mut out,
                "kubectl_gitops_last_successful_sync_timestamp_seconds",
                &[("app", app.as_str())],
                *at,
            );
        }

        family(
            &mut out,
            "kubectl_gitops_leader",
            "gauge",
            "Whether this replica leads (1) or stands by (0).",
        );
        sample(
            &mut out,
            "kubectl_gitops_leader",
            &[],
            f64::from(u8::from(state.leader)),
        );

        family(
            &mut out,
            "kubectl_gitops_queue_depth",
            "gauge",
            "How many apps wait for a sync.",
        );
        sample(
            &mut out,
            "kubectl_gitops_queue_depth",
            &[],
            state.queue_depth as f64,
        );

        family(
            &mut out,
            "kubectl_gitops_sync_duration_seconds",
            "histogram",
            "How long each sync of an app took, in seconds.",
        );
        for (app, histogram) in &state.durations {
            let name = "kubectl_gitops_sync_duration_seconds_bucket";
            for (count, bound) in histogram.buckets.iter().zip(DURATION_BUCKETS) {
                let le = number(bound);
                sample(
                    &mut out,
                    name,
                    &[("app", app.as_str()), ("le", le.as_str())],
                    *count as f64,
                );
            }
            sample(
                &mut out,
                name,
                &[("app", app.as_str()), ("le", "+Inf")],
                histogram.count as f64,
            );
            sample(
                &mut out,
                "kubectl_gitops_sync_duration_seconds_sum",
                &[("app", app.as_str())],
                histogram.sum,
            );
            sample(
                &mut out,
                "kubectl_gitops_sync_duration_seconds_count",
                &[("app", app.as_str())],
                histogram.count as f64,
            );
        }

        family(
            &mut out,
            "kubectl_gitops_syncs_total",
            "counter",
            "Syncs finished, by app and outcome (synced, unchanged, failed, healed).",
        );
        for ((app, outcome), count) in &state.syncs {
            sample(
                &mut out,
                "kubectl_gitops_syncs_total",
                &[("app", app.as_str()), ("outcome", *outcome)],
                *count as f64,
            );
        }

        family(
            &mut out,
            "kubectl_gitops_webhooks_total",
            "counter",
            "Webhook requests received, by result (accepted, refused).",
        );
        for (result, count) in [
            ("accepted", state.webhooks_accepted),
            ("refused", state.webhooks_refused),
        ] {
            sample(
                &mut out,
                "kubectl_gitops_webhooks_total",
                &[("result", result)],
                count as f64,
            );
        }
        out
    }

    /// The state, also after a panic elsewhere while it was held: each update is a few
    /// plain writes, so what a panicking holder left is still worth showing.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: f64) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (label, value)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(label);
            out.push_str("=\"");
            escape_label_value(out, value);
            out.push('"');
        }
        out.push('}');
    }
    out.push(' ');
    out.push_str(&number(value));
    out.push('\n');
}

/// A label value as the format wants it: backslash, double quote and line feed escaped.
fn escape_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// A value as the format spells it (Go's float parsing): `+Inf`, `-Inf`, `NaN`, or the
/// shortest decimal that reads back as the same number.
fn number(value: f64) -> String {
    if value == f64::INFINITY {
        "+Inf".into()
    } else if value == f64::NEG_INFINITY {
        "-Inf".into()
    } else if value.is_nan() {
        "NaN".into()
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::{Metrics, SyncOutcome};

    #[test]
    fn an_empty_registry_renders_every_family() {
        let expected = "\
# HELP kubectl_gitops_app_drifted Whether the app differed from its desired state at the last check (1) or not (0).
# TYPE kubectl_gitops_app_drifted gauge
# HELP kubectl_gitops_apps_drifted How many apps differed from their desired state at the last check.
# TYPE kubectl_gitops_apps_drifted gauge
kubectl_gitops_apps_drifted 0
# HELP kubectl_gitops_last_successful_sync_timestamp_seconds When the app's last sync that did not fail finished, in seconds since the Unix epoch.
# TYPE kubectl_gitops_last_successful_sync_timestamp_seconds gauge
# HELP kubectl_gitops_leader Whether this replica leads (1) or stands by (0).
# TYPE kubectl_gitops_leader gauge
kubectl_gitops_leader 0
# HELP kubectl_gitops_queue_depth How many apps wait for a sync.
# TYPE kubectl_gitops_queue_depth gauge
kubectl_gitops_queue_depth 0
# HELP kubectl_gitops_sync_duration_seconds How long each sync of an app took, in seconds.
# TYPE kubectl_gitops_sync_duration_seconds histogram
# HELP kubectl_gitops_syncs_total Syncs finished, by app and outcome (synced, unchanged, failed, healed).
# TYPE kubectl_gitops_syncs_total counter
# HELP kubectl_gitops_webhooks_total Webhook requests received, by result (accepted, refused).
# TYPE kubectl_gitops_webhooks_total counter
kubectl_gitops_webhooks_total{result=\"accepted\"} 0
kubectl_gitops_webhooks_total{result=\"refused\"} 0
";
        assert_eq!(Metrics::default().render(), expected);
    }

    #[test]
    fn a_registry_with_observations_renders_exactly() {
        let metrics = Metrics::default();
        metrics.sync_finished("web", SyncOutcome::Synced, 0.25, 1_765_100_000.5);
        metrics.sync_finished("web", SyncOutcome::Failed, 3.0, 1_765_100_060.0);
        metrics.sync_finished("api", SyncOutcome::Unchanged, 45.0, 1_765_100_030.0);
        metrics.set_drift("web", true);
        metrics.set_drift("api", false);
        metrics.set_queue_depth(2);
        metrics.set_leader(true);
        metrics.webhook(true);
        metrics.webhook(true);
        metrics.webhook(false);
        let expected = "\
# HELP kubectl_gitops_app_drifted Whether the app differed from its desired state at the last check (1) or not (0).
# TYPE kubectl_gitops_app_drifted gauge
kubectl_gitops_app_drifted{app=\"api\"} 0
kubectl_gitops_app_drifted{app=\"web\"} 1
# HELP kubectl_gitops_apps_drifted How many apps differed from their desired state at the last check.
# TYPE kubectl_gitops_apps_drifted gauge
kubectl_gitops_apps_drifted 1
# HELP kubectl_gitops_last_successful_sync_timestamp_seconds When the app's last sync that did not fail finished, in seconds since the Unix epoch.
# TYPE kubectl_gitops_last_successful_sync_timestamp_seconds gauge
kubectl_gitops_last_successful_sync_timestamp_seconds{app=\"api\"} 1765100030
kubectl_gitops_last_successful_sync_timestamp_seconds{app=\"web\"} 1765100000.5
# HELP kubectl_gitops_leader Whether this replica leads (1) or stands by (0).
# TYPE kubectl_gitops_leader gauge
kubectl_gitops_leader 1
# HELP kubectl_gitops_queue_depth How many apps wait for a sync.
# TYPE kubectl_gitops_queue_depth gauge
kubectl_gitops_queue_depth 2
# HELP kubectl_gitops_sync_duration_seconds How long each sync of an app took, in seconds.
# TYPE kubectl_gitops_sync_duration_seconds histogram
kubectl_gitops_sync_duration_seconds_bucket{app=\"api\",le=\"0.1\"} 0
kubectl_gitops_sync_duration_seconds_bucket{app=\"api\",le=\"0.25\"} 0
kubectl_gitops_sync_duration_seconds_bucket{app=\"api\",le=\"0.5\"} 0
kubectl_gitops_sync_duration_seconds_bucket{app=\"api\",le=\"1\"} 0
kubectl_gitops_sync_duration_seconds_bucket{app=\"api\",le=\"2.5\"} 0
kubectl_gitops_sync_duration_seconds_bucket{app=\"api\",le=\"5\"} 0
kubectl_gitops_sync_duration_seconds_bucket{app=\"api\",le=\"10\"} 0
kubectl_gitops_sync_duration_seconds_bucket{app=\"api\",le=\"30\"} 0
kubectl_gitops_sync_duration_seconds_bucket{app=\"api\",le=\"60\"} 1
kubectl_gitops_sync_duration_seconds_bucket{app=\"api\",le=\"120\"} 1
kubectl_gitops_sync_duration_seconds_bucket{app=\"api\",le=\"300\"} 1
kubectl_gitops_sync_duration_seconds_bucket{app=\"api\",le=\"+Inf\"} 1
kubectl_gitops_sync_duration_seconds_sum{app=\"api\"} 45
kubectl_gitops_sync_duration_seconds_count{app=\"api\"} 1
kubectl_gitops_sync_duration_seconds_bucket{app=\"web\",le=\"0.1\"} 0
kubectl_gitops_sync_duration_seconds_bucket{app=\"web\",le=\"0.25\"} 1
kubectl_gitops_sync_duration_seconds_bucket{app=\"web\",le=\"0.5\"} 1
kubectl_gitops_sync_duration_seconds_bucket{app=\"web\",le=\"1\"} 1
kubectl_gitops_sync_duration_seconds_bucket{app=\"web\",le=\"2.5\"} 1
kubectl_gitops_sync_duration_seconds_bucket{app=\"web\",le=\"5\"} 2
kubectl_gitops_sync_duration_seconds_bucket{app=\"web\",le=\"10\"} 2
kubectl_gitops_sync_duration_seconds_bucket{app=\"web\",le=\"30\"} 2
kubectl_gitops_sync_duration_seconds_bucket{app=\"web\",le=\"60\"} 2
kubectl_gitops_sync_duration_seconds_bucket{app=\"web\",le=\"120\"} 2
kubectl_gitops_sync_duration_seconds_bucket{app=\"web\",le=\"300\"} 2
kubectl_gitops_sync_duration_seconds_bucket{app=\"web\",le=\"+Inf\"} 2
kubectl_gitops_sync_duration_seconds_sum{app=\"web\"} 3.25
kubectl_gitops_sync_duration_seconds_count{app=\"web\"} 2
# HELP kubectl_gitops_syncs_total Syncs finished, by app and outcome (synced, unchanged, failed, healed).
# TYPE kubectl_gitops_syncs_total counter
kubectl_gitops_syncs_total{app=\"api\",outcome=\"failed\"} 0
kubectl_gitops_syncs_total{app=\"api\",outcome=\"healed\"} 0
kubectl_gitops_syncs_total{app=\"api\",outcome=\"synced\"} 0
kubectl_gitops_syncs_total{app=\"api\",outcome=\"unchanged\"} 1
kubectl_gitops_syncs_total{app=\"web\",outcome=\"failed\"} 1
kubectl_gitops_syncs_total{app=\"web\",outcome=\"healed\"} 0
kubectl_gitops_syncs_total{app=\"web\",outcome=\"synced\"} 1
kubectl_gitops_syncs_total{app=\"web\",outcome=\"unchanged\"} 0
# HELP kubectl_gitops_webhooks_total Webhook requests received, by result (accepted, refused).
# TYPE kubectl_gitops_webhooks_total counter
kubectl_gitops_webhooks_total{result=\"accepted\"} 2
kubectl_gitops_webhooks_total{result=\"refused\"} 1
";
        assert_eq!(metrics.render(), expected);
    }

    /// The `le` buckets of one app's histogram, in order.
    fn buckets(text: &str, app: &str) -> Vec<u64> {
        let prefix = format!("kubectl_gitops_sync_duration_seconds_bucket{{app=\"{app}\",");
        text.lines()
            .filter(|line| line.starts_with(&prefix))
            .map(|line| line.rsplit(' ').next().unwrap().parse().unwrap())
            .collect()
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_end_in_the_count() {
        let metrics = Metrics::default();
        for seconds in [0.05, 0.1, 0.3, 7.0, 400.0, -1.0, f64::NAN] {
            metrics.sync_finished("a", SyncOutcome::Synced, seconds, 0.0);
        }
        let text = metrics.render();
        // A bound counts the observations at or below it; negative and NaN count as 0.
        assert_eq!(buckets(&text, "a"), [4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 6, 7]);
        assert!(buckets(&text, "a").windows(2).all(|w| w[0] <= w[1]));
        assert!(text.contains("kubectl_gitops_sync_duration_seconds_count{app=\"a\"} 7\n"));
        let sum: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("kubectl_gitops_sync_duration_seconds_sum{app=\"a\"} "))
            .unwrap()
            .parse()
            .unwrap();
        assert!((sum - 407.45).abs() < 1e-9, "{sum}");
    }

    #[test]
    fn label_values_are_escaped() {
        let metrics = Metrics::default();
        metrics.set_drift("say \"hi\"\\now\nthen", true);
        let text = metrics.render();
        assert!(
            text.contains("kubectl_gitops_app_drifted{app=\"say \\\"hi\\\"\\\\now\\nthen\"} 1\n"),
            "{text}"
        );
        // The escaped value kept the sample on one line.
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("kubectl_gitops_app_drifted"))
                .count(),
            1
        );
    }

    #[test]
    fn a_forgotten_app_leaves_no_series_and_no_drift() {
        let metrics = Metrics::default();
        metrics.sync_finished("gone", SyncOutcome::Healed, 1.0, 10.0);
        metrics.set_drift("gone", true);
        metrics.set_drift("kept", true);
        metrics.forget_app("gone");
        let text = metrics.render();
        assert!(!text.contains("\"gone\""), "{text}");
        assert!(text.contains("kubectl_gitops_apps_drifted 1\n"));
        metrics.set_drift("kept", false);
        assert!(metrics.render().contains("kubectl_gitops_apps_drifted 0\n"));
    }

    #[test]
    fn a_failed_sync_does_not_move_the_last_success() {
        let metrics = Metrics::default();
        metrics.sync_finished("a", SyncOutcome::Healed, 1.0, 100.0);
        metrics.sync_finished("a", SyncOutcome::Failed, 1.0, 200.0);
        assert!(
            metrics
                .render()
                .contains("kubectl_gitops_last_successful_sync_timestamp_seconds{app=\"a\"} 100\n")
        );
    }
}
