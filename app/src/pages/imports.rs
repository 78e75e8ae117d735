//! `/imports` and `/imports/:id`: a file of sales uploaded, checked, imported in the
//! background with its progress, and cancelled if need be. Staff only.

use crate::api::imports::{CancelImport, StartImport, list_imports, load_import};
use crate::auth::RequireRole;
use crate::components::{ErrorNote, FormError, ScrollTable, action_error};
use crate::locale::{Count, LocalTime};
use crate::model::imports::{IMPORT_FILE_LIMIT, ImportJob, ImportState};
use crate::model::{AppError, Role};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::{use_params_map, use_query_map};

#[component]
pub fn ImportsPage() -> impl IntoView {
    let query = use_query_map();
    let error = move || query.with(|q| q.get("error"));
    let jobs = Resource::new(|| (), |_| list_imports());
    view! {
        <Title text="Import sales"/>
        <RequireRole roles=Role::STAFF>
            <section class="hero">
                <h1>"Import sales"</h1>
                <p class="lead">
                    "Upload a file of sales in MongoDB Extended JSON (one document per line, or one array), "
                    "as " <code>"server import"</code> " reads. It is checked first; nothing is written until you confirm."
                </p>
            </section>
            <section class="card" aria-labelledby="upload-title">
                <h2 id="upload-title">"Upload a file"</h2>
                {move || error().map(|e| view! { <p class="error" role="alert" data-testid="upload-error">{e}</p> })}
                // A plain form post: the server checks the file and opens its page.
                <form method="post" action="/api/imports/upload" enctype="multipart/form-data" class="stack" aria-label="Upload a file of sales">
                    <div class="field">
                        <label for="import-file">"File (.json, at most " {IMPORT_FILE_LIMIT / (1024 * 1024)} " MB)"</label>
                        <input id="import-file" name="file" type="file" accept=".json,.jsonl,.ndjson,application/json" required/>
                    </div>
                    <div class="form-actions">
                        <button type="submit" class="btn">"Check the file"</button>
                    </div>
                </form>
            </section>
            <section class="card" aria-labelledby="recent-title">
                <h2 id="recent-title">"Recent imports"</h2>
                <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                    {move || Suspend::new(async move {
                        match jobs.await {
                            Ok(list) if list.is_empty() => view! { <p class="muted">"No imports yet."</p> }.into_any(),
                            Ok(list) => view! { <RecentImports list/> }.into_any(),
                            Err(e) => view! { <ErrorNote error=e/> }.into_any(),
                        }
                    })}
                </Transition>
            </section>
        </RequireRole>
    }
}

#[component]
fn RecentImports(list: Vec<ImportJob>) -> impl IntoView {
    view! {
        <ScrollTable label="Recent imports">
            <table>
                <thead><tr><th>"File"</th><th>"Uploaded"</th><th>"By"</th><th>"State"</th><th class="num">"Sales"</th></tr></thead>
                <tbody>
                    {list.into_iter().map(|j| view! {
                        <tr>
                            <td><a href=format!("/imports/{}", j.id)>{j.file_name.clone()}</a></td>
                            <td><LocalTime at=j.created_at/></td>
                            <td>{j.created_by.clone().unwrap_or_else(|| "—".into())}</td>
                            <td>{j.state.label()}</td>
                            <td class="num"><Count n=j.valid/></td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        </ScrollTable>
    }
}

#[component]
pub fn ImportJobPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.with(|p| p.get("id").and_then(|id| id.parse::<u64>().ok()));
    let start = ServerAction::<StartImport>::new();
    let cancel = ServerAction::<CancelImport>::new();
    let polls = RwSignal::new(0u32);
    let job = Resource::new(
        move || {
            (
                id(),
                polls.get(),
                start.version().get(),
                cancel.version().get(),
            )
        },
        move |(id, polls, ..)| async move {
            match id {
                Some(id) => load_import(id, Some(polls > 0)).await,
                None => Err(AppError::NotFound),
            }
        },
    );
    // While it is to finish, the page asks again every second: the job may run on
    // another instance, and its row is where every instance reports.
    Effect::new(move |_| {
        let active = job
            .get()
            .and_then(Result::ok)
            .is_some_and(|j| j.state.is_active());
        if active {
            set_timeout(
                move || polls.update(|n| *n += 1),
                std::time::Duration::from_secs(1),
            );
        }
    });
    view! {
        <Title text="Import"/>
        <RequireRole roles=Role::STAFF>
            <p><A href="/imports">"← All imports"</A></p>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match job.await {
                        Ok(j) => view! { <JobView job=j start cancel/> }.into_any(),
                        Err(e) => view! { <ErrorNote error=e/> }.into_any(),
                    }
                })}
            </Transition>
        </RequireRole>
    }
}

