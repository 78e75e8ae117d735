use crate::api::auth::ForgotPassword;
use crate::components::{FieldMessage, FormError, action_error};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::{components::A, hooks::use_query_map};

/// "Forgot password?": a reset link by mail. The answer is the same whether or not an
/// account has the address.
#[component]
pub fn ForgotPasswordPage() -> impl IntoView {
    let forgot = ServerAction::<ForgotPassword>::new();
    let error = action_error(forgot.value());
    let query = use_query_map();
    let sent = move || {
        matches!(forgot.value().get(), Some(Ok(()))) || query.with(|q| q.get("sent")).is_some()
    };
    view! {
        <Title text="Forgot password"/>
        <section class="card narrow">
            <h1>"Forgot your password?"</h1>
            <Show when=sent fallback=move || view! {
                <p class="muted">"Enter the email address of your account. We mail you a link to choose a new password."</p>
                <FormError error/>
                <ActionForm action=forgot attr:class="stack" attr:aria-label="Forgot password">
                    <div class="field">
                        <label for="fp-email">"Email"</label>
                        <input id="fp-email" name="email" type="email" autocomplete="email" required/>
                        <FieldMessage error field="email"/>
                    </div>
                    <div class="form-actions">
                        <button type="submit" class="btn">"Send me a link"</button>
                        <A href="/login">"Back to login"</A>
                    </div>
                </ActionForm>
            }>
                <p class="success" role="status" data-testid="reset-requested">
                    "If an account has this address, a link to choose a new password is on its way. "
                    "It works once, for an hour."
                </p>
                <p><A href="/login">"Back to login"</A></p>
            </Show>
        </section>
    }
}
