//! `/worker`: the sales table with filters in the URL, delete with confirmation, and
//! the replication panel.

use crate::api::sales::{DeleteSale, count_sales, list_sales};
use crate::auth::RequireRole;
use crate::components::{ErrorNote, FormError, Pager, ScrollTable, action_error};
use crate::live::{HIGHLIGHT, Heard, Throttle, Views, use_live};
use crate::locale::LocalTime;
use crate::model::live::ChangeKind;
use crate::model::report::{
    MatchCount, PAGE_SIZES, SaleRow, SaleSort, SalesPage, SalesQuery, SortColumn, money,
};
use crate::model::{PurchaseMethod, Role};
use crate::pages::replication::ReplicationPanel;
use crate::pages::sales_table::{PageJump, SortHeader};
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
    q: Option<String>,
    sort: Option<String>,
    size: Option<String>,
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
            q: f.q.unwrap_or_default(),
            sort: f.sort.unwrap_or_default(),
            size: f.size.unwrap_or_default(),
            page: f.page.unwrap_or_default(),
        }
    }
}

/// `/worker?…` for these filters, with `page` (and optionally `sort`) replaced.
fn href_for(q: &SalesQuery, page: u32, sort: Option<SaleSort>) -> String {
    with_query("/worker", q, page, sort)
}

/// `path?…` with these filters, `page` (and optionally `sort`) replaced.
fn with_query(path: &str, q: &SalesQuery, page: u32, sort: Option<SaleSort>) -> String {
    let sort = match sort {
        Some(s) => s.as_string(),
        None => q.sort.clone(),
    };
    let page = if page > 1 {
        page.to_string()
    } else {
        String::new()
    };
    let pairs: [(&'static str, &str); 9] = [
        ("store", q.store.as_str()),
        ("method", &q.method),
        ("from", &q.from),
        ("to", &q.to),
        ("coupon", &q.coupon),
        ("q", &q.q),
        ("sort", &sort),
        ("size", &q.size),
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
        path.into()
    } else {
        format!("{path}?{}", query.join("&"))
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
    let reloads = RwSignal::new(0u32);
    let views = Views::new();
    let sales = Resource::new(
        move || (query.get(), delete.version().get(), reloads.get()),
        move |(q, _, _)| {
            let background = views.background(&q);
            list_sales(q, background)
        },
    );
    let reload = Callback::new(move |()| reloads.update(|n| *n += 1));
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
                            <Table page query=query.get_untracked() delete reload/>
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
            <div class="field search">
                <label for="flt-q">"Search"</label>
                <input id="flt-q" type="search" name="q" placeholder="Sale id, customer address or item"
                    aria-describedby="flt-q-hint" value=move || q().q prop:value=move || q().q/>
                <p id="flt-q-hint" class="hint small">"Finds a sale by its id or the start of it, or by the start of any word of the customer's address or of an item's name."</p>
            </div>
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
                <label for="flt-size">"Rows"</label>
                <select id="flt-size" name="size">
                    {PAGE_SIZES.into_iter().map(|n| view! {
                        <option value=n.to_string() selected=move || q().size == n.to_string()>{n}</option>
                    }).collect_view()}
                </select>
            </div>
            // The order is chosen in the table's headers; the form keeps it.
            <input type="hidden" name="sort" value=move || q().sort prop:value=move || q().sort/>
            <div class="field actions">
                <button type="submit" class="btn">"Apply"</button>
                <A href="/worker" attr:class="btn secondary">"Clear"</A>
            </div>
        </Form>
    }
}

/// A row as it stands now: its sale, and what happened to it elsewhere since the page
/// was loaded.
#[derive(Debug, Clone, PartialEq)]
struct Shown {
    row: SaleRow,
    mark: Mark,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    Unchanged,
    /// Changed elsewhere by the change at this feed position (highlighted briefly).
    Changed(u64),
    Deleted,
}

impl Mark {
    fn as_str(self) -> &'static str {
        match self {
            Mark::Unchanged => "",
            Mark::Changed(_) => "changed",
            Mark::Deleted => "deleted",
        }
    }
}

