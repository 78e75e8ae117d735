//! `/customer`: the signed-in customer's purchases.

use crate::api::sales::my_purchases;
use crate::auth::RequireRole;
use crate::components::{ErrorNote, Pager, ScrollTable, format_time};
use crate::live::{Throttle, Views, use_live};
use crate::locale::{Count, LocalTime, Money};
use crate::model::report::{Purchases, money};
use crate::model::{AppError, Role, Sale};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

#[component]
pub fn CustomerDashboard() -> impl IntoView {
    view! {
        <Title text="My purchases"/>
        <RequireRole roles=Role::CUSTOMERS>
            <MyPurchases/>
        </RequireRole>
    }
}

#[component]
fn MyPurchases() -> impl IntoView {
    let query = use_query_map();
    let page = move || {
        query
            .read()
            .get("page")
            .and_then(|p| p.parse::<u32>().ok())
            .unwrap_or(1)
    };
    let refreshes = RwSignal::new(0u32);
    let views = Views::new();
    let purchases = Resource::new(
        move || (page(), refreshes.get()),
        move |(p, _)| my_purchases(Some(p), views.background(&p)),
    );
    let refresh = Throttle::new(move || refreshes.update(|n| *n += 1));
    view! {
        <section class="hero">
            <h1>"My purchases"</h1>
            <p class="lead">"Everything you bought at Supply Co. stores, newest first."</p>
            <p><a class="btn secondary" href="/api/export/purchases.csv" download>"Download my purchases (CSV)"</a></p>
        </section>
        <Transition fallback=|| view! { <p class="muted">"Loading your purchases…"</p> }>
            {move || Suspend::new(async move {
                match purchases.await {
                    Ok(p) => view! { <PurchaseList purchases=p refresh/> }.into_any(),
                    Err(AppError::EmailUnverified) => view! { <ConfirmFirst/> }.into_any(),
                    Err(e) => view! { <ErrorNote error=e/> }.into_any(),
                }
            })}
        </Transition>
    }
}

/// Purchases are matched by email address, so they show once the address is proven.
#[component]
fn ConfirmFirst() -> impl IntoView {
    let resend = ServerAction::<crate::api::auth::ResendVerification>::new();
    view! {
        <section class="card narrow" data-testid="confirm-email-first" role="status">
            <h2>"Confirm your email address"</h2>
            <p>
                "Your purchases are found by your email address, so we show them once you have "
                "confirmed it: open the link we mailed you."
            </p>
            <crate::components::FormError error=crate::components::action_error(resend.value())/>
            <Show when=move || matches!(resend.value().get(), Some(Ok(())))>
                <p class="success">"A new confirmation link is on its way."</p>
            </Show>
            <ActionForm action=resend>
                <button type="submit" class="btn secondary">"Mail me a new link"</button>
            </ActionForm>
        </section>
    }
}

#[component]
fn PurchaseList(purchases: Purchases, refresh: Throttle) -> impl IntoView {
    let Purchases {
        count,
        spent,
        favourite_store,
        sales,
        page,
        pages,
        feed,
    } = purchases;
    // The stream tells a customer of their own purchases only: any change is theirs.
    use_live().follow(feed, move |_| refresh.request());
    view! {
        <div class="kpis" data-testid="purchase-kpis">
            <div class="kpi"><span class="kpi-label">"Purchases"</span><span class="kpi-value" data-testid="kpi-count"><Count n=count/></span></div>
            <div class="kpi"><span class="kpi-label">"Total spent"</span><span class="kpi-value" data-testid="kpi-spent"><Money amount=spent/></span></div>
            <div class="kpi"><span class="kpi-label">"Favourite store"</span><span class="kpi-value">{favourite_store.unwrap_or_else(|| "—".into())}</span></div>
        </div>
        {if sales.is_empty() {
            view! { <p class="card muted">"No purchases yet. Purchases made with your account's email address appear here."</p> }.into_any()
        } else {
            view! {
                <ol class="purchases" data-testid="purchases">
                    {sales.into_iter().map(|s| view! { <PurchaseCard sale=s/> }).collect_view()}
                </ol>
                <Pager page pages href=|p: u32| format!("/customer?page={p}")/>
            }.into_any()
        }}
    }
}

#[component]
fn PurchaseCard(sale: Sale) -> impl IntoView {
    let d = sale.draft;
    let total = d.total();
    let stars = d.customer.satisfaction.get();
    view! {
        <li class="card purchase" data-sale-id=sale.id.to_string()>
            <div class="purchase-head">
                <div>
                    <strong>{d.store_location.to_string()}</strong>
                    <span class="muted">" · " {d.purchase_method.as_str()} " · " <LocalTime at=d.sale_date/></span>
                    {d.coupon_used.then(|| view! { <span class="pill ok">"coupon"</span> })}
                </div>
                <div class="purchase-total"><Money amount=total/></div>
            </div>
            <ScrollTable label=format!("Items bought on {}", format_time(&d.sale_date))>
                <table>
                    <thead><tr><th>"Item"</th><th class="num">"Price"</th><th class="num">"Qty"</th><th class="num">"Line total"</th></tr></thead>
                    <tbody>
                        {d.items.iter().map(|i| view! {
                            <tr>
                                <td>{i.name.to_string()}</td>
                                <td class="num">{money(i.price.get())}</td>
                                <td class="num">{i.quantity.get()}</td>
                                <td class="num">{money(i.line_total())}</td>
                            </tr>
                        }).collect_view()}
                    </tbody>
                </table>
            </ScrollTable>
            <p class="small muted">
                "Your satisfaction: "
                <span aria-label=format!("{stars} of 5")>{"★".repeat(stars as usize)}{"☆".repeat(5 - stars as usize)}</span>
            </p>
        </li>
    }
}