#[component]
fn JobView(
    job: ImportJob,
    start: ServerAction<StartImport>,
    cancel: ServerAction<CancelImport>,
) -> impl IntoView {
    let error = Signal::derive(move || {
        action_error(start.value())
            .get()
            .or_else(|| action_error(cancel.value()).get())
    });
    // A finished run's rate is over its own time, not up to now.
    let now = job.finished_at.unwrap_or_else(crate::locale::now);
    let id = job.id;
    let percent = job.percent();
    let rejected_class = if job.rejected > 0 { "kpi bad" } else { "kpi" };
    let rate = job.rate(now).map(|r| format!("{r:.0} sales a second"));
    let left = job.seconds_left(now).map(|s| match s {
        0..=59 => format!("about {s} s left"),
        _ => format!("about {} min left", s.div_ceil(60)),
    });
    view! {
        <section class="card" aria-labelledby="job-title" data-testid="import-job" data-state=job.state.as_str()>
            <h1 id="job-title">{job.file_name.clone()}</h1>
            <p class="muted">
                "Uploaded " <LocalTime at=job.created_at/>
                {job.created_by.clone().map(|by| format!(" by {by}"))}
                " · " {format!("{:.1} KB", job.file_size as f64 / 1024.0)}
            </p>
            <p><strong data-testid="import-state">{job.state.label()}</strong></p>
            <FormError error/>
            <div class="kpis">
                <div class="kpi"><span class="kpi-label">"Sales in the file"</span><span class="kpi-value" data-testid="import-valid"><Count n=job.valid/></span></div>
                <div class="kpi"><span class="kpi-label">"New"</span><span class="kpi-value" data-testid="import-new"><Count n=job.new_sales/></span></div>
                <div class="kpi"><span class="kpi-label">"Already present"</span><span class="kpi-value" data-testid="import-present"><Count n=job.present/></span></div>
                <div class=rejected_class><span class="kpi-label">"Rejected"</span><span class="kpi-value" data-testid="import-rejected"><Count n=job.rejected/></span></div>
            </div>
            {(job.rejected > 0).then(|| view! { <Rejections job=job.clone()/> })}
            {job.can_start().then(|| view! {
                <ActionForm action=start attr:class="inline-form">
                    <input type="hidden" name="id" value=id/>
                    <button type="submit" class="btn">{format!("Import {} sales", job.valid)}</button>
                </ActionForm>
            })}
            {(job.state.is_active() || matches!(job.state, ImportState::Done | ImportState::Cancelled | ImportState::Failed)).then(|| view! {
                <div class="progress-block">
                    <progress max="100" value=percent aria-label="Import progress">{format!("{percent}%")}</progress>
                    <p data-testid="import-progress">
                        {format!("{percent}% · ")} <Count n=job.processed/> " of " <Count n=job.valid/> " sales"
                        {rate.map(|r| format!(" · {r}"))}
                        {job.state.is_active().then_some(left).flatten().map(|l| format!(" · {l}"))}
                    </p>
                    <p class="muted">
                        <Count n=job.inserted/> " written, " <Count n=job.skipped/> " were there already"
                    </p>
                </div>
            })}
            {job.error.clone().map(|e| view! { <p class="error" role="alert">{e}</p> })}
            {(job.state.is_active() || job.state == ImportState::Checked).then(|| view! {
                <ActionForm action=cancel attr:class="inline-form">
                    <input type="hidden" name="id" value=id/>
                    <button type="submit" class="btn secondary" disabled=job.cancel_requested>
                        {if job.cancel_requested { "Stopping…" } else { "Cancel" }}
                    </button>
                </ActionForm>
            })}
        </section>
    }
}

#[component]
fn Rejections(job: ImportJob) -> impl IntoView {
    let more = job.rejected.saturating_sub(job.rejections.len() as u64);
    view! {
        <section aria-labelledby="rejections-title" data-testid="rejections">
            <h2 id="rejections-title">"Rejected records"</h2>
            <p>"Correct these in the file and upload it again: a file is imported only when every record is a valid sale."</p>
            <ScrollTable label="Rejected records">
                <table>
                    <thead><tr><th>"Where"</th><th>"Why"</th></tr></thead>
                    <tbody>
                        {job.rejections.into_iter().map(|r| view! { <tr><td>{r.at}</td><td class="break">{r.reason}</td></tr> }).collect_view()}
                    </tbody>
                </table>
            </ScrollTable>
            {(more > 0).then(|| view! { <p class="muted">{format!("…and {more} more.")}</p> })}
        </section>
    }
}
