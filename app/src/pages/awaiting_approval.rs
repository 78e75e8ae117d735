//! `/awaiting-approval`: where staff who registered wait for a senior manager.

use crate::auth::{RequireLogin, use_auth};
use crate::model::AccountStatus;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::Redirect;

#[component]
pub fn AwaitingApproval() -> impl IntoView {
    let auth = use_auth();
    view! {
        <Title text="Awaiting approval"/>
        <RequireLogin>
            {move || auth.signed_in().map(|u| {
                if u.status == AccountStatus::Active {
                    view! { <Redirect path=u.home()/> }.into_any()
                } else {
                    view! {
                        <section class="card narrow" data-testid="awaiting-approval">
                            <h1>"Your account is awaiting approval"</h1>
                            <p>
                                "You registered as " <strong>{u.role.label().to_lowercase()}</strong>
                                ". A senior manager needs to approve the account before you can use that part of the portal."
                            </p>
                            <p class="muted">"You can log out and come back later; nothing else is needed from you."</p>
                        </section>
                    }.into_any()
                }
            })}
        </RequireLogin>
    }
}
