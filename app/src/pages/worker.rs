//! `/worker`: the sales table with filters in the URL, delete with confirmation, and
//! the replication panel.

use crate::api::sales::{DeleteSale, list_sales};
use crate::auth::RequireRole;
use crate::components::{ErrorNote, FormError, Pager, ScrollTable, action_error, format_time};
use crate::model::report::{SaleRow, SaleSort, SalesPage, SalesQuery, money};
use crate::model::{PurchaseMethod, Role};
use crate::pages::replication::ReplicationPanel;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::{A, Form};
use leptos_router::hooks::use_query;
use leptos_router::location::Url;
use leptos_router::params::Params;

/// The filters as the URL carries them (`/worker?store=Denver&page=2`): bookmarkable,
/// and kept by the back button.
#[derive(Params, Clone, Debug, Default, PartialEq)]
struct Filters {
    store: Option<String>,
    method: Option<String>,
    from: Option<String>,
    to: Option<String>,
    coupon: Option<String>,
    email: Option<String>,
    sort: Option<String>,
    page: Option<String>,
}

impl From<Filters> for SalesQuery {
    fn from(f: Filters) -> Self {
        SalesQuery {
            store: f.store.unwrap_or_default(),
            method: f.method.unwrap_or_default(),
            from: f.from.unwrap_or_default(),
            to: f.to.unwrap_or_default(),
            coupon: f.coupon.unwrap_or_default(),
            email: f.email.unwrap_or_default(),
            sort: f.sort.unwrap_or_default(),
            page: f.page.unwrap_or_default(),
        }
    }
}

