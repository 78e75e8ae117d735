//! Client-and-server auth state for the UI: who is signed in, and route guards.
//! The guards only shape what is shown; every server function checks again.

use crate::api::auth::{Login, Logout, me};
use crate::model::account::{SECOND_STEP_PAGE, TWO_FACTOR_PAGE};
use crate::model::{AccountStatus, AppError, Role, SecondFactor, SessionUser};
use leptos::prelude::*;
use leptos_router::{components::Redirect, hooks::use_location};

#[derive(Clone, Copy)]
pub struct Auth {
    pub login: ServerAction<Login>,
    pub logout: ServerAction<Logout>,
    /// Who the server says is signed in, as of the page load.
    loaded: Resource<Result<Option<SessionUser>, AppError>>,
    /// Set by the client after a login or logout. It wins over `loaded`,
    /// and is set *before* navigating, so a guarded page never sees a stale answer.
    known: RwSignal<Option<Option<SessionUser>>>,
}

impl Auth {
    pub fn provide() -> Auth {
        let auth = Auth {
            login: ServerAction::<Login>::new(),
            logout: ServerAction::<Logout>::new(),
            loaded: Resource::new(|| (), |_| me()),
            known: RwSignal::new(None),
        };
        provide_context(auth);
        auth
    }

    /// `None` while unknown (loading); read inside `Suspense`.
    pub fn user(&self) -> Option<Result<Option<SessionUser>, AppError>> {
        match self.known.get() {
            Some(known) => Some(Ok(known)),
            None => self.loaded.get(),
        }
    }

    pub fn signed_in(&self) -> Option<SessionUser> {
        self.user().and_then(Result::ok).flatten()
    }

    pub fn set_user(&self, user: Option<SessionUser>) {
        self.known.set(Some(user));
    }

    /// Asks the server again who is signed in (after something about them changed).
    /// What is known now stays until the answer arrives: the page-load answer may be
    /// older (a login since then), and guards must not act on it meanwhile.
    pub fn refresh(&self) {
        let known = self.known;
        leptos::task::spawn_local(async move {
            if let Ok(user) = me().await {
                known.set(Some(user));
            }
        });
    }
}

/// After a successful action: record who is signed in now, then go to the target.
/// (A form posted without JavaScript gets the server's 302 instead.)
/// Only results that arrive after the calling component mounted count: an action's
/// last value outlives the page that dispatched it.
pub fn on_success<T, F>(
    version: RwSignal<usize>,
    value: MappedSignal<Option<Result<T, AppError>>>,
    then: F,
) where
    T: Clone + Send + Sync + 'static,
    F: Fn(&T) -> (Option<SessionUser>, String) + 'static,
{
    let auth = use_auth();
    let navigate = leptos_router::hooks::use_navigate();
    let mounted_at = version.get_untracked();
    Effect::new(move |_| {
        if version.get() == mounted_at {
            return;
        }
        if let Some(Ok(result)) = value.get_untracked() {
            let (user, target) = then(&result);
            auth.set_user(user);
            navigate(&target, Default::default());
        }
    });
}

pub fn use_auth() -> Auth {
    expect_context::<Auth>()
}

/// `/login?next=<current path>`, so the user comes back after logging in; plain
/// `/login` when the page is the login already (a logout on its way there).
pub fn login_url_for_current_page() -> String {
    let here = current_page();
    if crate::model::account::is_login_page(&here) {
        return crate::model::account::LOGIN_PAGE.to_string();
    }
    format!("/login?next={}", crate::model::url::query_value(&here))
}

/// The page being shown, path and query.
fn current_page() -> String {
    let location = use_location();
    let here = format!(
        "{}{}",
        location.pathname.get_untracked(),
        location.search.get_untracked()
    );
    if here.is_empty() {
        "/".to_string()
    } else {
        here
    }
}

/// Shows `children` only to active users of one of `roles`; anonymous users are sent
/// to the login page, pending users to the approval notice, others get a refusal.
#[component]
pub fn RequireRole(roles: &'static [Role], children: ChildrenFn) -> impl IntoView {
    guarded(Some(roles), children)
}

/// Like `RequireRole`, for pages every signed-in user may see (pending ones too).
#[component]
pub fn RequireLogin(children: ChildrenFn) -> impl IntoView {
    guarded(None, children)
}

/// `roles: None` admits any signed-in user, as the server's `Access::AnyUser` does. A
/// login still owing its second step goes there first; staff without a second factor
/// are sent to set one up before their role's pages.
fn guarded(roles: Option<&'static [Role]>, children: ChildrenFn) -> impl IntoView {
    let auth = use_auth();
    let children = StoredValue::new(children);
    view! {
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || {
                auth.user().map(|result| match (result, roles) {
                    (Ok(Some(user)), _) if user.second_factor == SecondFactor::Pending => {
                        let path = format!("{SECOND_STEP_PAGE}?next={}", crate::model::url::query_value(&current_page()));
                        view! { <Redirect path/> }.into_any()
                    }
                    (Ok(Some(_)), None) => children.with_value(|c| c()).into_any(),
                    (Ok(Some(user)), Some(roles)) if user.status == AccountStatus::Active && roles.contains(&user.role) => {
                        if user.second_factor == SecondFactor::Missing {
                            view! { <Redirect path=TWO_FACTOR_PAGE/> }.into_any()
                        } else {
                            children.with_value(|c| c()).into_any()
                        }
                    }
                    (Ok(Some(user)), Some(_)) if user.status == AccountStatus::Pending => {
                        view! { <Redirect path="/awaiting-approval"/> }.into_any()
                    }
                    (Ok(Some(_)), Some(_)) => view! { <Forbidden/> }.into_any(),
                    (Ok(None), _) => view! { <Redirect path=login_url_for_current_page()/> }.into_any(),
                    (Err(e), _) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                })
            }}
        </Suspense>
    }
}

#[component]
pub fn Forbidden() -> impl IntoView {
    #[cfg(feature = "ssr")]
    {
        if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
            response.set_status(http::StatusCode::FORBIDDEN);
        }
    }
    view! {
        <leptos_meta::Title text="Not allowed"/>
        <section class="card narrow" data-testid="forbidden">
            <h1>"You don't have access to this page"</h1>
            <p>"Your account's role does not include this area of the portal."</p>
            <p><a href="/dashboard">"Go to your dashboard"</a></p>
        </section>
    }
}
