//! Times and money as the viewer's browser writes them: in their time zone and their
//! locale's number format. The server renders UTC and US dollars as `en-US` writes them
//! (it does not know the viewer's settings); once hydrated, the browser rewrites each with
//! `Intl`, and the exact UTC time stays on hover.

use crate::model::time::{input_minute, minute_utc};
use chrono::{DateTime, Utc};
use leptos::prelude::*;
use rust_decimal::Decimal;

/// The time now: the browser's clock in the page (std has no clock in WASM), the
/// server's when rendering.
pub fn now() -> DateTime<Utc> {
    #[cfg(feature = "hydrate")]
    {
        DateTime::from_timestamp_millis(js_sys::Date::now() as i64).unwrap_or_default()
    }
    #[cfg(not(feature = "hydrate"))]
    {
        Utc::now()
    }
}

/// A moment: the viewer's local date and time once hydrated, UTC on hover.
#[component]
pub fn LocalTime(at: DateTime<Utc>) -> impl IntoView {
    let utc = minute_utc(&at);
    let shown = RwSignal::new(utc.clone());
    Effect::new(move |_| {
        #[cfg(feature = "hydrate")]
        if let Some(local) = browser::time(at.timestamp_millis()) {
            shown.set(local);
        }
    });
    view! {
        <time datetime=format!("{}Z", input_minute(&at)) title=utc>{move || shown.get()}</time>
    }
}

/// An amount of money, in the viewer's number format once hydrated.
#[component]
pub fn Money(amount: Decimal) -> impl IntoView {
    let shown = RwSignal::new(crate::model::report::money(amount));
    Effect::new(move |_| {
        #[cfg(feature = "hydrate")]
        if let Some(local) = browser::money(amount) {
            shown.set(local);
        }
    });
    view! { <span data-amount=amount.to_string()>{move || shown.get()}</span> }
}

/// A count, grouped in the viewer's number format once hydrated.
#[component]
pub fn Count(n: u64) -> impl IntoView {
    let shown = RwSignal::new(crate::model::report::group_digits(&n.to_string()));
    Effect::new(move |_| {
        #[cfg(feature = "hydrate")]
        if let Some(local) = browser::count(n) {
            shown.set(local);
        }
    });
    view! { <span>{move || shown.get()}</span> }
}

#[cfg(feature = "hydrate")]
mod browser {
    use js_sys::{Array, Intl, Object, Reflect};
    use rust_decimal::Decimal;
    use rust_decimal::prelude::ToPrimitive;
    use wasm_bindgen::JsValue;

    fn options(pairs: &[(&str, &str)]) -> Option<Object> {
        let options = Object::new();
        for (key, value) in pairs {
            Reflect::set(&options, &(*key).into(), &(*value).into()).ok()?;
        }
        Some(options)
    }

    /// `value` through a formatter built with the browser's own locale (no locales given).
    fn format(formatter: Intl::NumberFormat, value: f64) -> Option<String> {
        formatter
            .format()
            .call1(&JsValue::NULL, &JsValue::from_f64(value))
            .ok()?
            .as_string()
    }

    pub fn time(millis: i64) -> Option<String> {
        let options = options(&[("dateStyle", "medium"), ("timeStyle", "short")])?;
        let formatter = Intl::DateTimeFormat::new(&Array::new(), &options);
        let date = js_sys::Date::new(&JsValue::from_f64(millis as f64));
        formatter
            .format()
            .call1(&JsValue::NULL, &date)
            .ok()?
            .as_string()
    }

    /// The currency every amount is in.
    const CURRENCY: &str = "USD";

    /// Exact to the cent: amounts are far below 2^53 cents.
    pub fn money(amount: Decimal) -> Option<String> {
        let options = options(&[("style", "currency"), ("currency", CURRENCY)])?;
        format(
            Intl::NumberFormat::new(&Array::new(), &options),
            amount.round_dp(2).to_f64()?,
        )
    }

    pub fn count(n: u64) -> Option<String> {
        format(
            Intl::NumberFormat::new(&Array::new(), &Object::new()),
            n as f64,
        )
    }
}
