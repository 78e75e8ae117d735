//! Parts of the worker's sales table that are about finding a row rather than showing
//! one: a header that sorts by its column, and the jump to a page.

use crate::model::report::{SaleSort, SalesQuery, SortColumn};
use leptos::prelude::*;
use leptos_router::components::Form;

/// A column header that sorts the table by its column: the link asks for the other
/// direction when the table is sorted by it already. The current order shows as an
/// arrow and, for assistive technology, as `aria-sort` on the header.
#[component]
pub fn SortHeader(
    label: &'static str,
    column: SortColumn,
    sort: SaleSort,
    href: String,
    numeric: bool,
) -> impl IntoView {
    let active = sort.column == column;
    let aria_sort = match (active, sort.descending) {
        (false, _) => "none",
        (true, true) => "descending",
        (true, false) => "ascending",
    };
    let glyph = match (active, sort.descending) {
        (false, _) => "↕",
        (true, true) => "▼",
        (true, false) => "▲",
    };
    view! {
        <th aria-sort=aria_sort class:num=numeric class:sorted=active>
            // A plain link: the router's `A` would mark it `aria-current` on every page
            // of this path.
            <a href=href class="sort-link">
                {label}
                <span class="sort-glyph" aria-hidden="true">{glyph}</span>
            </a>
        </th>
    }
}

/// "Go to page N": a small form that keeps every filter and the order (hidden fields,
/// so it works before hydration too) and replaces the page.
#[component]
pub fn PageJump(query: SalesQuery, pages: u32) -> impl IntoView {
    let kept = [
        ("store", query.store),
        ("method", query.method),
        ("from", query.from),
        ("to", query.to),
        ("coupon", query.coupon),
        ("q", query.q),
        ("sort", query.sort),
        ("size", query.size),
    ];
    view! {
        <Form method="GET" action="/worker" attr:class="page-jump" attr:data-testid="page-jump">
            {kept
                .into_iter()
                .filter(|(_, value)| !value.is_empty())
                .map(|(name, value)| view! { <input type="hidden" name=name value=value/> })
                .collect_view()}
            <label for="jump-page">"Go to page"</label>
            <input id="jump-page" name="page" type="number" inputmode="numeric" min="1" max=pages required/>
            <button type="submit" class="btn secondary small">"Go"</button>
        </Form>
    }
}
