use crate::api::auth::{
    ChangeEmail, ChangePassword, LogoutEverywhere, ResendVerification, RevokeSession, my_sessions,
};
use crate::auth::{RequireLogin, use_auth};
use crate::components::{
    FieldMessage, FormError, FreshCode, NewPasswordFields, ScrollTable, action_error,
};
use crate::locale::LocalTime;
use crate::model::SecondFactor;
use leptos::prelude::*;
use leptos_meta::Title;

#[component]
pub fn ProfilePage() -> impl IntoView {
    let auth = use_auth();
    let user = move || auth.signed_in();
    view! {
        <Title text="Profile"/>
        <RequireLogin>
            <section class="card">
                <h1>"Your account"</h1>
                {move || user().map(|u| view! {
                    <dl class="facts">
                        <dt>"Username"</dt><dd>{u.username}</dd>
                        <dt>"Email"</dt>
                        <dd>
                            {u.email} " "
                            {if u.email_verified {
                                view! { <span class="pill ok">"confirmed"</span> }.into_any()
                            } else {
                                view! { <span class="pill pending" data-testid="email-unconfirmed">"not confirmed"</span> }.into_any()
                            }}
                        </dd>
                        <dt>"Role"</dt><dd>{u.role.label()}</dd>
                        <dt>"Status"</dt><dd>{u.status.as_str()}</dd>
                    </dl>
                })}
            </section>
            <EmailSection/>
            <Sessions/>
            <ChangePasswordForm/>
            {move || {
                user()
                    .filter(|u| u.role == crate::model::Role::Customer)
                    .map(|_| view! { <super::close_account::CloseAccountSection/> })
            }}
        </RequireLogin>
    }
}

#[component]
fn Sessions() -> impl IntoView {
    let revoke = ServerAction::<RevokeSession>::new();
    let everywhere = ServerAction::<LogoutEverywhere>::new();
    let sessions = Resource::new(move || revoke.version().get(), |_| my_sessions());
    crate::auth::on_success(everywhere.version(), everywhere.value(), |_| {
        (None, "/login".to_string())
    });
    view! {
        <section class="card" aria-labelledby="sessions-title">
            <div class="card-head">
                <h2 id="sessions-title">"Active sessions"</h2>
                <ActionForm action=everywhere>
                    <button type="submit" class="btn secondary">"Log out everywhere"</button>
                </ActionForm>
            </div>
            <FormError error=action_error(revoke.value())/>
            <Transition fallback=|| view! { <p class="muted">"Loading sessions…"</p> }>
                {move || sessions.get().map(|r| match r {
                    Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                    Ok(list) => view! {
                        <ScrollTable label="Sessions">
                            <table data-testid="sessions">
                                <thead><tr><th>"Signed in"</th><th>"Last active"</th><th>"Address"</th><th>"Browser"</th><th></th></tr></thead>
                                <tbody>
                                    {list.into_iter().map(|s| view! {
                                        <tr>
                                            <td><LocalTime at=s.created_at/></td>
                                            <td><LocalTime at=s.last_seen_at/></td>
                                            <td>{s.ip.unwrap_or_default()}</td>
                                            <td class="small">{s.user_agent.unwrap_or_default()}</td>
                                            <td>
                                                {if s.current {
                                                    view! { <span class="pill ok">"This session"</span> }.into_any()
                                                } else {
                                                    view! {
                                                        <ActionForm action=revoke>
                                                            <input type="hidden" name="handle" value=s.handle/>
                                                            <button type="submit" class="btn secondary">"Revoke"</button>
                                                        </ActionForm>
                                                    }.into_any()
                                                }}
                                            </td>
                                        </tr>
                                    }).collect_view()}
                                </tbody>
                            </table>
                        </ScrollTable>
                    }.into_any(),
                })}
            </Transition>
        </section>
    }
}

/// Confirming the address (a new link), and changing it (confirmed at the new address).
#[component]
fn EmailSection() -> impl IntoView {
    let auth = use_auth();
    let resend = ServerAction::<ResendVerification>::new();
    let change = ServerAction::<ChangeEmail>::new();
    let change_error = action_error(change.value());
    let unconfirmed = move || auth.signed_in().is_some_and(|u| !u.email_verified);
    let has_factor = move || {
        auth.signed_in()
            .is_some_and(|u| u.second_factor == SecondFactor::Passed)
    };
    view! {
        <section class="card narrow" aria-labelledby="email-title">
            <h2 id="email-title">"Email address"</h2>
            <Show when=unconfirmed>
                <p>"Your address is not confirmed yet. Customers see their purchases once it is."</p>
                <FormError error=action_error(resend.value())/>
                <Show when=move || matches!(resend.value().get(), Some(Ok(())))>
                    <p class="success" role="status">"A new confirmation link is on its way."</p>
                </Show>
                <ActionForm action=resend>
                    <button type="submit" class="btn secondary">"Mail me a new confirmation link"</button>
                </ActionForm>
            </Show>
            <h3>"Change your address"</h3>
            <p class="muted small">"The new address gets a link; it becomes your address once confirmed. The old one is told."</p>
            <Show when=move || matches!(change.value().get(), Some(Ok(())))>
                <p class="success" role="status">"Check the new address's inbox for the confirmation link."</p>
            </Show>
            <FormError error=change_error/>
            <ActionForm action=change attr:class="stack" attr:aria-label="Change email address">
                <div class="field">
                    <label for="ce-email">"New email address"</label>
                    <input id="ce-email" name="email" type="email" autocomplete="email" required/>
                    <FieldMessage error=change_error field="email"/>
                </div>
                <div class="field">
                    <label for="ce-current">"Current password"</label>
                    <input id="ce-current" name="current_password" type="password" autocomplete="current-password" required/>
                    <FieldMessage error=change_error field="current_password"/>
                </div>
                <Show when=has_factor>
                    <FreshCode id="ce-code" error=change_error/>
                </Show>
                <div class="form-actions"><button type="submit" class="btn">"Change address"</button></div>
            </ActionForm>
        </section>
    }
}

#[component]
fn ChangePasswordForm() -> impl IntoView {
    let change = ServerAction::<ChangePassword>::new();
    let done = move || matches!(change.value().get(), Some(Ok(())));
    let error = action_error(change.value());
    view! {
        <section class="card narrow" aria-labelledby="pw-title">
            <h2 id="pw-title">"Change password"</h2>
            <p class="muted small">"Changing it logs out every other session."</p>
            <Show when=done>
                <p class="success" role="status">"Password changed. Your other sessions were logged out."</p>
            </Show>
            <FormError error/>
            <ActionForm action=change attr:class="stack">
                <div class="field">
                    <label for="cp-current">"Current password"</label>
                    <input id="cp-current" name="current_password" type="password" autocomplete="current-password" required/>
                    <FieldMessage error field="current_password"/>
                </div>
                <NewPasswordFields error id_prefix="cp"/>
                <div class="form-actions"><button type="submit" class="btn">"Change password"</button></div>
            </ActionForm>
        </section>
    }
}
