use crate::api::admin::{
    ChangeRole, DecideUser, ResetTwoFactor, SendResetLink, SetUserEnabled, audit_log, list_users,
};
use crate::auth::RequireRole;
use crate::components::{FormError, Pager, ScrollTable, action_error};
use crate::locale::LocalTime;
use crate::model::{AccountStatus, Role, UserSummary};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::NavigateOptions;
use leptos_router::hooks::{use_navigate, use_query};
use leptos_router::location::Url;
use leptos_router::params::Params;

#[component]
pub fn UsersAdminPage() -> impl IntoView {
    // Bumped after every user action, so the audit log below shows it.
    provide_context(AuditRefresh(RwSignal::new(0)));
    view! {
        <Title text="Users"/>
        <RequireRole roles=Role::MANAGEMENT>
            <UsersPanel/>
            <AuditPanel/>
        </RequireRole>
    }
}

#[derive(Clone, Copy)]
struct AuditRefresh(RwSignal<usize>);

/// The list's search, status and page, as the URL carries them.
#[derive(Params, Clone, Debug, Default, PartialEq)]
struct UserFilters {
    q: Option<String>,
    status: Option<String>,
    page: Option<String>,
}

impl UserFilters {
    fn q(&self) -> String {
        self.q.clone().unwrap_or_default()
    }

    fn status(&self) -> String {
        self.status.clone().unwrap_or_default()
    }

    fn page(&self) -> u32 {
        self.page
            .as_deref()
            .and_then(|p| p.parse().ok())
            .unwrap_or(1)
    }

    fn href(q: &str, status: &str, page: u32) -> String {
        let mut pairs = Vec::new();
        for (key, value) in [("q", q), ("status", status)] {
            if !value.is_empty() {
                pairs.push(format!("{key}={}", Url::escape(value)));
            }
        }
        if page > 1 {
            pairs.push(format!("page={page}"));
        }
        if pairs.is_empty() {
            "/management/users".into()
        } else {
            format!("/management/users?{}", pairs.join("&"))
        }
    }
}

/// What a manager can do to a user, one action each.
#[derive(Clone, Copy)]
struct UserActions {
    decide: ServerAction<DecideUser>,
    role: ServerAction<ChangeRole>,
    enabled: ServerAction<SetUserEnabled>,
    reset: ServerAction<SendResetLink>,
    reset_factor: ServerAction<ResetTwoFactor>,
}

impl UserActions {
    fn new() -> Self {
        Self {
            decide: ServerAction::new(),
            role: ServerAction::new(),
            enabled: ServerAction::new(),
            reset: ServerAction::new(),
            reset_factor: ServerAction::new(),
        }
    }

    /// Grows with every completed action.
    fn version(&self) -> usize {
        self.decide.version().get()
            + self.role.version().get()
            + self.enabled.version().get()
            + self.reset.version().get()
            + self.reset_factor.version().get()
    }
}

