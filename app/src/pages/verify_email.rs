use crate::api::auth::VerifyEmail;
use crate::auth::use_auth;
use crate::components::{FormError, action_error};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::{components::A, hooks::use_query_map};

/// The page a confirmation link opens. Confirming takes a press of the button (a POST):
/// mail scanners that fetch links must not confirm an address on their own.
#[component]
pub fn VerifyEmailPage() -> impl IntoView {
    let auth = use_auth();
    let verify = ServerAction::<VerifyEmail>::new();
    let error = action_error(verify.value());
    let query = use_query_map();
    let token = move || query.with(|q| q.get("token")).unwrap_or_default();
    let done = move || {
        matches!(verify.value().get(), Some(Ok(()))) || query.with(|q| q.get("done")).is_some()
    };
    // Whoever is signed in here sees the confirmed address at once.
    Effect::new(move |_| {
        if matches!(verify.value().get(), Some(Ok(()))) {
            auth.refresh();
        }
    });
    view! {
        <Title text="Confirm your email address"/>
        <section class="card narrow">
            <h1>"Confirm your email address"</h1>
            <Show when=done fallback=move || view! {
                <p>"Press the button to confirm that this address is yours."</p>
                <FormError error/>
                <ActionForm action=verify attr:class="stack" attr:aria-label="Confirm email address">
                    <input type="hidden" name="token" value=token/>
                    <div class="form-actions"><button type="submit" class="btn">"Confirm my address"</button></div>
                </ActionForm>
            }>
                <p class="success" role="status" data-testid="email-verified">"Your email address is confirmed."</p>
                <p><A href="/dashboard">"Go to your dashboard"</A></p>
            </Show>
        </section>
    }
}
