//! Passkeys in the UI: signing in with one on the login page, and adding or removing
//! them beside the other factors. Both ceremonies need the browser's WebAuthn API, so
//! their buttons appear once the page has hydrated; removing one is a plain form.

use crate::api::passkeys::{
    RemovePasskey, begin_passkey, begin_passkey_sign_in, finish_passkey, finish_passkey_sign_in,
    my_passkeys,
};
use crate::auth::use_auth;
use crate::components::{FieldMessage, FormError, FreshCode, action_error};
use crate::locale::LocalTime;
use crate::model::{AppError, Passkeys, SessionUser};
use leptos::prelude::*;
use leptos_router::hooks::{use_navigate, use_query_map};

/// True once the page runs in the browser (effects run only there).
fn hydrated() -> ReadSignal<bool> {
    let (hydrated, set) = signal(false);
    Effect::new(move |_| set.set(true));
    hydrated
}

/// Whether the signed-in account has an authenticator app, whose code a sensitive
/// change may ask for.
fn has_second_factor() -> impl Fn() -> bool + Copy + Send + Sync + 'static {
    let auth = use_auth();
    move || {
        auth.signed_in().is_some_and(|u| {
            matches!(
                u.second_factor,
                crate::model::SecondFactor::Passed | crate::model::SecondFactor::Pending
            )
        })
    }
}

/// A refusal as the user should read it: the field message when the server gave one.
fn message(e: &AppError, field: &str) -> String {
    e.field_message(field).unwrap_or_else(|| e.to_string())
}

/// "Sign in with a passkey" on the login page: no username, no password, no code.
#[component]
pub fn PasskeySignIn() -> impl IntoView {
    let auth = use_auth();
    let query = use_query_map();
    let navigate = use_navigate();
    let sign_in = Action::new_local(|(): &()| sign_in_with_passkey());
    let pending = sign_in.pending();
    Effect::new(move |_| {
        if let Some(Ok(user)) = sign_in.value().get() {
            let next = query.with_untracked(|q| q.get("next"));
            let target = crate::api::auth::after_login(&user, next.as_deref());
            auth.set_user(Some(user));
            navigate(&target, Default::default());
        }
    });
    let error = move || sign_in.value().get().and_then(Result::err);
    let hydrated = hydrated();
    view! {
        <Show when=move || hydrated.get()>
            <div class="passkey-sign-in" data-testid="passkey-sign-in">
                <p class="muted small">"Or, without typing anything:"</p>
                <button
                    type="button"
                    class="btn secondary"
                    aria-busy=move || pending.get().to_string()
                    on:click=move |_| {
                        sign_in.dispatch(());
                    }
                >
                    "Sign in with a passkey"
                </button>
                {move || error().map(|e| view! { <p class="error" role="alert">{e}</p> })}
            </div>
        </Show>
    }
}

async fn sign_in_with_passkey() -> Result<SessionUser, String> {
    let challenge = begin_passkey_sign_in()
        .await
        .map_err(|e| message(&e, "credential"))?;
    let credential = crate::webauthn::get(&challenge.options).await?;
    finish_passkey_sign_in(challenge.ceremony, credential)
        .await
        .map_err(|e| message(&e, "credential"))
}

/// What adding a passkey needs from the form.
#[derive(Clone)]
struct NewPasskey {
    name: String,
    current_password: String,
    code: String,
}

/// The signed-in user's passkeys: the list, adding one, removing one.
#[component]
pub fn PasskeysSection() -> impl IntoView {
    let changes = RwSignal::new(0usize);
    let passkeys = Resource::new(move || changes.get(), |_| my_passkeys());
    let add = Action::new_local(|new: &NewPasskey| add_passkey(new.clone()));
    let remove = ServerAction::<RemovePasskey>::new();
    Effect::new(move |_| {
        let added = matches!(add.value().get(), Some(Ok(_)));
        let removed = matches!(remove.value().get(), Some(Ok(_)));
        if added || removed {
            changes.update(|n| *n += 1);
        }
    });
    view! {
        <section class="card" aria-labelledby="passkeys-title" data-testid="passkeys">
            <h2 id="passkeys-title">"Passkeys"</h2>
            <p>
                "A passkey signs you in with your device's screen lock or a security key, without a password or code. "
                "Your password, authenticator app and recovery codes keep working."
            </p>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || passkeys.get().map(|r| match r {
                    Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                    Ok(list) => view! {
                        <PasskeyList list=list.clone()/>
                        <OtherOrigin list=list.clone()/>
                        {(!list.keys.is_empty()).then(|| view! { <RemovePasskeyForm action=remove list/> })}
                    }.into_any(),
                })}
            </Transition>
            <Show when=move || matches!(remove.value().get(), Some(Ok(())))>
                <p class="success" role="status">"Passkey removed: it no longer signs in."</p>
            </Show>
            <AddPasskey add/>
        </section>
    }
}

#[component]
fn PasskeyList(list: Passkeys) -> impl IntoView {
    if list.keys.is_empty() {
        return view! { <p class="muted" data-testid="no-passkeys">"You have no passkeys yet."</p> }
            .into_any();
    }
    view! {
        <ul class="passkey-list" data-testid="passkey-list">
            {list.keys.into_iter().map(|key| view! {
                <li>
                    <strong>{key.name}</strong>
                    <span class="muted small">
                        " · added " <LocalTime at=key.created_at/>
                        {key.last_used_at.map(|at| view! { " · last used " <LocalTime at/> })}
                    </span>
                </li>
            }).collect_view()}
        </ul>
    }
    .into_any()
}

