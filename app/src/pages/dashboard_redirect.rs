//! `/dashboard`: the one address that means "my dashboard", whatever the role.

use crate::auth::{RequireLogin, use_auth};
use leptos::prelude::*;
use leptos_router::components::Redirect;

/// `/dashboard`: sends each user to their role's dashboard.
#[component]
pub fn DashboardRedirect() -> impl IntoView {
    let auth = use_auth();
    view! {
        <RequireLogin>
            {move || auth.signed_in().map(|u| view! { <Redirect path=u.home()/> })}
        </RequireLogin>
    }
}
