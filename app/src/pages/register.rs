use crate::api::auth::Register;
use crate::components::{Field, FormError, app_action_error, field_error};
use crate::model::{Email, NewPassword, Role, Username};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::{components::A, hooks::use_query_map};

/// Registration with inline validation: the same `parse` functions the server runs
/// produce the messages here, shown once a field has been left. The answer is always
/// "check your inbox": whether the address already had an account is told to its owner
/// by mail, not to whoever typed it.
#[component]
pub fn RegisterPage() -> impl IntoView {
    let register = ServerAction::<Register>::new();
    let query = use_query_map();
    let sent = move || {
        matches!(register.value().get(), Some(Ok(()))) || query.with(|q| q.get("sent")).is_some()
    };
    view! {
        <Title text="Register"/>
        <Show when=sent fallback=move || view! { <RegisterForm register/> }>
            <section class="card narrow" data-testid="registered" role="status">
                <h1>"Check your inbox"</h1>
                <p>
                    "We sent a message to the address you gave. Open the link in it to confirm the "
                    "address; if the address has an account already, the message says what to do instead."
                </p>
                <p class="muted">
                    "Customers see their purchases once the address is confirmed. Technical worker and "
                    "senior management accounts also need a senior manager's approval."
                </p>
                <p><A href="/login">"Go to the login page"</A></p>
            </section>
        </Show>
    }
}

#[component]
fn RegisterForm(register: ServerAction<Register>) -> impl IntoView {
    let result = app_action_error(register);
    let username = RwSignal::new(String::new());
    let email = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let confirm = RwSignal::new(String::new());
    let touched = RwSignal::new(std::collections::HashSet::<&'static str>::new());
    let touch = move |f: &'static str| {
        Callback::new(move |_| {
            touched.update(|t| {
                t.insert(f);
            })
        })
    };
    let shown = move |f: &'static str, local: Option<String>| {
        let server = field_error(result, f).get();
        if touched.with(|t| t.contains(f)) {
            local.or(server)
        } else {
            server
        }
    };

    let username_error =
        Signal::derive(move || shown("username", Username::parse(&username.get()).err()));
    let email_error = Signal::derive(move || shown("email", Email::parse(&email.get()).err()));
    let password_error = Signal::derive(move || {
        shown(
            "password",
            NewPassword::parse(&password.get(), Some(&username.get()), Some(&email.get())).err(),
        )
    });
    let confirm_error = Signal::derive(move || {
        shown(
            "confirm_password",
            (password.get() != confirm.get()).then(|| "Passwords do not match".to_string()),
        )
    });
    let role_error = field_error(result, "role");
    let pending = register.pending();
    view! {
        <section class="card narrow">
            <h1>"Create an account"</h1>
            <p class="muted">
                "We send a link to your email address to confirm it. Technical worker and senior "
                "management accounts also need a senior manager's approval."
            </p>
            <FormError error=result/>
            <ActionForm action=register attr:class="stack" attr:aria-label="Register" attr:novalidate=true>
                <Field label="Username" name="username" autocomplete="username" value=username error=username_error
                    hint="3 to 32 letters, digits, '.', '_' or '-'" on_blur=touch("username")/>
                <Field label="Email" name="email" kind="email" autocomplete="email" value=email error=email_error on_blur=touch("email")/>
                <Field label="Password" name="password" kind="password" autocomplete="new-password" value=password
                    error=password_error hint=PASSWORD_HINT on_blur=touch("password")/>
                <Field label="Confirm password" name="confirm_password" kind="password" autocomplete="new-password"
                    value=confirm error=confirm_error on_blur=touch("confirm_password")/>
                <div class="field">
                    <label for="f-role">"Role"</label>
                    <select id="f-role" name="role" aria-invalid=move || role_error.get().is_some().to_string()>
                        {Role::ALL.into_iter().map(|r| view! { <option value=r.as_str()>{r.label()}</option> }).collect_view()}
                    </select>
                    {move || role_error.get().map(|m| view! { <span class="field-error">{m}</span> })}
                </div>
                <div class="form-actions">
                    <button type="submit" class="btn" aria-busy=move || pending.get().to_string()>"Create account"</button>
                    <span class="muted">"Already registered? " <A href="/login">"Log in"</A></span>
                </div>
            </ActionForm>
        </section>
    }
}

// Kept in step with PASSWORD_MIN by the unit test below.
const PASSWORD_HINT: &str =
    "At least 12 characters; not your username or email, and not a common password";

#[cfg(test)]
mod tests {
    #[test]
    fn hint_states_the_minimum() {
        assert!(super::PASSWORD_HINT.contains(&crate::model::account::PASSWORD_MIN.to_string()));
    }
}