/// Passkeys belong to a domain name: at another address of the same portal (such as
/// `127.0.0.1` in development) the browser refuses them, so say where they work.
#[component]
fn OtherOrigin(list: Passkeys) -> impl IntoView {
    let here = RwSignal::new(None::<String>);
    Effect::new(move |_| {
        #[cfg(feature = "hydrate")]
        here.set(web_sys::window().and_then(|w| w.location().origin().ok()));
    });
    move || {
        match (&list.origin, here.get()) {
        (None, _) => Some(view! {
            <p class="notice" role="status">"Passkeys are not available at this address: they need the portal to be opened at a domain name."</p>
        }.into_any()),
        (Some(origin), Some(here)) if *origin != here => {
            let href = format!("{origin}/profile/two-factor");
            Some(view! {
                <p class="notice" role="status">
                    "Passkeys for this portal work at " <a href=href>{origin.clone()}</a>
                    ": open it there to add or use one."
                </p>
            }.into_any())
        }
        _ => None,
    }
    }
}

#[component]
fn AddPasskey(add: Action<NewPasskey, Result<String, String>>) -> impl IntoView {
    let name = NodeRef::<leptos::html::Input>::new();
    let password = NodeRef::<leptos::html::Input>::new();
    let code = NodeRef::<leptos::html::Input>::new();
    let pending = add.pending();
    let on_submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let value = |input: NodeRef<leptos::html::Input>| {
            input.get_untracked().map(|i| i.value()).unwrap_or_default()
        };
        add.dispatch(NewPasskey {
            name: value(name),
            current_password: value(password),
            code: value(code),
        });
    };
    let result = move || add.value().get();
    let hydrated = hydrated();
    let has_factor = has_second_factor();
    view! {
        <Show when=move || hydrated.get()>
            <form class="stack" aria-label="Add a passkey" on:submit=on_submit>
                <h3>"Add a passkey"</h3>
                <div class="field">
                    <label for="passkey-name">"Name"</label>
                    <input id="passkey-name" node_ref=name maxlength="64" required placeholder="Work laptop" aria-describedby="passkey-name-hint"/>
                    <p id="passkey-name-hint" class="muted small">"To tell your passkeys apart, such as the device that keeps it."</p>
                </div>
                <div class="field">
                    <label for="passkey-password">"Current password"</label>
                    <input id="passkey-password" node_ref=password type="password" autocomplete="current-password" required/>
                </div>
                <Show when=has_factor>
                    <div class="field">
                        <label for="passkey-code">"Code from your authenticator app"</label>
                        <input id="passkey-code" node_ref=code inputmode="numeric" autocomplete="one-time-code" aria-describedby="passkey-code-hint"/>
                        <p id="passkey-code-hint" class="muted small">"Needed when you last gave one more than 10 minutes ago. A recovery code works too."</p>
                    </div>
                </Show>
                <div class="form-actions">
                    <button type="submit" class="btn" aria-busy=move || pending.get().to_string()>"Add a passkey"</button>
                </div>
                {move || result().map(|r| match r {
                    Ok(name) => view! { <p class="success" role="status">{format!("Passkey \u{201c}{name}\u{201d} added.")}</p> }.into_any(),
                    Err(e) => view! { <p class="error" role="alert">{e}</p> }.into_any(),
                })}
            </form>
        </Show>
    }
}

/// Adds a passkey: the server checks the password and code and makes the options, the
/// authenticator makes the key, the server verifies and keeps it. Answers its name.
async fn add_passkey(new: NewPasskey) -> Result<String, String> {
    let name = crate::model::PasskeyName::parse(&new.name)?;
    let code = Some(new.code).filter(|c| !c.trim().is_empty());
    let challenge = begin_passkey(new.current_password, code)
        .await
        .map_err(|e| {
            e.field_message("current_password")
                .or_else(|| e.field_message("code"))
                .unwrap_or_else(|| e.to_string())
        })?;
    let credential = crate::webauthn::create(&challenge.options).await?;
    let added = finish_passkey(challenge.ceremony, name.as_str().to_string(), credential)
        .await
        .map_err(|e| message(&e, "credential"))?;
    Ok(added.name)
}

#[component]
fn RemovePasskeyForm(action: ServerAction<RemovePasskey>, list: Passkeys) -> impl IntoView {
    let error = action_error(action.value());
    view! {
        <ActionForm action attr:class="stack" attr:aria-label="Remove a passkey">
            <h3>"Remove a passkey"</h3>
            <FormError error/>
            <div class="field">
                <label for="remove-passkey">"Passkey"</label>
                <select id="remove-passkey" name="id">
                    {list.keys.into_iter().map(|key| view! {
                        <option value=key.id.to_string()>{key.name}</option>
                    }).collect_view()}
                </select>
            </div>
            <div class="field">
                <label for="remove-passkey-password">"Current password"</label>
                <input id="remove-passkey-password" name="current_password" type="password" autocomplete="current-password" required/>
                <FieldMessage error field="current_password"/>
            </div>
            <Show when=has_second_factor()>
                <FreshCode id="remove-passkey-code" error/>
            </Show>
            <div class="form-actions">
                <button type="submit" class="btn secondary">"Remove"</button>
            </div>
        </ActionForm>
    }
}