#[component]
fn UsersPanel() -> impl IntoView {
    let actions = UserActions::new();
    let UserActions {
        decide,
        role,
        enabled,
        reset,
        reset_factor,
    } = actions;
    let filters = use_query::<UserFilters>();
    let current = Memo::new(move |_| filters.get().unwrap_or_default());
    let refresh = expect_context::<AuditRefresh>().0;
    Effect::new(move |_| refresh.set(actions.version()));
    let users = Resource::new(
        move || (current.get(), actions.version()),
        |(f, _)| list_users(f.q(), Some(f.status()), Some(f.page())),
    );
    // Typing narrows the list at once; the URL keeps it (back, refresh, a shared link).
    let navigate = use_navigate();
    let show = move |q: String, status: String| {
        let href = UserFilters::href(&q, &status, 1);
        navigate(
            &href,
            NavigateOptions {
                replace: true,
                scroll: false,
                ..Default::default()
            },
        );
    };
    let show_status = show.clone();
    let link = move || {
        reset.value().get().and_then(|r| r.ok()).map(|()| {
            view! {
                <p class="success" role="status" data-testid="reset-link">
                    "A one-time reset link (valid for 1 hour) was sent to the user's email address."
                </p>
            }
        })
    };
    view! {
        <section class="card" aria-labelledby="users-title">
            <div class="card-head"><h1 id="users-title">"Users"</h1></div>
            // A plain GET form: without JavaScript, "Search" submits it.
            <form method="get" action="/management/users" class="filters">
                <div class="field">
                    <label for="user-search">"Search"</label>
                    <input id="user-search" type="search" name="q" placeholder="username or email"
                        value=move || current.get().q() prop:value=move || current.get().q()
                        on:input=move |ev| show(event_target_value(&ev), current.get_untracked().status())/>
                </div>
                <div class="field">
                    <label for="user-status">"Status"</label>
                    <select id="user-status" name="status"
                        on:change=move |ev| show_status(current.get_untracked().q(), event_target_value(&ev))>
                        <option value="">"All"</option>
                        {AccountStatus::ALL.into_iter().map(|s| view! {
                            <option value=s.as_str() selected=move || current.get().status() == s.as_str()>{s.as_str()}</option>
                        }).collect_view()}
                    </select>
                </div>
                <div class="field actions">
                    <button type="submit" class="btn secondary">"Search"</button>
                </div>
            </form>
            <FormError error=action_error(decide.value())/>
            <FormError error=action_error(role.value())/>
            <FormError error=action_error(enabled.value())/>
            <FormError error=action_error(reset.value())/>
            <FormError error=action_error(reset_factor.value())/>
            {link}
            <Transition fallback=|| view! { <p class="muted">"Loading users…"</p> }>
                {move || users.get().map(|r| match r {
                    Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                    Ok(page) if page.users.is_empty() => view! { <p class="muted">"No users match."</p> }.into_any(),
                    Ok(page) => {
                        let f = current.get_untracked();
                        let href = Callback::new(move |p: u32| UserFilters::href(&f.q(), &f.status(), p));
                        view! {
                            <p class="muted small" data-testid="users-matching">{page.matching} " users"</p>
                            <ScrollTable label="Users">
                                <table data-testid="users">
                                    <thead><tr><th>"User"</th><th>"Role"</th><th>"Status"</th><th>"Last login"</th><th>"Actions"</th></tr></thead>
                                    <tbody>
                                        {page.users.into_iter().map(|u| view! { <UserRow user=u actions/> }).collect_view()}
                                    </tbody>
                                </table>
                            </ScrollTable>
                            <Pager page=page.page pages=page.pages href/>
                        }.into_any()
                    }
                })}
            </Transition>
        </section>
    }
}

