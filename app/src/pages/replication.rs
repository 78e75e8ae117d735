//! The replication panel, shown to technical workers and senior managers.

use crate::api::replication::{RunSync, replication_overview};
use crate::components::{ErrorNote, FormError, action_error};
use crate::live::{Throttle, Views, use_live};
use crate::locale::LocalTime;
use crate::model::live::Pulse;
use crate::model::{ReplicationStatus, SyncReport, SyncStatus};
use leptos::prelude::*;

#[component]
pub fn ReplicationPanel() -> impl IntoView {
    let run = ServerAction::<RunSync>::new();
    let tick = RwSignal::new(0u32);
    let views = Views::new();
    let status = Resource::new(
        move || (tick.get(), run.version().get()),
        move |_| replication_overview(views.background(&())),
    );
    // The live stream's pulse moves whenever an edit starts or settles, recovery
    // repairs or a sync run progresses: the panel reloads then, at most once a second,
    // instead of polling.
    let refresh = Throttle::new(move || tick.update(|t| *t += 1));
    let live = use_live();
    Effect::new(move |previous: Option<Option<Pulse>>| {
        let pulse = live.pulse.get();
        if previous.is_some_and(|p| p != pulse) {
            refresh.request();
        }
        pulse
    });
    view! {
        <section class="card" aria-labelledby="replication-title" data-testid="replication">
            <h2 id="replication-title">"Replication"</h2>
            <p class="muted small">
                "MongoDB holds the sales; MySQL keeps a normalized backup. Every edit is journaled, "
                "and a sync copies MongoDB's truth over any drift."
            </p>
            <FormError error=action_error(run.value())/>
            <Transition fallback=|| view! { <p class="muted">"Loading replication status…"</p> }>
                {move || Suspend::new(async move {
                    match status.await {
                        Ok(s) => view! { <ReplicationBody status=s run/> }.into_any(),
                        Err(e) => view! { <ErrorNote error=e/> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

#[component]
fn ReplicationBody(status: ReplicationStatus, run: ServerAction<RunSync>) -> impl IntoView {
    let i = status.intents;
    let running = status.running.is_some();
    let busy = move || running || run.pending().get();
    let drift = match status.drift {
        Some(0) => ("0".to_string(), "kpi ok"),
        Some(n) => (n.to_string(), "kpi warn"),
        None => ("not checked yet".to_string(), "kpi"),
    };
    view! {
        <ActionForm action=run attr:class="inline-form">
            <input type="hidden" name="dry_run" value="false"/>
            <button type="submit" class="btn" disabled=busy>
                {move || if busy() { "Sync running…" } else { "Run sync" }}
            </button>
        </ActionForm>
        <div class="kpis">
            <Kpi label="Edits in flight" value=i.pending.to_string() class=if i.pending == 0 { "kpi" } else { "kpi warn" }/>
            <Kpi label="Needing repair" value=i.needs_repair.to_string() class=if i.needs_repair == 0 { "kpi ok" } else { "kpi bad" }/>
            <Kpi label="Failed edits (24 h)" value=i.failed_24h.to_string() class="kpi"/>
            <Kpi label="Drift at last sync" value=drift.0 class=drift.1/>
        </div>
        {status.running.map(|r| view! { <RunProgress report=r/> })}
        {status.last.map(|r| view! { <LastRun report=r/> })}
        {status.deployment.map(|d| view! { <p class="muted small" data-testid="deployment">"Sales database: " {d}</p> })}
    }
}

#[component]
fn Kpi(label: &'static str, value: String, class: &'static str) -> impl IntoView {
    view! {
        <div class=class>
            <span class="kpi-label">{label}</span>
            <span class="kpi-value">{value}</span>
        </div>
    }
}

#[component]
fn RunProgress(report: SyncReport) -> impl IntoView {
    let max = report.expected.max(report.scanned).max(1);
    view! {
        <div class="progress-box" role="status" data-testid="sync-progress">
            <label for="sync-progress">"Sync in progress: " {report.scanned} " of about " {report.expected} " sales checked"</label>
            <progress id="sync-progress" max=max value=report.scanned></progress>
        </div>
    }
}

#[component]
fn LastRun(report: SyncReport) -> impl IntoView {
    let (class, outcome) = match report.status {
        SyncStatus::Completed => ("success", "completed"),
        SyncStatus::Failed => ("error", "failed"),
        SyncStatus::Interrupted => ("error", "was interrupted"),
        SyncStatus::Running => ("muted", "is running"),
    };
    let kind = if report.dry_run { "Dry run" } else { "Sync" };
    let who = report
        .started_by
        .clone()
        .map(|u| format!(" by {u}"))
        .unwrap_or_default();
    let duration = report
        .duration_ms()
        .map(|ms| {
            let tenths = (ms.max(0) + 50) / 100;
            format!(" in {}.{} s", tenths / 10, tenths % 10)
        })
        .unwrap_or_default();
    view! {
        <div class=class data-testid="last-sync">
            <p>
                <strong>{kind} " " {outcome}</strong> {duration} " · "
                <LocalTime at=report.started_at/> " · " {report.trigger.label()} {who}
            </p>
            <p class="small">
                "Scanned " {report.scanned} ", created " {report.created} ", updated " {report.updated}
                ", deleted " {report.deleted}
                {(report.skipped > 0).then(|| format!(", left for the next run {}", report.skipped))}
                {(report.invalid > 0).then(|| format!(", invalid in MongoDB {}", report.invalid))}
            </p>
            {report.error.map(|e| view! { <p class="small">{e}</p> })}
        </div>
    }
}
