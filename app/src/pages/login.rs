use crate::auth::use_auth;
use crate::components::{FormError, app_action_error};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::{components::A, hooks::use_query_map};

#[component]
pub fn LoginPage() -> impl IntoView {
    let auth = use_auth();
    let query = use_query_map();
    let next = move || query.with(|q| q.get("next")).unwrap_or_default();
    let reset_done = move || query.with(|q| q.get("reset")).as_deref() == Some("done");
    let pending = auth.login.pending();
    crate::auth::on_success(auth.login.version(), auth.login.value(), move |user| {
        let next = query.with_untracked(|q| q.get("next"));
        let target =
            crate::model::safe_next(next.as_deref()).unwrap_or_else(|| user.home().to_string());
        (Some(user.clone()), target)
    });
    view! {
        <Title text="Log in"/>
        <section class="card narrow">
            <h1>"Log in"</h1>
            <Show when=reset_done>
                <p class="success" role="status">"Your password was changed. Log in with the new one."</p>
            </Show>
            <FormError error=app_action_error(auth.login)/>
            <ActionForm action=auth.login attr:class="stack" attr:aria-label="Log in">
                <input type="hidden" name="next" value=next/>
                <div class="field">
                    <label for="login-username">"Username"</label>
                    <input id="login-username" name="username" autocomplete="username" required/>
                </div>
                <div class="field">
                    <label for="login-password">"Password"</label>
                    <input id="login-password" name="password" type="password" autocomplete="current-password" required/>
                </div>
                <div class="form-actions">
                    <button type="submit" class="btn" aria-busy=move || pending.get().to_string()>"Log in"</button>
                    <A href="/forgot-password">"Forgot password?"</A>
                    <span class="muted">"No account yet? " <A href="/register">"Register"</A></span>
                </div>
            </ActionForm>
            <super::passkeys::PasskeySignIn/>
        </section>
    }
}