#[component]
fn UserRow(user: UserSummary, actions: UserActions) -> impl IntoView {
    let UserActions {
        decide,
        role,
        enabled,
        reset,
        reset_factor,
    } = actions;
    let id = user.id;
    let row_name = user.username.clone();
    let label_name = user.username.clone();
    let status_class = match user.status {
        AccountStatus::Active => "pill ok",
        AccountStatus::Pending => "pill pending",
        AccountStatus::Disabled | AccountStatus::Closed => "pill down",
    };
    // A closed account has nothing left to change.
    let open = user.status != AccountStatus::Closed;
    let current_role = user.role;
    view! {
        <tr data-username=row_name>
            <td>
                <strong>{user.username}</strong><br/><span class="muted small">{user.email.clone()}</span>
                {(!user.email_verified).then(|| view! { " " <span class="pill pending">"address not confirmed"</span> })}
                {user.two_factor.then(|| view! { " " <span class="pill ok" data-testid="two-factor">"2FA"</span> })}
            </td>
            <td>
                <ActionForm action=role attr:class="inline-form">
                    <input type="hidden" name="id" value=id/>
                    <label class="visually-hidden" for=format!("role-{}", id)>"Role for " {label_name.clone()}</label>
                    <select id=format!("role-{}", id) name="role">
                        {Role::ALL.into_iter().map(|r| view! {
                            <option value=r.as_str() selected=r == current_role>{r.label()}</option>
                        }).collect_view()}
                    </select>
                    <button type="submit" class="btn secondary">"Save role"</button>
                </ActionForm>
            </td>
            <td><span class=status_class>{user.status.as_str()}</span></td>
            <td class="small">{match user.last_login_at {
                Some(at) => view! { <LocalTime at/> }.into_any(),
                None => "never".into_any(),
            }}</td>
            <td class="actions">
                {(user.status == AccountStatus::Pending).then(|| view! {
                    <ActionForm action=decide attr:class="inline-form">
                        <input type="hidden" name="id" value=id/>
                        <input type="hidden" name="approve" value="true"/>
                        <button type="submit" class="btn" disabled=!user.email_verified
                            title=(!user.email_verified).then_some("Waits until the user confirms their email address")>"Approve"</button>
                    </ActionForm>
                    <ActionForm action=decide attr:class="inline-form">
                        <input type="hidden" name="id" value=id/>
                        <input type="hidden" name="approve" value="false"/>
                        <button type="submit" class="btn secondary">"Reject"</button>
                    </ActionForm>
                })}
                {(open && user.status != AccountStatus::Pending).then(|| {
                    let enable = user.status == AccountStatus::Disabled;
                    view! {
                        <ActionForm action=enabled attr:class="inline-form">
                            <input type="hidden" name="id" value=id/>
                            <input type="hidden" name="enabled" value=enable.to_string()/>
                            <button type="submit" class="btn secondary">{if enable { "Enable" } else { "Disable" }}</button>
                        </ActionForm>
                    }
                })}
                {(open && current_role != Role::SeniorManagement).then(|| view! {
                    <ActionForm action=reset attr:class="inline-form">
                        <input type="hidden" name="id" value=id/>
                        <button type="submit" class="btn secondary">"Mail a reset link"</button>
                    </ActionForm>
                })}
                {(user.two_factor && current_role != Role::SeniorManagement).then(|| view! {
                    <ActionForm action=reset_factor attr:class="inline-form">
                        <input type="hidden" name="id" value=id/>
                        <button type="submit" class="btn secondary">"Reset 2FA"</button>
                    </ActionForm>
                })}
            </td>
        </tr>
    }
}

#[component]
fn AuditPanel() -> impl IntoView {
    let before = RwSignal::new(None::<u64>);
    let refresh = expect_context::<AuditRefresh>().0;
    let entries = Resource::new(
        move || (before.get(), refresh.get()),
        |(before, _)| audit_log(before),
    );
    view! {
        <section class="card" aria-labelledby="audit-title">
            <div class="card-head">
                <h2 id="audit-title">"Sign-in audit log"</h2>
                <button type="button" class="btn secondary" on:click=move |_| before.set(None)>"Newest"</button>
            </div>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || entries.get().map(|r| match r {
                    Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                    Ok(list) => {
                        let oldest = list.last().map(|e| e.id);
                        let full = list.len() == 100;
                        view! {
                            <ScrollTable label="Audit log">
                                <table data-testid="audit">
                                    <thead><tr><th>"Time"</th><th>"Event"</th><th>"User"</th><th>"By"</th><th>"Address"</th><th>"Detail"</th></tr></thead>
                                    <tbody>
                                        {list.into_iter().map(|e| view! {
                                            <tr>
                                                <td class="small"><LocalTime at=e.at/></td>
                                                <td>{e.event}</td>
                                                <td>{e.username.unwrap_or_default()}</td>
                                                <td>{e.actor.unwrap_or_default()}</td>
                                                <td>{e.ip.unwrap_or_default()}</td>
                                                <td class="small">{e.detail.unwrap_or_default()}</td>
                                            </tr>
                                        }).collect_view()}
                                    </tbody>
                                </table>
                            </ScrollTable>
                            {(full).then(|| view! {
                                <button type="button" class="btn secondary" on:click=move |_| before.set(oldest)>"Older entries"</button>
                            })}
                        }.into_any()
                    }
                })}
            </Transition>
        </section>
    }
}
