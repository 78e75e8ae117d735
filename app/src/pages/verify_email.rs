use crate::api::auth::{DeclineAddress, VerifyEmail, pending_address};
use crate::auth::use_auth;
use crate::components::{ErrorNote, FormError, action_error};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::{components::A, hooks::use_query_map};

/// The page a confirmation link opens. It names the address and the account that asked
/// for it, since anyone may register with someone else's address; confirming takes a
/// press of the button (a POST), so mail scanners that fetch links confirm nothing.
#[component]
pub fn VerifyEmailPage() -> impl IntoView {
    let auth = use_auth();
    let verify = ServerAction::<VerifyEmail>::new();
    let decline = ServerAction::<DeclineAddress>::new();
    // Made here, not inside the suspended view: that view is dropped once the address
    // is confirmed, while its error messages may still be read.
    let verify_error = action_error(verify.value());
    let decline_error = action_error(decline.value());
    let query = use_query_map();
    let token = move || query.with(|q| q.get("token")).unwrap_or_default();
    let flag = move |name: &str| query.with(|q| q.get(name)).is_some();
    let done = move || matches!(verify.value().get(), Some(Ok(()))) || flag("done");
    let declined = move || matches!(decline.value().get(), Some(Ok(()))) || flag("declined");
    let pending = Resource::new(token, |token| async move {
        if token.is_empty() {
            None
        } else {
            Some(pending_address(token).await)
        }
    });
    // Whoever is signed in here sees the confirmed address at once.
    Effect::new(move |_| {
        if matches!(verify.value().get(), Some(Ok(()))) {
            auth.refresh();
        }
    });
    let ask = move || {
        view! {
            <Suspense fallback=|| view! { <p class="muted">"Reading the link…"</p> }>
                {move || Suspend::new(async move {
                    match pending.await {
                        Some(Ok(p)) => view! {
                            <p data-testid="pending-address">
                                "Confirm " <strong>{p.email}</strong> " as the email address of the account "
                                <strong>{p.username.clone()}</strong> "?"
                            </p>
                            <p class="muted">
                                "Confirm only if you created the account " {p.username} " or asked for this "
                                "change: the account will see the purchases made with this address."
                            </p>
                            <FormError error=verify_error/>
                            <FormError error=decline_error/>
                            <div class="form-actions">
                                <ActionForm action=verify attr:aria-label="Confirm email address">
                                    <input type="hidden" name="token" value=token/>
                                    <button type="submit" class="btn">"Confirm my address"</button>
                                </ActionForm>
                                <ActionForm action=decline attr:aria-label="Refuse this link">
                                    <input type="hidden" name="token" value=token/>
                                    <button type="submit" class="btn secondary">"This is not my account"</button>
                                </ActionForm>
                            </div>
                        }.into_any(),
                        Some(Err(e)) => view! { <ErrorNote error=e/> }.into_any(),
                        None => view! { <p class="error" role="alert">"This link has no token. Open the link from the mail as it is."</p> }.into_any(),
                    }
                })}
            </Suspense>
        }
    };
    view! {
        <Title text="Confirm your email address"/>
        <section class="card narrow">
            <h1>"Confirm your email address"</h1>
            <Show when=move || !declined() fallback=|| view! {
                <p class="success" role="status" data-testid="email-declined">
                    "Thank you. The address was not confirmed, and this link no longer works."
                </p>
            }>
                <Show when=done fallback=ask>
                    <p class="success" role="status" data-testid="email-verified">"Your email address is confirmed."</p>
                    <p><A href="/dashboard">"Go to your dashboard"</A></p>
                </Show>
            </Show>
        </section>
    }
}
