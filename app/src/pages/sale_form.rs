//! `/worker/sales/new` and `/worker/sales/:id`: create and edit a sale. Every save
//! goes through the dual writer; the shared model validates as you type.

use crate::api::sales::{CreateSale, UpdateSale, load_sale, sale_token};
use crate::auth::RequireRole;
use crate::components::{ErrorNote, Field, FormError, ScrollTable, action_error};
use crate::live::{Heard, use_live};
use crate::model::live::ChangeKind;
use crate::model::report::money;
use crate::model::{
    AppError, FieldError, Gender, ItemInput, PurchaseMethod, Role, Sale, SaleInput,
};
use crate::pages::SaleHistoryPanel;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::{use_navigate, use_params_map};
use rust_decimal::Decimal;

#[component]
pub fn NewSalePage() -> impl IntoView {
    view! {
        <Title text="New sale"/>
        <RequireRole roles=Role::STAFF>
            <NewSale/>
        </RequireRole>
    }
}

/// Inside the role guard, so the token is only fetched for staff.
#[component]
fn NewSale() -> impl IntoView {
    let token = Resource::new(|| (), |_| sale_token());
    view! {
            <Transition fallback=|| view! { <p class="muted">"Preparing the form…"</p> }>
                {move || Suspend::new(async move {
                    match token.await {
                        Ok(token) => view! { <SaleForm sale=None feed=0 token reload=Callback::new(|_| {}) saved=RwSignal::new(None) typed=RwSignal::new(None)/> }.into_any(),
                        Err(e) => view! { <ErrorNote error=e/> }.into_any(),
                    }
                })}
            </Transition>
    }
}

#[component]
pub fn EditSalePage() -> impl IntoView {
    view! {
        <Title text="Edit sale"/>
        <RequireRole roles=Role::STAFF>
            <EditSale/>
        </RequireRole>
    }
}

#[component]
fn EditSale() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("id").unwrap_or_default();
    let reloads = RwSignal::new(0u32);
    let sale = Resource::new(move || (id(), reloads.get()), |(id, _)| load_sale(id));
    let reload = Callback::new(move |_| reloads.update(|n| *n += 1));
    // The version last saved here; it outlives the form, which re-renders on reload.
    let saved = RwSignal::new(None::<u64>);
    // What the user had typed when they loaded a version saved elsewhere: shown beside
    // the reloaded form for comparison.
    let typed = RwSignal::new(None::<SaleInput>);
    view! {
            <Transition fallback=|| view! { <p class="muted">"Loading the sale…"</p> }>
                {move || Suspend::new(async move {
                    match sale.await {
                    Ok(s) => view! { <SaleForm sale=Some(s.sale) feed=s.feed token=s.token reload saved typed/> }.into_any(),
                    Err(AppError::NotFound) => view! {
                        <section class="card narrow">
                            <h1>"Sale not found"</h1>
                            <p>"It may have been deleted. " <A href="/worker">"Back to the sales"</A>
                                " · " <A href=format!("/sales/{}/history", id())>"Its history"</A></p>
                        </section>
                    }.into_any(),
                    Err(e) => view! { <ErrorNote error=e/> }.into_any(),
                    }
                })}
            </Transition>
            // Beside the form, not inside its async block: a resource created there would
            // be created in a different order on the server and in the browser.
            <SaleHistoryPanel id=Signal::derive(id) refresh=Signal::derive(move || saved.get().unwrap_or(0))/>
    }
}

#[derive(Clone, Copy)]
struct ItemFields {
    key: usize,
    name: RwSignal<String>,
    tags: RwSignal<String>,
    price: RwSignal<String>,
    quantity: RwSignal<String>,
}

impl ItemFields {
    fn new(key: usize, input: ItemInput) -> Self {
        Self {
            key,
            name: RwSignal::new(input.name),
            tags: RwSignal::new(input.tags.join(", ")),
            price: RwSignal::new(input.price),
            quantity: RwSignal::new(input.quantity),
        }
    }

    fn input(&self) -> ItemInput {
        ItemInput {
            name: self.name.get(),
            tags: self
                .tags
                .get()
                .split(',')
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
                .collect(),
            price: self.price.get(),
            quantity: self.quantity.get(),
        }
    }

    /// The line total as typed so far, if both numbers parse.
    fn line_total(&self) -> Option<Decimal> {
        let price: Decimal = self.price.get().trim().parse().ok()?;
        let qty: Decimal = self.quantity.get().trim().parse().ok()?;
        Some(price * qty)
    }
}

