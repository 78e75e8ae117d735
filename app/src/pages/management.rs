//! `/management`: analytics over a date range (in the URL), the replication panel and
//! the way to user administration.

use crate::api::sales::load_analytics;
use crate::auth::RequireRole;
use crate::components::ErrorNote;
use crate::live::{Heard, Throttle, Views, use_live};
use crate::model::Role;
use crate::model::report::{Analytics, money};
use crate::pages::charts::{Bar, BarChart, ColumnChart, ShareChart};
use crate::pages::replication::ReplicationPanel;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::{A, Form};
use leptos_router::hooks::use_query_map;
use leptos_router::location::Url;
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

fn f(d: Decimal) -> f64 {
    d.to_f64().unwrap_or(0.0)
}

#[component]
pub fn ManagementDashboard() -> impl IntoView {
    view! {
        <Title text="Management"/>
        <RequireRole roles=Role::MANAGEMENT>
            <section class="hero row">
                <div>
                    <h1>"Management"</h1>
                    <p class="lead">"Store performance, from the reporting database."</p>
                </div>
                <A href="/management/users" attr:class="btn secondary">"Manage users"</A>
            </section>
            <AnalyticsPanel/>
            <ReplicationPanel/>
        </RequireRole>
    }
}

/// Created inside the role guard, so its resource only loads for senior managers.
#[component]
fn AnalyticsPanel() -> impl IntoView {
    let query = use_query_map();
    let range = move || {
        let q = query.read();
        (
            q.get("from").unwrap_or_default(),
            q.get("to").unwrap_or_default(),
        )
    };
    let refreshes = RwSignal::new(0u32);
    let views = Views::new();
    let analytics = Resource::new(
        move || (range(), refreshes.get()),
        move |(range, _)| {
            let background = views.background(&range);
            load_analytics(range.0, range.1, background)
        },
    );
    let refresh = Throttle::new(move || refreshes.update(|n| *n += 1));
    let export_href = move || {
        let (from, to) = range();
        format!(
            "/api/export/analytics.csv?from={}&to={}",
            Url::escape(&from),
            Url::escape(&to)
        )
    };
    view! {
        <section class="card" aria-labelledby="analytics-title">
            <h2 id="analytics-title">"Analytics"</h2>
            <Form method="GET" action="/management" attr:class="filters">
                // `value` for the server's HTML, `prop:value` for client navigation.
                <div class="field">
                    <label for="an-from">"From"</label>
                    <input id="an-from" type="date" name="from" value=move || range().0 prop:value=move || range().0/>
                </div>
                <div class="field">
                    <label for="an-to">"To"</label>
                    <input id="an-to" type="date" name="to" value=move || range().1 prop:value=move || range().1/>
                </div>
                <div class="field actions">
                    <button type="submit" class="btn">"Show"</button>
                    <A href="/management" attr:class="btn secondary">"All time"</A>
                    <a class="btn secondary" href=export_href download data-testid="export-analytics">"Download table (CSV)"</a>
                </div>
            </Form>
            <Transition fallback=|| view! { <p class="muted">"Computing the figures…"</p> }>
                {move || Suspend::new(async move {
                    match analytics.await {
                        Ok(a) => view! { <AnalyticsView analytics=a refresh/> }.into_any(),
                        Err(e) => view! { <ErrorNote error=e/> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

#[component]
fn AnalyticsView(analytics: Analytics, refresh: Throttle) -> impl IntoView {
    // The figures follow the sales of their range, refreshed at most once a second.
    let (from, to) = (analytics.from, analytics.to);
    use_live().follow(analytics.feed, move |heard| {
        if match heard {
            Heard::Missed => true,
            Heard::Change(change) => change.touches(from, to),
        } {
            refresh.request();
        }
    });
    let k = analytics.kpis;
    let stores: Vec<Bar> = analytics
        .by_store
        .iter()
        .map(|s| Bar {
            label: s.label.clone(),
            value: f(s.revenue),
            detail: format!("{} · {} sales", money(s.revenue), s.sales),
        })
        .collect();
    let months: Vec<String> = analytics.by_month.iter().map(|m| m.label.clone()).collect();
    let revenue: Vec<(f64, String)> = analytics
        .by_month
        .iter()
        .map(|m| (f(m.revenue), money(m.revenue)))
        .collect();
    let counts: Vec<(f64, String)> = analytics
        .by_month
        .iter()
        .map(|m| (m.sales as f64, format!("{} sales", m.sales)))
        .collect();
    let methods: Vec<Bar> = analytics
        .by_method
        .iter()
        .map(|m| Bar {
            label: m.label.clone(),
            value: m.sales as f64,
            detail: format!("{} sales · {}", m.sales, money(m.revenue)),
        })
        .collect();
    let satisfaction: Vec<Bar> = analytics
        .satisfaction
        .iter()
        .enumerate()
        .map(|(i, n)| Bar {
            label: format!("{} ★", i + 1),
            value: *n as f64,
            detail: format!("{n} sales"),
        })
        .collect();
    let items: Vec<Bar> = analytics
        .top_items
        .iter()
        .map(|i| Bar {
            label: i.name.clone(),
            value: f(i.revenue),
            detail: format!("{} · {} sold", money(i.revenue), i.quantity),
        })
        .collect();
    let percent = (k.coupon_rate * Decimal::from(100)).round_dp(1);
    view! {
        <div class="kpis" data-testid="analytics-kpis">
            <div class="kpi"><span class="kpi-label">"Revenue"</span><span class="kpi-value" data-testid="kpi-revenue">{money(k.revenue)}</span></div>
            <div class="kpi"><span class="kpi-label">"Sales"</span><span class="kpi-value" data-testid="kpi-sales">{k.sales}</span></div>
            <div class="kpi"><span class="kpi-label">"Average basket"</span><span class="kpi-value" data-testid="kpi-basket">{money(k.average_basket)}</span></div>
            <div class="kpi"><span class="kpi-label">"Coupon rate"</span><span class="kpi-value" data-testid="kpi-coupon">{format!("{percent}%")}</span></div>
            <div class="kpi"><span class="kpi-label">"Average satisfaction"</span><span class="kpi-value" data-testid="kpi-satisfaction">{k.average_satisfaction.to_string()} " / 5"</span></div>
        </div>
        {if k.sales == 0 {
            view! { <p class="muted">"No sales in this period."</p> }.into_any()
        } else {
            view! {
                <div class="charts">
                    <BarChart title="Revenue by store" bars=stores/>
                    <ShareChart title="Sales by purchase method" parts=methods/>
                    <ColumnChart title="By month" labels=months first=("Revenue", revenue) second=("Sales", counts)/>
                    <BarChart title="Satisfaction" bars=satisfaction/>
                    <BarChart title="Top items by revenue" bars=items/>
                </div>
            }.into_any()
        }}
    }
}
