use crate::api::auth::ResetPassword;
use crate::components::{FieldMessage, FormError, action_error};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

#[component]
pub fn ResetPasswordPage() -> impl IntoView {
    let reset = ServerAction::<ResetPassword>::new();
    let error = action_error(reset.value());
    crate::auth::on_success(reset.version(), reset.value(), |_| {
        (None, "/login?reset=done".to_string())
    });
    let token = move || use_query_map().with(|q| q.get("token")).unwrap_or_default();
    view! {
        <Title text="Choose a new password"/>
        <section class="card narrow">
            <h1>"Choose a new password"</h1>
            <FormError error/>
            <ActionForm action=reset attr:class="stack">
                <input type="hidden" name="token" prop:value=token/>
                <div class="field">
                    <label for="rp-new">"New password"</label>
                    <input id="rp-new" name="new_password" type="password" autocomplete="new-password" required/>
                    <FieldMessage error field="new_password"/>
                </div>
                <div class="field">
                    <label for="rp-confirm">"Confirm new password"</label>
                    <input id="rp-confirm" name="confirm_password" type="password" autocomplete="new-password" required/>
                    <FieldMessage error field="confirm_password"/>
                </div>
                <div class="form-actions"><button type="submit" class="btn">"Set password"</button></div>
            </ActionForm>
        </section>
    }
}
