//! A sale's history: each version, who made it, and what changed.

use crate::api::sales::load_sale_history;
use crate::auth::RequireRole;
use crate::components::{ErrorNote, ScrollTable};
use crate::locale::LocalTime;
use crate::model::{AppError, HistoryEntry, Role, SaleHistory};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::{components::A, hooks::use_params_map};

/// `/sales/:id/history`: also for sales that were deleted (senior managers only).
#[component]
pub fn SaleHistoryPage() -> impl IntoView {
    let params = use_params_map();
    let id = Signal::derive(move || params.read().get("id").unwrap_or_default());
    view! {
        <Title text="Sale history"/>
        <RequireRole roles=Role::STAFF>
            <SaleHistoryPanel id refresh=Signal::derive(|| 0)/>
        </RequireRole>
    }
}

/// The history of sale `id`, read again whenever `refresh` changes (after a save).
#[component]
pub fn SaleHistoryPanel(
    #[prop(into)] id: Signal<String>,
    #[prop(into)] refresh: Signal<u64>,
) -> impl IntoView {
    let history = Resource::new(
        move || (id.get(), refresh.get()),
        |(id, _)| load_sale_history(id),
    );
    view! {
        <section class="card" aria-labelledby="history-title" data-testid="sale-history">
            <h2 id="history-title">"History"</h2>
            <Transition fallback=|| view! { <p class="muted">"Loading the history…"</p> }>
                {move || history.get().map(|r| match r {
                    Err(AppError::NotFound) => view! { <p class="muted">"No history to show."</p> }.into_any(),
                    Err(AppError::Forbidden) => view! {
                        <p class="muted">"This sale was deleted; only senior managers can see its history."</p>
                    }.into_any(),
                    Err(e) => view! { <ErrorNote error=e/> }.into_any(),
                    Ok(h) => view! { <Entries history=h/> }.into_any(),
                })}
            </Transition>
        </section>
    }
}

#[component]
fn Entries(history: SaleHistory) -> impl IntoView {
    let deleted = history.deleted.then(|| {
        view! { <p class="notice" role="status">"This sale was deleted; its history stays readable."</p> }
    });
    let newest_first: Vec<HistoryEntry> = history.entries.into_iter().rev().collect();
    let id = history.id.to_string();
    view! {
        {deleted}
        <p class="muted small">"Sale " <code>{id.clone()}</code> " · newest first · "
            <A href=format!("/sales/{id}/history")>"permalink"</A>
        </p>
        <ol class="history">
            {newest_first.into_iter().map(|e| view! { <Entry entry=e/> }).collect_view()}
        </ol>
    }
}

#[component]
fn Entry(entry: HistoryEntry) -> impl IntoView {
    let version = entry
        .version
        .map(|v| format!("version {v}"))
        .unwrap_or_else(|| "no version".into());
    let count = entry.changes.len();
    view! {
        <li data-testid="history-entry">
            <p class="history-head">
                <strong>{entry.op.label()}</strong> " by " <span data-testid="history-actor">{entry.actor.to_string()}</span>
                " · " <LocalTime at=entry.at/> " · " {version}
            </p>
            {(count > 0).then(|| view! {
                <ScrollTable label="Changes">
                    <table class="changes">
                        <thead><tr><th scope="col">"Field"</th><th scope="col">"Before"</th><th scope="col">"After"</th></tr></thead>
                        <tbody>
                            {entry.changes.into_iter().map(|c| view! {
                                <tr>
                                    <th scope="row">{c.field}</th>
                                    <td>{c.before.unwrap_or_else(|| "—".into())}</td>
                                    <td>{c.after.unwrap_or_else(|| "—".into())}</td>
                                </tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                </ScrollTable>
            })}
        </li>
    }
}