/// The sale editor's state as typed: a signal per input, and the item rows.
#[derive(Clone, Copy)]
struct SaleFields {
    sale_date: RwSignal<String>,
    store: RwSignal<String>,
    method: RwSignal<String>,
    coupon: RwSignal<bool>,
    gender: RwSignal<String>,
    age: RwSignal<String>,
    email: RwSignal<String>,
    satisfaction: RwSignal<String>,
    items: RwSignal<Vec<ItemFields>>,
    /// The key the next added item row gets (rows keep theirs when others go).
    next_key: StoredValue<usize>,
}

impl SaleFields {
    /// The sale as it is, or a new sale's defaults (one item, sold in store, 5 stars).
    fn new(sale: Option<&Sale>) -> Self {
        let input = sale
            .map(|s| SaleInput::from(&s.draft))
            .unwrap_or(SaleInput {
                items: vec![ItemInput {
                    quantity: "1".into(),
                    ..Default::default()
                }],
                customer_satisfaction: "5".into(),
                purchase_method: PurchaseMethod::InStore.as_str().into(),
                ..Default::default()
            });
        Self {
            sale_date: RwSignal::new(sale.map(local_value).unwrap_or_default()),
            store: RwSignal::new(input.store_location),
            method: RwSignal::new(input.purchase_method),
            coupon: RwSignal::new(input.coupon_used),
            gender: RwSignal::new(input.customer_gender),
            age: RwSignal::new(input.customer_age),
            email: RwSignal::new(input.customer_email),
            satisfaction: RwSignal::new(input.customer_satisfaction),
            next_key: StoredValue::new(input.items.len()),
            items: RwSignal::new(
                input
                    .items
                    .into_iter()
                    .enumerate()
                    .map(|(i, item)| ItemFields::new(i, item))
                    .collect(),
            ),
        }
    }

    /// What would be sent now, for the shared model to check and the server to save.
    fn input(&self) -> SaleInput {
        SaleInput {
            sale_date: self.sale_date.get(),
            items: self.items.get().iter().map(ItemFields::input).collect(),
            store_location: self.store.get(),
            customer_gender: self.gender.get(),
            customer_age: self.age.get(),
            customer_email: self.email.get(),
            customer_satisfaction: self.satisfaction.get(),
            coupon_used: self.coupon.get(),
            purchase_method: self.method.get(),
        }
    }

    /// The sum of the line totals that parse so far.
    fn total(&self) -> Decimal {
        self.items
            .get()
            .iter()
            .filter_map(ItemFields::line_total)
            .sum()
    }
}

/// A datetime-local value (minutes, UTC) for a sale date.
fn local_value(s: &Sale) -> String {
    crate::model::time::input_minute(&s.draft.sale_date)
}

