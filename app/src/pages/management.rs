//! `/management`: analytics over a date range (in the URL), the replication panel and
//! the way to user administration.

use crate::api::sales::load_analytics;
use crate::auth::RequireRole;
use crate::components::ErrorNote;
use crate::live::{Heard, Throttle, Views, use_live};
use crate::locale::{Count, Money};
use crate::model::analytics::{AnalyticsFilter, Movement, Step};
use crate::model::report::{Analytics, Kpis, group_digits, money};
use crate::model::{PurchaseMethod, Role};
use crate::pages::charts::{Bar, BarChart, LineChart, ShareChart};
use crate::pages::replication::ReplicationPanel;
use chrono::{Datelike, NaiveDate};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::{A, Form};
use leptos_router::hooks::use_query_map;
use leptos_router::location::Url;
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use std::cmp::Ordering;

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

/// The analytics' URL state.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Wanted {
    from: String,
    to: String,
    store: String,
    method: String,
}

/// Created inside the role guard, so its resource only loads for senior managers.
#[component]
fn AnalyticsPanel() -> impl IntoView {
    let query = use_query_map();
    let wanted = move || {
        let q = query.read();
        let field = |k: &str| q.get(k).unwrap_or_default();
        Wanted {
            from: field("from"),
            to: field("to"),
            store: field("store"),
            method: field("method"),
        }
    };
    let refreshes = RwSignal::new(0u32);
    let views = Views::new();
    let analytics = Resource::new(
        move || (wanted(), refreshes.get()),
        move |(w, _)| {
            let background = views.background(&w);
            load_analytics(w.from, w.to, Some(w.store), Some(w.method), background)
        },
    );
    let refresh = Throttle::new(move || refreshes.update(|n| *n += 1));
    view! {
        <section class="card" aria-labelledby="analytics-title">
            <h2 id="analytics-title">"Analytics"</h2>
            <Transition fallback=|| view! { <p class="muted">"Computing the figures…"</p> }>
                {move || Suspend::new(async move {
                    let w = wanted();
                    match analytics.await {
                        Ok(a) => {
                            let stores = a.stores.clone();
                            view! {
                                <Filters wanted=w stores/>
                                <AnalyticsView analytics=a refresh/>
                            }.into_any()
                        }
                        Err(e) => view! {
                            <Filters wanted=w stores=Vec::new()/>
                            <ErrorNote error=e/>
                        }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

/// The range, store and method, kept in the URL (a GET form: it works before hydration).
#[component]
fn Filters(wanted: Wanted, stores: Vec<String>) -> impl IntoView {
    let export_href = format!(
        "/api/export/analytics.csv?from={}&to={}&store={}&method={}",
        Url::escape(&wanted.from),
        Url::escape(&wanted.to),
        Url::escape(&wanted.store),
        Url::escape(&wanted.method)
    );
    let mut stores = stores;
    if !wanted.store.is_empty() && !stores.contains(&wanted.store) {
        stores.push(wanted.store.clone());
    }
    let chosen_store = wanted.store.clone();
    let chosen_method = wanted.method.clone();
    view! {
        <Form method="GET" action="/management" attr:class="filters" attr:aria-label="Analytics filters">
            <div class="field">
                <label for="an-from">"From"</label>
                <input id="an-from" type="date" name="from" value=wanted.from.clone() prop:value=wanted.from/>
            </div>
            <div class="field">
                <label for="an-to">"To"</label>
                <input id="an-to" type="date" name="to" value=wanted.to.clone() prop:value=wanted.to/>
            </div>
            <div class="field">
                <label for="an-store">"Store"</label>
                <select id="an-store" name="store">
                    <option value="" selected=chosen_store.is_empty()>"All stores"</option>
                    {stores.into_iter().map(|s| {
                        let selected = s == chosen_store;
                        view! { <option value=s.clone() selected=selected>{s.clone()}</option> }
                    }).collect_view()}
                </select>
            </div>
            <div class="field">
                <label for="an-method">"Purchase method"</label>
                <select id="an-method" name="method">
                    <option value="" selected=chosen_method.is_empty()>"All methods"</option>
                    {PurchaseMethod::ALL.into_iter().map(|m| view! {
                        <option value=m.as_str() selected=m.as_str() == chosen_method>{m.as_str()}</option>
                    }).collect_view()}
                </select>
            </div>
            <div class="field actions">
                <button type="submit" class="btn">"Show"</button>
                <A href="/management" attr:class="btn secondary">"All time"</A>
                <a class="btn secondary" href=export_href download data-testid="export-analytics">"Download table (CSV)"</a>
            </div>
        </Form>
    }
}

/// A KPI: its value and, when there is a previous period, how it moved.
#[component]
fn Kpi(
    label: &'static str,
    id: &'static str,
    value: AnyView,
    change: Option<Option<Movement>>,
) -> impl IntoView {
    let change = change.map(|m| match m {
        Some(m) => {
            let (class, arrow) = match m.direction {
                Ordering::Greater => ("kpi-change up", "▲"),
                Ordering::Less => ("kpi-change down", "▼"),
                Ordering::Equal => ("kpi-change", "="),
            };
            view! {
                <span class=class data-testid=format!("{id}-change")>
                    <span aria-hidden="true">{arrow} " "</span>{m.text} " vs previous period"
                </span>
            }
            .into_any()
        }
        None => view! {
            <span class="kpi-change" data-testid=format!("{id}-change")>"none in the previous period"</span>
        }
        .into_any(),
    });
    view! {
        <div class="kpi">
            <span class="kpi-label">{label}</span>
            <span class="kpi-value" data-testid=id>{value}</span>
            {change}
        </div>
    }
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// A trend point's name: "Mar 3" for days and weeks, "Mar 2016" for months.
fn step_label(step: Step, start: NaiveDate) -> String {
    let month = MONTHS[start.month0() as usize];
    match step {
        Step::Day | Step::Week => format!("{month} {}", start.day()),
        Step::Month => format!("{month} {}", start.year()),
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
    let filter = AnalyticsFilter {
        from,
        to,
        store: analytics.store.clone(),
        method: analytics.method,
    };
    let k = analytics.kpis;
    let p = analytics.previous;
    let stores: Vec<Bar> = analytics
        .by_store
        .iter()
        .map(|s| Bar {
            label: s.label.clone(),
            value: f(s.revenue),
            detail: format!(
                "{} · {} sales",
                money(s.revenue),
                group_digits(&s.sales.to_string())
            ),
            href: Some(filter.sales_table_href(None, None, Some(&s.label), None)),
        })
        .collect();
    let step = analytics.trend.step;
    let last_day = to;
    let trend_href = |start: NaiveDate| {
        let end = step.last_day(start);
        let end = last_day.map_or(end, |l| end.min(l));
        let begin = from.map_or(start, |f| start.max(f));
        filter.sales_table_href(Some(begin), Some(end), None, None)
    };
    let revenue: Vec<Bar> = analytics
        .trend
        .points
        .iter()
        .map(|t| Bar {
            label: step_label(step, t.start),
            value: f(t.revenue),
            detail: format!(
                "{} · {} sales",
                money(t.revenue),
                group_digits(&t.sales.to_string())
            ),
            href: Some(trend_href(t.start)),
        })
        .collect();
    let counts: Vec<Bar> = analytics
        .trend
        .points
        .iter()
        .map(|t| Bar {
            label: step_label(step, t.start),
            value: t.sales as f64,
            detail: format!(
                "{} sales · {}",
                group_digits(&t.sales.to_string()),
                money(t.revenue)
            ),
            href: Some(trend_href(t.start)),
        })
        .collect();
    let methods: Vec<Bar> = analytics
        .by_method
        .iter()
        .map(|m| Bar {
            label: m.label.clone(),
            value: m.sales as f64,
            detail: format!(
                "{} sales · {}",
                group_digits(&m.sales.to_string()),
                money(m.revenue)
            ),
            href: PurchaseMethod::parse(&m.label)
                .ok()
                .map(|method| filter.sales_table_href(None, None, None, Some(method))),
        })
        .collect();
    let satisfaction: Vec<Bar> = analytics
        .satisfaction
        .iter()
        .enumerate()
        .map(|(i, n)| Bar {
            label: format!("{} ★", i + 1),
            value: *n as f64,
            detail: format!("{} sales", group_digits(&n.to_string())),
            href: None,
        })
        .collect();
    let items: Vec<Bar> = analytics
        .top_items
        .iter()
        .map(|i| Bar {
            label: i.name.clone(),
            value: f(i.revenue),
            detail: format!(
                "{} · {} sold",
                money(i.revenue),
                group_digits(&i.quantity.to_string())
            ),
            href: None,
        })
        .collect();
    let percent = |rate: Decimal| (rate * Decimal::from(100)).round_dp(1);
    let change = |pick: fn(&Kpis) -> Decimal, relative: bool, unit: &'static str| {
        p.as_ref().map(|before| {
            if relative {
                Movement::percent(pick(&k), pick(before))
            } else {
                Some(Movement::points(pick(&k), pick(before), unit))
            }
        })
    };
    let revenue_change = change(|k| k.revenue, true, "");
    let sales_change = change(|k| Decimal::from(k.sales), true, "");
    let basket_change = change(|k| k.average_basket, true, "");
    let coupon_change = change(|k| k.coupon_rate * Decimal::from(100), false, " pts");
    let satisfaction_change = change(|k| k.average_satisfaction, false, "");
    let step_noun = match step {
        Step::Day => "Day",
        Step::Week => "Week of",
        Step::Month => "Month",
    };
    let trend_title = match step {
        Step::Day => ("Revenue by day", "Sales by day"),
        Step::Week => ("Revenue by week", "Sales by week"),
        Step::Month => ("Revenue by month", "Sales by month"),
    };
    view! {
        <div class="kpis" data-testid="analytics-kpis">
            <Kpi label="Revenue" id="kpi-revenue" value=view! { <Money amount=k.revenue/> }.into_any() change=revenue_change/>
            <Kpi label="Sales" id="kpi-sales" value=view! { <Count n=k.sales/> }.into_any() change=sales_change/>
            <Kpi label="Average basket" id="kpi-basket" value=view! { <Money amount=k.average_basket/> }.into_any() change=basket_change/>
            <Kpi label="Coupon rate" id="kpi-coupon" value=format!("{}%", percent(k.coupon_rate)).into_any() change=coupon_change/>
            <Kpi label="Average satisfaction" id="kpi-satisfaction" value=format!("{} / 5", k.average_satisfaction).into_any() change=satisfaction_change/>
        </div>
        {if k.sales == 0 {
            view! { <p class="muted">"No sales in this period."</p> }.into_any()
        } else {
            view! {
                <div class="charts">
                    <LineChart title=trend_title.0 rows_are=step_noun unit="$" points=revenue/>
                    <LineChart title=trend_title.1 rows_are=step_noun unit="" points=counts/>
                    <BarChart title="Revenue by store" rows_are="Store" unit="$" bars=stores/>
                    <ShareChart title="Sales by purchase method" rows_are="Purchase method" parts=methods/>
                    <BarChart title="Satisfaction" rows_are="Score" unit="" bars=satisfaction/>
                    <BarChart title="Top items by revenue" rows_are="Item" unit="$" bars=items/>
                </div>
            }.into_any()
        }}
    }
}