/// `/worker?…` for these filters, with `page` (and optionally `sort`) replaced.
fn href_for(q: &SalesQuery, page: u32, sort: Option<SaleSort>) -> String {
    let sort = match sort {
        Some(s) => s.as_str(),
        None => q.sort.as_str(),
    };
    let page = if page > 1 {
        page.to_string()
    } else {
        String::new()
    };
    let pairs: [(&'static str, &str); 8] = [
        ("store", q.store.as_str()),
        ("method", &q.method),
        ("from", &q.from),
        ("to", &q.to),
        ("coupon", &q.coupon),
        ("email", &q.email),
        ("sort", sort),
        ("page", &page),
    ];
    // Built here rather than through `ParamsMap`, whose `insert` decodes the values
    // again: a literal `%41` typed in a filter would come back as `A`.
    let query: Vec<String> = pairs
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", Url::escape(v)))
        .collect();
    if query.is_empty() {
        "/worker".into()
    } else {
        format!("/worker?{}", query.join("&"))
    }
}

#[component]
pub fn WorkerDashboard() -> impl IntoView {
    view! {
        <Title text="Sales"/>
        <RequireRole roles=Role::STAFF>
            <section class="hero row">
                <div>
                    <h1>"Sales"</h1>
                    <p class="lead">"Find, correct and record sales of every store."</p>
                </div>
                <A href="/worker/sales/new" attr:class="btn">"New sale"</A>
            </section>
            <SalesTable/>
            <ReplicationPanel/>
        </RequireRole>
    }
}

#[component]
fn SalesTable() -> impl IntoView {
    let filters = use_query::<Filters>();
    let query = Memo::new(move |_| SalesQuery::from(filters.get().unwrap_or_default()));
    let delete = ServerAction::<DeleteSale>::new();
    let sales = Resource::new(
        move || (query.get(), delete.version().get()),
        |(q, _)| list_sales(q),
    );
    view! {
        <section class="card" aria-labelledby="sales-title">
            <h2 id="sales-title" class="visually-hidden">"Sales table"</h2>
            <FormError error=action_error(delete.value())/>
            // The filters render with the page they filter: the store choices come with it.
            <Transition fallback=|| view! { <p class="muted">"Loading sales…"</p> }>
                {move || Suspend::new(async move {
                    match sales.await {
                        Ok(page) => view! {
                            <Filters query stores=page.stores.clone()/>
                            <Table page query=query.get_untracked() delete/>
                        }.into_any(),
                        Err(e) => view! { <Filters query stores=Vec::new()/> <ErrorNote error=e/> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

#[component]
fn Filters(query: Memo<SalesQuery>, stores: Vec<String>) -> impl IntoView {
    let q = move || query.get();
    view! {
        <Form method="GET" action="/worker" attr:class="filters" attr:data-testid="filters">
            <div class="field">
                <label for="flt-store">"Store"</label>
                <select id="flt-store" name="store">
                    <option value="">"All stores"</option>
                    {stores.into_iter().map(|s| {
                        let selected = q().store == s;
                        view! { <option value=s.clone() selected=selected>{s.clone()}</option> }
                    }).collect_view()}
                </select>
            </div>
            <div class="field">
                <label for="flt-method">"Purchase method"</label>
                <select id="flt-method" name="method">
                    <option value="">"Any"</option>
                    {PurchaseMethod::ALL.into_iter().map(|m| view! {
                        <option value=m.as_str() selected=move || q().method == m.as_str()>{m.as_str()}</option>
                    }).collect_view()}
                </select>
            </div>
            // `value` renders on the server (the form works before hydration, or without
            // JavaScript); `prop:value` keeps an edited input in step on client navigation.
            <div class="field">
                <label for="flt-from">"From"</label>
                <input id="flt-from" type="date" name="from" value=move || q().from prop:value=move || q().from/>
            </div>
            <div class="field">
                <label for="flt-to">"To"</label>
                <input id="flt-to" type="date" name="to" value=move || q().to prop:value=move || q().to/>
            </div>
            <div class="field">
                <label for="flt-coupon">"Coupon"</label>
                <select id="flt-coupon" name="coupon">
                    <option value="">"Any"</option>
                    <option value="yes" selected=move || q().coupon == "yes">"Used"</option>
                    <option value="no" selected=move || q().coupon == "no">"Not used"</option>
                </select>
            </div>
            <div class="field">
                <label for="flt-email">"Customer email"</label>
                <input id="flt-email" type="search" name="email" placeholder="starts with…" value=move || q().email prop:value=move || q().email/>
            </div>
            <div class="field">
                <label for="flt-sort">"Sort"</label>
                <select id="flt-sort" name="sort">
                    {SaleSort::ALL.into_iter().map(|s| view! {
                        <option value=s.as_str() selected=move || SaleSort::parse(&q().sort).unwrap_or_default() == s>{s.label()}</option>
                    }).collect_view()}
                </select>
            </div>
            <div class="field actions">
                <button type="submit" class="btn">"Apply"</button>
                <A href="/worker" attr:class="btn secondary">"Clear"</A>
            </div>
        </Form>
    }
}

#[component]
fn Table(page: SalesPage, query: SalesQuery, delete: ServerAction<DeleteSale>) -> impl IntoView {
    let confirming = RwSignal::new(None::<String>);
    let q = query.clone();
    let sort_link = move |asc: SaleSort, desc: SaleSort| {
        let current = SaleSort::parse(&q.sort).unwrap_or_default();
        let next = if current == desc { asc } else { desc };
        href_for(&q, 1, Some(next))
    };
    let (date_href, total_href) = (
        sort_link(SaleSort::DateAsc, SaleSort::DateDesc),
        sort_link(SaleSort::TotalAsc, SaleSort::TotalDesc),
    );
    let q2 = query.clone();
    let pager_href = Callback::new(move |p: u32| href_for(&q2, p, None));
    view! {
        <p class="muted small" data-testid="matching">{page.matching} " matching sales"</p>
        {if page.rows.is_empty() {
            view! { <p class="muted">"No sales match these filters."</p> }.into_any()
        } else {
            view! {
                <ScrollTable label="Sales">
                    <table data-testid="sales-table">
                        <thead>
                            <tr>
                                <th><A href=date_href>"Date ↕"</A></th>
                                <th>"Store"</th>
                                <th>"Method"</th>
                                <th>"Coupon"</th>
                                <th>"Customer"</th>
                                <th class="num">"Items"</th>
                                <th class="num"><A href=total_href>"Total ↕"</A></th>
                                <th><span class="visually-hidden">"Actions"</span></th>
                            </tr>
                        </thead>
                        <tbody>
                            {page.rows.into_iter().map(|row| view! { <Row row confirming delete/> }).collect_view()}
                        </tbody>
                    </table>
                </ScrollTable>
            }.into_any()
        }}
        <Pager page=page.page pages=page.pages href=pager_href/>
    }
}

#[component]
fn Row(
    row: SaleRow,
    confirming: RwSignal<Option<String>>,
    delete: ServerAction<DeleteSale>,
) -> impl IntoView {
    let id = row.id.to_string();
    let is_confirming = {
        let id = id.clone();
        move || confirming.get().as_deref() == Some(id.as_str())
    };
    let ask = {
        let id = id.clone();
        move |_| confirming.set(Some(id.clone()))
    };
    let confirm = {
        let id = id.clone();
        let version = row.version;
        move |_| {
            delete.dispatch(DeleteSale {
                token: String::new(),
                id: id.clone(),
                version,
            });
            confirming.set(None);
        }
    };
    let edit_href = format!("/worker/sales/{id}");
    view! {
        <tr data-sale-id=id.clone()>
            <td>{format_time(&row.sale_date)}</td>
            <td>{row.store_location}</td>
            <td>{row.purchase_method.as_str()}</td>
            <td>{if row.coupon_used { "yes" } else { "no" }}</td>
            <td class="break">{row.customer_email}</td>
            <td class="num">{row.items}</td>
            <td class="num">{money(row.total)}</td>
            <td class="row-actions">
                <Show when=is_confirming.clone() fallback=move || view! {
                    <A href=edit_href.clone() attr:class="btn secondary small">"Edit"</A>
                    <button type="button" class="btn danger small" on:click=ask.clone()>"Delete"</button>
                }>
                    <span class="confirm" role="group" aria-label="Confirm delete">
                        "Delete this sale? "
                        <button type="button" class="btn danger small" on:click=confirm.clone()>"Yes, delete"</button>
                        <button type="button" class="btn secondary small" on:click=move |_| confirming.set(None)>"Cancel"</button>
                    </span>
                </Show>
            </td>
        </tr>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_keeps_every_filter_encoded_and_replaces_the_page_and_sort() {
        let q = SalesQuery {
            store: "New York".into(),
            email: "a+b@c.co".into(),
            method: "%41".into(),
            sort: "total_desc".into(),
            page: "3".into(),
            ..Default::default()
        };
        assert_eq!(
            href_for(&q, 2, None),
            // As the server renders it; the browser's encodeURIComponent leaves `.` and
            // `_` as they are, which decodes to the same.
            "/worker?store=New%20York&method=%2541&email=a%2Bb%40c%2Eco&sort=total%5Fdesc&page=2"
        );
        assert_eq!(
            href_for(&q, 1, Some(SaleSort::DateAsc)),
            "/worker?store=New%20York&method=%2541&email=a%2Bb%40c%2Eco&sort=date%5Fasc"
        );
        assert_eq!(href_for(&SalesQuery::default(), 1, None), "/worker");
    }
}