#[component]
fn SaleForm(
    sale: Option<Sale>,
    /// The change feed's position when the sale was read: changes after it are news.
    feed: u64,
    token: String,
    reload: Callback<()>,
    saved: RwSignal<Option<u64>>,
    typed: RwSignal<Option<SaleInput>>,
) -> impl IntoView {
    let editing = sale.clone();
    let fields = SaleFields::new(sale.as_ref());
    let SaleFields {
        sale_date,
        store,
        method,
        coupon,
        gender,
        age,
        email,
        satisfaction,
        items,
        next_key,
    } = fields;
    let current = move || fields.input();
    let checked = Memo::new(move |_| current().parse().err().unwrap_or_default());
    let attempted = RwSignal::new(false);
    let create = ServerAction::<CreateSale>::new();
    let update = ServerAction::<UpdateSale>::new();
    let server_error = Signal::derive(move || {
        action_error(create.value())
            .get()
            .or_else(|| action_error(update.value()).get())
    });
    // Inline messages: the shared model's, once a save was attempted; else the server's.
    let message = move |field: String| {
        Signal::derive(move || {
            let mine = attempted
                .get()
                .then(|| {
                    checked
                        .read()
                        .iter()
                        .find(|e: &&FieldError| e.field == field)
                        .map(|e| e.message.clone())
                })
                .flatten();
            mine.or_else(|| server_error.get().and_then(|e| e.field_message(&field)))
        })
    };
    let total = move || fields.total();
    let navigate = use_navigate();
    Effect::new(move |_| {
        if let Some(Ok(sale)) = create.value().get() {
            navigate(&format!("/worker/sales/{}", sale.id), Default::default());
        }
    });
    Effect::new(move |_| {
        if let Some(Ok(sale)) = update.value().get() {
            typed.set(None);
            saved.set(Some(sale.version));
            reload.run(());
        }
    });
    let pending = move || create.pending().get() || update.pending().get();
    let token = StoredValue::new(token);
    let on_submit = {
        let editing = editing.clone();
        move |ev: leptos::ev::SubmitEvent| {
            ev.prevent_default();
            attempted.set(true);
            if !checked.read().is_empty() || pending() {
                return;
            }
            let input = current();
            match &editing {
                None => {
                    create.dispatch(CreateSale {
                        token: token.get_value(),
                        input,
                    });
                }
                Some(s) => {
                    update.dispatch(UpdateSale {
                        token: token.get_value(),
                        id: s.id.to_string(),
                        version: s.version,
                        input,
                    });
                }
            }
        }
    };
    let title = match &editing {
        Some(s) => format!("Sale {} (version {})", s.id, s.version),
        None => "New sale".to_string(),
    };
    let conflict = move || matches!(server_error.get(), Some(AppError::Conflict(_)));
    // Loads the newest version, keeping what was typed to show beside it.
    let load_newest = move |_| {
        typed.set(Some(current()));
        reload.run(());
    };
    let elsewhere = RwSignal::new(None::<Elsewhere>);
    if let Some(s) = &editing {
        let (id, shown) = (s.id.clone(), s.version);
        use_live().follow(feed, move |heard| {
            let change = match heard {
                Heard::Missed => return elsewhere.set(Some(Elsewhere::Unsure)),
                Heard::Change(change) => change,
            };
            if change.sale_id.as_ref() != Some(&id) {
                return;
            }
            match (change.kind, change.version()) {
                (ChangeKind::Deleted, _) => elsewhere.set(Some(Elsewhere::Deleted)),
                (_, Some(version)) if version > shown => {
                    // This form's own save comes back too: the version it asked for.
                    let ours = saved.get_untracked() == Some(version)
                        || (update.pending().get_untracked() && version == shown + 1);
                    if !ours {
                        elsewhere.set(Some(Elsewhere::Changed(version)));
                    }
                }
                _ => {}
            }
        });
    }
    let comparison = editing.as_ref().and_then(|s| {
        let mine = typed.get_untracked()?;
        let differences = differences(&mine, &untrack(|| fields.input()));
        Some((s.version, differences))
    });
    // The form is rebuilt with the reloaded sale after a save, so the notice keys on
    // the version saved here rather than on this form's own action.
    let shown_version = editing.as_ref().map(|s| s.version);
    let just_saved = move || shown_version.is_some() && saved.get() == shown_version;
    view! {
        <section class="card" aria-labelledby="sale-form-title">
            <div class="card-head">
                <h1 id="sale-form-title">{title}</h1>
                <A href="/worker" attr:class="btn secondary">"Back to sales"</A>
            </div>
            {move || just_saved().then(|| view! { <p class="success" role="status" data-testid="saved">"Saved in both stores."</p> })}
            {move || elsewhere.get().map(|e| match e {
                Elsewhere::Changed(version) => view! {
                    <div class="notice" role="alert" data-testid="changed-elsewhere">
                        <p>"Someone else saved version " {version} " of this sale while you were editing it. "
                            "Saving now would be refused."</p>
                        <button type="button" class="btn" on:click=load_newest>"Load version " {version}</button>
                        <span class="muted small">" What you typed stays on screen beside it."</span>
                    </div>
                }.into_any(),
                Elsewhere::Unsure => view! {
                    <div class="notice" role="alert" data-testid="changed-elsewhere">
                        <p>"This page lost touch with the changes for a while: the sale may have been changed elsewhere."</p>
                        <button type="button" class="btn" on:click=load_newest>"Load the latest version"</button>
                    </div>
                }.into_any(),
                Elsewhere::Deleted => view! {
                    <div class="error" role="alert" data-testid="deleted-elsewhere">
                        <p>"Someone else deleted this sale while you were editing it; it can no longer be saved."</p>
                        <A href="/worker" attr:class="btn secondary">"Back to sales"</A>
                    </div>
                }.into_any(),
            })}
            {move || typed.with(Option::is_some).then(|| comparison.clone().map(|(version, differences)| view! { <YourDraft version differences typed/> })).flatten()}
            <Show when=conflict fallback=move || view! { <FormError error=server_error/> }>
                <div class="error" role="alert" data-testid="conflict">
                    <p>{move || server_error.get().map(|e| e.to_string())}</p>
                    <button type="button" class="btn" on:click=load_newest>"Reload the latest version"</button>
                </div>
            </Show>
            {move || (attempted.get() && !checked.read().is_empty()).then(|| view! {
                <p class="error" role="alert">"Please correct the highlighted fields."</p>
            })}
            <form on:submit=on_submit novalidate data-testid="sale-form">
                <fieldset>
                    <legend>"Sale"</legend>
                    <div class="grid-fields">
                        <Field label="Date and time (UTC)" id="sale_date" kind="datetime-local" value=sale_date error=message("sale_date".into())/>
                        <Field label="Store" id="store_location" kind="text" value=store error=message("store_location".into())/>
                        <div class="field">
                            <label for="purchase_method">"Purchase method"</label>
                            <select id="purchase_method" on:change=move |ev| method.set(event_target_value(&ev))>
                                {PurchaseMethod::ALL.into_iter().map(|m| view! {
                                    <option value=m.as_str() selected=move || method.get() == m.as_str()>{m.as_str()}</option>
                                }).collect_view()}
                            </select>
                        </div>
                        <div class="field checkbox">
                            <input id="coupon_used" type="checkbox" checked=coupon.get_untracked() prop:checked=move || coupon.get()
                                on:change=move |ev| coupon.set(event_target_checked(&ev))/>
                            <label for="coupon_used">"Coupon used"</label>
                        </div>
                    </div>
                </fieldset>
                <fieldset>
                    <legend>"Customer"</legend>
                    <div class="grid-fields">
                        <Field label="Email" id="customer_email" kind="email" value=email error=message("customer_email".into())/>
                        <Field label="Age" id="customer_age" kind="number" value=age error=message("customer_age".into())/>
                        <div class="field">
                            <label for="customer_gender">"Gender"</label>
                            <select id="customer_gender" on:change=move |ev| gender.set(event_target_value(&ev))>
                                <option value="" selected=move || gender.get().is_empty()>"Choose…"</option>
                                {Gender::ALL.into_iter().map(|g| view! {
                                    <option value=g.as_str() selected=move || gender.get() == g.as_str()>{g.as_str()}</option>
                                }).collect_view()}
                            </select>
                            {move || message("customer_gender".into()).get().map(|m| view! { <span class="field-error">{m}</span> })}
                        </div>
                        <Field label="Satisfaction (1–5)" id="customer_satisfaction" kind="number" value=satisfaction error=message("customer_satisfaction".into())/>
                    </div>
                </fieldset>
                <fieldset>
                    <legend>"Items"</legend>
                    {move || message("items".into()).get().map(|m| view! { <p class="field-error">{m}</p> })}
                    <div class="items" data-testid="items">
                        <For each=move || items.get().into_iter().enumerate() key=|(_, f)| f.key let:entry>
                            <ItemEditor index=entry.0 fields=entry.1 items message/>
                        </For>
                    </div>
                    <button type="button" class="btn secondary" on:click=move |_| {
                        let key = next_key.get_value();
                        next_key.set_value(key + 1);
                        items.update(|v| v.push(ItemFields::new(key, ItemInput { quantity: "1".into(), ..Default::default() })));
                    }>"Add item"</button>
                </fieldset>
                <div class="form-foot">
                    <p class="total" aria-live="polite">"Total: " <strong data-testid="live-total">{move || money(total())}</strong></p>
                    <button type="submit" class="btn" disabled=pending>
                        {move || if pending() { "Saving…" } else if editing.is_some() { "Save changes" } else { "Create sale" }}
                    </button>
                </div>
            </form>
        </section>
    }
}