/// The page's rows, updated in place as sales change anywhere: a row edited elsewhere
/// takes its new content and is highlighted, a deleted one is marked, the match count
/// follows, and sales created elsewhere that the filters match are offered. The rows'
/// elements stay, so focus, filters, sort and page are kept.
#[component]
fn Table(
    page: SalesPage,
    query: SalesQuery,
    delete: ServerAction<DeleteSale>,
    reload: Callback<()>,
) -> impl IntoView {
    let confirming = RwSignal::new(None::<String>);
    let matching = RwSignal::new(MatchCount {
        n: page.matching,
        exact: page.matching_exact,
    });
    let created_elsewhere = RwSignal::new(0u32);
    let announcement = RwSignal::new(String::new());
    let rows: Vec<RwSignal<Shown>> = page
        .rows
        .into_iter()
        .map(|row| {
            RwSignal::new(Shown {
                row,
                mark: Mark::Unchanged,
            })
        })
        .collect();
    let shown = StoredValue::new(rows.clone());
    let filter = query.parse().ok();
    let recount = {
        let query = query.clone();
        Throttle::new(move || {
            let query = query.clone();
            leptos::task::spawn_local(async move {
                if let Ok(n) = count_sales(query).await {
                    matching.try_set(n);
                }
            });
        })
    };
    use_live().follow(page.feed, move |heard| {
        let change = match heard {
            Heard::Missed => return reload.run(()),
            Heard::Change(change) => change,
        };
        let on_page = change.sale_id.as_ref().and_then(|id| {
            shown.with_value(|rows| {
                rows.iter()
                    .copied()
                    .find(|r| r.with_untracked(|s| &s.row.id == id))
            })
        });
        match (on_page, change.kind, &change.row) {
            (Some(state), ChangeKind::Deleted, _) => {
                state.update(|s| s.mark = Mark::Deleted);
                announcement.set(format!(
                    "Sale {} was deleted elsewhere.",
                    state.with_untracked(|s| s.row.id.clone())
                ));
            }
            // Only newer: a change replayed after a reconnect may be older than the row.
            (Some(state), _, Some(row))
                if row.version > state.with_untracked(|s| s.row.version) =>
            {
                let seq = change.seq;
                state.set(Shown {
                    row: row.clone(),
                    mark: Mark::Changed(seq),
                });
                announcement.set(format!(
                    "Sale {} was changed elsewhere (version {}).",
                    row.id, row.version
                ));
                set_timeout(
                    // `try_`: the table may have been rebuilt meanwhile.
                    move || {
                        state.try_update(|s| {
                            if s.mark == Mark::Changed(seq) {
                                s.mark = Mark::Unchanged
                            }
                        });
                    },
                    HIGHLIGHT,
                );
            }
            (None, ChangeKind::Created, Some(row))
                if filter.as_ref().is_some_and(|f| f.matches(row)) =>
            {
                created_elsewhere.update(|n| *n += 1);
            }
            (None, ChangeKind::Bulk, _) => created_elsewhere.update(|n| *n += change.sales),
            _ => {}
        }
        recount.request();
    });
    let sort = SaleSort::parse(&query.sort).unwrap_or_default();
    let header = {
        let query = query.clone();
        move |column: SortColumn, label: &'static str, numeric: bool| {
            let href = href_for(&query, 1, Some(sort.toggled(column)));
            view! { <SortHeader label column sort href numeric/> }
        }
    };
    let q2 = query.clone();
    let pager_href = Callback::new(move |p: u32| href_for(&q2, p, None));
    let export_href = with_query("/api/export/sales.csv", &query, 1, None);
    view! {
        <div class="table-head">
            <p class="muted small" data-testid="matching">{move || matching.get().describe()} " matching sales"</p>
            <a class="btn secondary small" href=export_href download="sales.csv" data-testid="export-sales">"Download CSV"</a>
        </div>
        <p class="visually-hidden" role="status" aria-live="polite">{announcement}</p>
        {move || (created_elsewhere.get() > 0).then(|| view! {
            <p class="notice" role="status" data-testid="new-sales">
                {created_elsewhere.get()} " sales were added or changed elsewhere since this page was loaded. "
                <button type="button" class="btn small" on:click=move |_| reload.run(())>"Show the current list"</button>
            </p>
        })}
        {if rows.is_empty() {
            view! { <p class="muted">"No sales match these filters."</p> }.into_any()
        } else {
            view! {
                <ScrollTable label="Sales">
                    <table data-testid="sales-table">
                        <thead>
                            <tr>
                                {header(SortColumn::Date, "Date", false)}
                                {header(SortColumn::Store, "Store", false)}
                                {header(SortColumn::Method, "Method", false)}
                                {header(SortColumn::Coupon, "Coupon", false)}
                                {header(SortColumn::Customer, "Customer", false)}
                                {header(SortColumn::Items, "Items", true)}
                                {header(SortColumn::Total, "Total", true)}
                                <th><span class="visually-hidden">"Actions"</span></th>
                            </tr>
                        </thead>
                        <tbody>
                            {rows.into_iter().map(|state| view! { <Row state confirming delete/> }).collect_view()}
                        </tbody>
                    </table>
                </ScrollTable>
            }.into_any()
        }}
        <Pager page=page.page pages=page.pages href=pager_href/>
        {(page.pages > 1).then(|| view! { <PageJump query=query.clone() pages=page.pages/> })}
    }
}

