use crate::api::auth::ResetPassword;
use crate::components::{FormError, NewPasswordFields, action_error};
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
    let query = use_query_map();
    let token = move || query.with(|q| q.get("token")).unwrap_or_default();
    view! {
        <Title text="Choose a new password"/>
        <section class="card narrow">
            <h1>"Choose a new password"</h1>
            <FormError error/>
            <ActionForm action=reset attr:class="stack">
                <input type="hidden" name="token" value=token/>
                <NewPasswordFields error id_prefix="rp"/>
                <div class="form-actions"><button type="submit" class="btn">"Set password"</button></div>
            </ActionForm>
        </section>
    }
}
