use crate::api::auth::{SecondStep, after_login};
use crate::auth::use_auth;
use crate::components::{FieldMessage, FormError, action_error};
use crate::model::SecondFactor;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::{components::Redirect, hooks::use_query_map};

/// The second step of a login: a code from the authenticator app, or a recovery code.
#[component]
pub fn SecondStepPage() -> impl IntoView {
    let auth = use_auth();
    let query = use_query_map();
    let next = move || query.with(|q| q.get("next")).unwrap_or_default();
    let step = ServerAction::<SecondStep>::new();
    let error = action_error(step.value());
    let pending = step.pending();
    crate::auth::on_success(step.version(), step.value(), move |user| {
        let next = query.with_untracked(|q| q.get("next"));
        (Some(user.clone()), after_login(user, next.as_deref()))
    });
    view! {
        <Title text="Second step"/>
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || auth.user().map(|result| match result {
                Ok(Some(user)) if user.second_factor != SecondFactor::Pending => {
                    let next = query.with_untracked(|q| q.get("next"));
                    view! { <Redirect path=after_login(&user, next.as_deref())/> }.into_any()
                }
                Ok(None) => view! { <Redirect path="/login"/> }.into_any(),
                Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                Ok(Some(_)) => view! {
                    <section class="card narrow">
                        <h1>"Two-factor authentication"</h1>
                        <p>"Enter the 6-digit code your authenticator app shows for the Supply Co. portal. Lost your phone? Enter one of your recovery codes instead."</p>
                        <FormError error/>
                        <ActionForm action=step attr:class="stack" attr:aria-label="Second step">
                            <input type="hidden" name="next" value=next/>
                            <div class="field">
                                <label for="second-step-code">"Code"</label>
                                <input id="second-step-code" name="code" autocomplete="one-time-code"
                                    inputmode="text" autocapitalize="off" spellcheck="false" required/>
                                <FieldMessage error field="code"/>
                            </div>
                            <div class="form-actions">
                                <button type="submit" class="btn" aria-busy=move || pending.get().to_string()>"Verify"</button>
                            </div>
                        </ActionForm>
                        <ActionForm action=auth.logout>
                            <button type="submit" class="btn secondary">"Log out"</button>
                        </ActionForm>
                    </section>
                }.into_any(),
            })}
        </Suspense>
    }
}