#[component]
fn Row(
    state: RwSignal<Shown>,
    confirming: RwSignal<Option<String>>,
    delete: ServerAction<DeleteSale>,
) -> impl IntoView {
    let id = state.with_untracked(|s| s.row.id.to_string());
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
        move |_| {
            // The version shown now: the row may have been updated in place.
            delete.dispatch(DeleteSale {
                token: String::new(),
                id: id.clone(),
                version: state.with_untracked(|s| s.row.version),
            });
            confirming.set(None);
        }
    };
    let edit_href = format!("/worker/sales/{id}");
    let cell = move |f: fn(&SaleRow) -> String| move || state.with(|s| f(&s.row));
    let mark = move || state.with(|s| s.mark);
    // Rebuilt only when what they offer changes, so a highlight coming and going does
    // not take the focus off a button.
    let actions = Memo::new(move |_| (mark() == Mark::Deleted, is_confirming()));
    view! {
        <tr data-sale-id=id.clone() data-version=cell(|r| r.version.to_string()) data-mark=move || mark().as_str()
            class:row-changed=move || matches!(mark(), Mark::Changed(_))
            class:row-deleted=move || mark() == Mark::Deleted>
            <td>{move || {
                let at = state.with(|s| s.row.sale_date);
                view! { <LocalTime at/> }
            }}</td>
            <td>{cell(|r| r.store_location.clone())}</td>
            <td>{cell(|r| r.purchase_method.as_str().into())}</td>
            <td>{cell(|r| if r.coupon_used { "yes" } else { "no" }.into())}</td>
            <td class="break">{cell(|r| r.customer_email.clone())}</td>
            <td class="num">{cell(|r| r.items.to_string())}</td>
            <td class="num">{cell(|r| money(r.total))}</td>
            <td class="row-actions">
                {move || match actions.get() {
                    (true, _) => view! { <span class="muted small">"Deleted elsewhere"</span> }.into_any(),
                    (false, true) => view! {
                        <span class="confirm" role="group" aria-label="Confirm delete">
                            "Delete this sale? "
                            <button type="button" class="btn danger small" on:click=confirm.clone()>"Yes, delete"</button>
                            <button type="button" class="btn secondary small" on:click=move |_| confirming.set(None)>"Cancel"</button>
                        </span>
                    }.into_any(),
                    (false, false) => view! {
                        <A href=edit_href.clone() attr:class="btn secondary small">"Edit"</A>
                        <button type="button" class="btn danger small" on:click=ask.clone()>"Delete"</button>
                    }.into_any(),
                }}
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
            q: "a+b@c.co".into(),
            method: "%41".into(),
            sort: "total_desc".into(),
            page: "3".into(),
            ..Default::default()
        };
        assert_eq!(
            href_for(&q, 2, None),
            // As the server renders it; the browser's encodeURIComponent leaves `.` and
            // `_` as they are, which decodes to the same.
            "/worker?store=New%20York&method=%2541&q=a%2Bb%40c%2Eco&sort=total%5Fdesc&page=2"
        );
        assert_eq!(
            href_for(&q, 1, Some(SaleSort::default().toggled(SortColumn::Store))),
            "/worker?store=New%20York&method=%2541&q=a%2Bb%40c%2Eco&sort=store%5Fasc"
        );
        assert_eq!(href_for(&SalesQuery::default(), 1, None), "/worker");
    }
}
