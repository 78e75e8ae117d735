//! The profile's "Close your account" section, for customers.

use crate::api::auth::CloseAccount;
use crate::auth::use_auth;
use crate::components::{FieldMessage, FormError, action_error};
use crate::model::SecondFactor;
use leptos::prelude::*;

#[component]
pub fn CloseAccountSection() -> impl IntoView {
    let auth = use_auth();
    let close = ServerAction::<CloseAccount>::new();
    let error = action_error(close.value());
    let pending = close.pending();
    let has_factor = move || {
        auth.signed_in()
            .is_some_and(|u| u.second_factor != SecondFactor::Off)
    };
    // A full page load, not a client-side navigation: nothing of the closed account
    // (its live stream, its cached pages) outlives it, and the guard of this page does
    // not send the now anonymous visitor to the login page on the way.
    Effect::new(move |_| {
        if matches!(close.value().get(), Some(Ok(()))) {
            let _ = window().location().set_href("/?closed=1");
        }
    });
    view! {
        <section class="card danger-zone" aria-labelledby="close-title">
            <h2 id="close-title">"Close your account"</h2>
            <p>
                "Your username, email address and password are deleted and every session ends. "
                "Your purchases stay on the stores' records without your account, so download them first if you want a copy: "
                <a href="/api/export/purchases.csv" download>"my purchases (CSV)"</a>
                ". This cannot be undone."
            </p>
            <ActionForm action=close attr:class="stack" attr:aria-label="Close your account">
                <FormError error/>
                <div class="field">
                    <label for="close-password">"Current password"</label>
                    <input id="close-password" name="current_password" type="password" autocomplete="current-password" required/>
                    <FieldMessage error field="current_password"/>
                </div>
                <Show when=has_factor>
                    <div class="field">
                        <label for="close-code">"A code from your authenticator app, or a recovery code"</label>
                        <input id="close-code" name="code" autocomplete="one-time-code" required/>
                        <FieldMessage error field="code"/>
                    </div>
                </Show>
                <label class="check">
                    <input type="checkbox" name="understood" required/>
                    " I understand that my account is gone for good"
                </label>
                <div class="form-actions">
                    <button type="submit" class="btn danger" aria-busy=move || pending.get().to_string()>"Close my account"</button>
                </div>
            </ActionForm>
        </section>
    }
}
