use crate::auth::{RequireLogin, RequireRole, use_auth};
use crate::model::{AccountStatus, Role};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::{A, Redirect};

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

#[component]
fn Welcome(title: &'static str, lead: &'static str) -> impl IntoView {
    let auth = use_auth();
    let name = move || auth.signed_in().map(|u| u.username).unwrap_or_default();
    view! {
        <Title text=title/>
        <section class="hero">
            <h1>{title}</h1>
            <p class="lead">"Welcome, " <strong>{name}</strong> ". " {lead}</p>
        </section>
    }
}

#[component]
pub fn CustomerDashboard() -> impl IntoView {
    view! {
        <RequireRole roles=&[Role::Customer]>
            <Welcome title="My purchases" lead="Your purchases at every Supply Co. store appear here."/>
        </RequireRole>
    }
}

#[component]
pub fn WorkerDashboard() -> impl IntoView {
    view! {
        <RequireRole roles=&[Role::TechnicalWorker, Role::SeniorManagement]>
            <Welcome title="Sales records" lead="Keep the sales records of all stores correct and in sync."/>
        </RequireRole>
    }
}

#[component]
pub fn ManagementDashboard() -> impl IntoView {
    view! {
        <RequireRole roles=&[Role::SeniorManagement]>
            <Welcome title="Management" lead="Store performance and the people who use the portal."/>
            <section class="grid">
                <div class="card">
                    <h2>"Users"</h2>
                    <p>"Approve new staff accounts, change roles, disable accounts and issue password-reset links."</p>
                    <A href="/management/users" attr:class="btn secondary">"Manage users"</A>
                </div>
            </section>
        </RequireRole>
    }
}
