use crate::api::service_health;
use crate::model::{HealthReport, StoreHealth};
use leptos::prelude::*;
use leptos_meta::Title;

#[component]
pub fn HomePage() -> impl IntoView {
    let query = leptos_router::hooks::use_query_map();
    let closed = move || query.with(|q| q.get("closed")).as_deref() == Some("1");
    view! {
        <Title text="Welcome"/>
        <Show when=closed>
            <p class="card success" role="status" data-testid="account-closed">
                "Your account is closed and your personal data is deleted. Thank you for shopping with Supply Co."
            </p>
        </Show>
        <section class="hero">
            <h1>"Sales for every Supply Co. store, in one place"</h1>
            <p class="lead">
                "Customers see their purchases, technical staff keep the sales records right, "
                "and management sees how every store is doing."
            </p>
        </section>
        <ServiceStatus/>
    }
}

/// Live status of both stores. The "Check again" button re-queries the server
/// without a page load, which is also how the smoke test proves hydration.
#[component]
fn ServiceStatus() -> impl IntoView {
    let health = Resource::new(|| (), |_| service_health());
    let refresh = move |_| health.refetch();
    view! {
        <section class="card status-card" aria-labelledby="status-title">
            <div class="card-head">
                <h2 id="status-title">"Service status"</h2>
                <button type="button" class="btn secondary" on:click=refresh data-testid="check-status">
                    "Check again"
                </button>
            </div>
            <Transition fallback=|| view! { <p class="muted">"Checking…"</p> }>
                {move || {
                    health
                        .get()
                        .map(|result| match result {
                            Ok(report) => view! { <StatusTable report/> }.into_any(),
                            Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                        })
                }}
            </Transition>
        </section>
    }
}

#[component]
fn StatusTable(report: HealthReport) -> impl IntoView {
    let row = |name: &'static str, store: StoreHealth| {
        let (class, label) = if store.up {
            ("pill ok", "up")
        } else {
            ("pill down", "down")
        };
        view! {
            <tr>
                <th scope="row">{name}</th>
                <td><span class=class>{label}</span></td>
                <td class="num">{tenths(store.rtt_ms)} " ms"</td>
            </tr>
        }
    };
    view! {
        <table class="status-table">
            <thead><tr><th scope="col">"Store"</th><th scope="col">"State"</th><th scope="col" class="num">"Round trip"</th></tr></thead>
            <tbody>
                {row("Accounts and reports (MySQL)", report.mysql)}
                {row("Sales (MongoDB)", report.mongodb)}
            </tbody>
        </table>
        <p class="muted small" data-testid="checked-at">
            "Version " {report.version} " · checked at "
            {crate::model::time::clock_millis(&report.checked_at)}
        </p>
    }
}

/// `12.3`: a duration in tenths, without the float formatter (docs/benchmarks.md, "Levers").
fn tenths(ms: f64) -> String {
    // Round trips are milliseconds to seconds: far inside u64 as tenths.
    let tenths = (ms.max(0.0) * 10.0).round() as u64;
    format!("{}.{}", tenths / 10, tenths % 10)
}