/// A change to the open sale saved by someone else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Elsewhere {
    Changed(u64),
    Deleted,
    /// The page missed changes it could not be sent: this one may be among them.
    Unsure,
}

/// One line of the item list as text, for comparing two versions.
fn items_text(items: &[ItemInput]) -> String {
    items
        .iter()
        .map(|i| {
            format!(
                "{} × {} at {}",
                i.name.trim(),
                i.quantity.trim(),
                i.price.trim()
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// A field whose typed value differs from the version now in the form.
#[derive(Debug, Clone, PartialEq)]
struct Difference {
    label: &'static str,
    typed: String,
    saved: String,
}

/// The fields where what the user typed differs from the version now in the form.
fn differences(mine: &SaleInput, saved: &SaleInput) -> Vec<Difference> {
    let yes_no = |b: bool| if b { "yes" } else { "no" }.to_string();
    [
        (
            "Date and time (UTC)",
            mine.sale_date.clone(),
            saved.sale_date.clone(),
        ),
        (
            "Store",
            mine.store_location.clone(),
            saved.store_location.clone(),
        ),
        (
            "Purchase method",
            mine.purchase_method.clone(),
            saved.purchase_method.clone(),
        ),
        (
            "Coupon used",
            yes_no(mine.coupon_used),
            yes_no(saved.coupon_used),
        ),
        (
            "Email",
            mine.customer_email.clone(),
            saved.customer_email.clone(),
        ),
        ("Age", mine.customer_age.clone(), saved.customer_age.clone()),
        (
            "Gender",
            mine.customer_gender.clone(),
            saved.customer_gender.clone(),
        ),
        (
            "Satisfaction",
            mine.customer_satisfaction.clone(),
            saved.customer_satisfaction.clone(),
        ),
        ("Items", items_text(&mine.items), items_text(&saved.items)),
    ]
    .into_iter()
    .filter(|(_, typed, saved)| typed.trim() != saved.trim())
    .map(|(label, typed, saved)| Difference {
        label,
        typed,
        saved,
    })
    .collect()
}

/// What the user had typed before loading the version saved elsewhere.
#[component]
fn YourDraft(
    version: u64,
    differences: Vec<Difference>,
    typed: RwSignal<Option<SaleInput>>,
) -> impl IntoView {
    view! {
        <section class="notice" aria-labelledby="draft-title" data-testid="your-draft">
            <h2 id="draft-title">"What you had typed"</h2>
            {if differences.is_empty() {
                view! { <p>"Version " {version} " holds everything you had typed."</p> }.into_any()
            } else {
                view! {
                    <p>"The form now shows version " {version} ". Where your unsaved values differ:"</p>
                    <ScrollTable label="Your values and the saved ones">
                        <table>
                            <thead><tr><th>"Field"</th><th>"You typed"</th><th>"Version " {version}</th></tr></thead>
                            <tbody>
                                {differences.into_iter().map(|d| view! {
                                    <tr><th scope="row">{d.label}</th><td class="break">{d.typed}</td><td class="break">{d.saved}</td></tr>
                                }).collect_view()}
                            </tbody>
                        </table>
                    </ScrollTable>
                }.into_any()
            }}
            <button type="button" class="btn secondary small" on:click=move |_| typed.set(None)>"Dismiss"</button>
        </section>
    }
}

#[component]
fn ItemEditor(
    index: usize,
    fields: ItemFields,
    items: RwSignal<Vec<ItemFields>>,
    message: impl Fn(String) -> Signal<Option<String>> + Copy + Send + Sync + 'static,
) -> impl IntoView {
    // The index of this row now (rows before it may have been removed).
    let position = move || {
        items
            .read()
            .iter()
            .position(|f| f.key == fields.key)
            .unwrap_or(index)
    };
    let err = move |part: &'static str| {
        Signal::derive(move || message(format!("items.{}.{part}", position())).get())
    };
    let line = move || fields.line_total().map(money).unwrap_or_else(|| "—".into());
    let prefix = format!("item-{}", fields.key);
    view! {
        <div class="item-row" data-testid="item-row">
            <Field label="Item" id=format!("{prefix}-name") value=fields.name error=err("name")/>
            <Field label="Tags (comma-separated)" id=format!("{prefix}-tags") value=fields.tags error=err("tags")/>
            <Field label="Price" id=format!("{prefix}-price") value=fields.price error=err("price")/>
            <Field label="Quantity" id=format!("{prefix}-quantity") value=fields.quantity error=err("quantity")/>
            <div class="line-total"><span class="kpi-label">"Line total"</span>{line}</div>
            <button type="button" class="btn secondary small" aria-label=move || format!("Remove item {}", position() + 1)
                on:click=move |_| items.update(|v| v.retain(|f| f.key != fields.key))>"Remove"</button>
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_fields_that_differ_are_compared() {
        let saved = SaleInput {
            sale_date: "2015-03-23T10:00".into(),
            store_location: "Denver".into(),
            items: vec![ItemInput {
                name: "pens".into(),
                tags: vec![],
                price: "1.50".into(),
                quantity: "2".into(),
            }],
            ..Default::default()
        };
        let mut mine = saved.clone();
        assert!(differences(&mine, &saved).is_empty());
        mine.store_location = "Austin ".into();
        mine.items[0].quantity = "3".into();
        mine.coupon_used = true;
        let found = differences(&mine, &saved);
        let labels: Vec<&str> = found.iter().map(|d| d.label).collect();
        assert_eq!(labels, ["Store", "Coupon used", "Items"]);
        assert_eq!(found[2].typed, "pens × 3 at 1.50");
        assert_eq!(found[2].saved, "pens × 2 at 1.50");
    }
}
