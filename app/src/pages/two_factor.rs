use crate::api::auth::{
    BeginTwoFactor, ConfirmTwoFactor, DisableTwoFactor, NewRecoveryCodes, my_two_factor,
};
use crate::auth::{RequireLogin, use_auth};
use crate::components::{FieldMessage, FormError, FreshCode, action_error};
use crate::model::{AppError, RecoveryCodes, TotpEnrolment};
use leptos::prelude::*;
use leptos_meta::Title;

/// Setting up and managing the second factor. Staff land here until they have one.
#[component]
pub fn TwoFactorPage() -> impl IntoView {
    let auth = use_auth();
    let begin = ServerAction::<BeginTwoFactor>::new();
    let confirm = ServerAction::<ConfirmTwoFactor>::new();
    let renew = ServerAction::<NewRecoveryCodes>::new();
    let disable = ServerAction::<DisableTwoFactor>::new();
    // Only a change asks the server again: re-drawing the form after a refused code would
    // empty the field the user is already typing the next code into.
    let changes = RwSignal::new(0usize);
    count_successes(confirm.value(), changes);
    count_successes(renew.value(), changes);
    count_successes(disable.value(), changes);
    let status = Resource::new(move || changes.get(), |_| my_two_factor());
    // Confirming passes the second step for this login: the guards must know at once.
    Effect::new(move |_| {
        if matches!(confirm.value().get(), Some(Ok(_))) {
            auth.refresh();
        }
    });
    let codes = Memo::new(move |_| {
        confirm
            .value()
            .get()
            .or_else(|| renew.value().get())
            .and_then(Result::ok)
    });
    view! {
        <Title text="Two-factor authentication"/>
        <RequireLogin>
            <section class="card" aria-labelledby="two-factor-title">
                <h1 id="two-factor-title">"Two-factor authentication"</h1>
                <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                    {move || status.get().map(|r| match r {
                        Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                        Ok(s) if s.enabled => view! {
                            <p class="success" data-testid="two-factor-on">
                                "On: logins ask for a code from your authenticator app. "
                                {format!("{} recovery codes left.", s.recovery_codes_left)}
                            </p>
                            <RenewCodes action=renew/>
                            {(!s.required).then(|| view! { <TurnOff action=disable/> })}
                        }.into_any(),
                        Ok(s) => view! {
                            {s.required.then(|| view! {
                                <p class="notice" role="status" data-testid="two-factor-required">
                                    "Staff accounts need a second factor: set it up to use your dashboard."
                                </p>
                            })}
                            <p>"Use an authenticator app (such as FreeOTP, Aegis or Google Authenticator): after your password, logins will also ask for the 6-digit code it shows."</p>
                            <Enrol begin confirm/>
                        }.into_any(),
                    })}
                </Transition>
                {move || codes.get().map(|codes| view! { <ShowCodes codes/> })}
            </section>
            <super::passkeys::PasskeysSection/>
        </RequireLogin>
    }
}

/// Counts the successful results of an action into `changes`.
fn count_successes<T: Send + Sync + 'static>(
    value: MappedSignal<Option<Result<T, AppError>>>,
    changes: RwSignal<usize>,
) {
    Effect::new(move |_| {
        if value.with(|v| matches!(v, Some(Ok(_)))) {
            changes.update(|n| *n += 1);
        }
    });
}

#[component]
fn Enrol(
    begin: ServerAction<BeginTwoFactor>,
    confirm: ServerAction<ConfirmTwoFactor>,
) -> impl IntoView {
    let error = Signal::derive(move || {
        action_error(begin.value())
            .get()
            .or_else(|| action_error(confirm.value()).get())
    });
    let enrolment = move || begin.value().get().and_then(Result::ok);
    view! {
        <FormError error/>
        {move || match enrolment() {
            None => view! {
                <ActionForm action=begin>
                    <button type="submit" class="btn">"Set up two-factor authentication"</button>
                </ActionForm>
            }.into_any(),
            Some(TotpEnrolment { secret, qr_svg, .. }) => view! {
                <ol class="steps">
                    <li>
                        "Scan this code with the app:"
                        <div class="qr" role="img" aria-label="QR code of the secret" inner_html=qr_svg></div>
                        "or type the secret by hand: "
                        <code data-testid="totp-secret">{secret}</code>
                    </li>
                    <li>
                        <ActionForm action=confirm attr:class="stack" attr:aria-label="Confirm the app">
                            <div class="field">
                                <label for="enrol-code">"The 6-digit code the app shows"</label>
                                <input id="enrol-code" name="code" autocomplete="one-time-code" inputmode="numeric" required/>
                                <FieldMessage error field="code"/>
                            </div>
                            <div class="field">
                                <label for="enrol-mailed">"The 8-digit code we mailed you"</label>
                                <input id="enrol-mailed" name="mailed_code" inputmode="numeric" required aria-describedby="enrol-mailed-hint"/>
                                <p id="enrol-mailed-hint" class="muted small">"Sent to your address just now: it proves the set-up is yours, not only your password's."</p>
                                <FieldMessage error field="mailed_code"/>
                            </div>
                            <div class="form-actions">
                                <button type="submit" class="btn">"Confirm"</button>
                            </div>
                        </ActionForm>
                    </li>
                </ol>
            }.into_any(),
        }}
    }
}

/// The current-password field of the forms that change the second factor.
#[component]
fn CurrentPassword(id: &'static str, error: Signal<Option<AppError>>) -> impl IntoView {
    view! {
        <label for=id>"Current password"</label>
        <input id=id name="current_password" type="password" autocomplete="current-password" required/>
        <FieldMessage error field="current_password"/>
    }
}

#[component]
fn RenewCodes(action: ServerAction<NewRecoveryCodes>) -> impl IntoView {
    let error = action_error(action.value());
    view! {
        <ActionForm action attr:class="inline-form" attr:aria-label="New recovery codes">
            <FormError error/>
            <CurrentPassword id="renew-password" error/>
            <FreshCode id="renew-code" error/>
            <button type="submit" class="btn secondary">"New recovery codes"</button>
            <span class="muted small">"The codes you have now stop working."</span>
        </ActionForm>
    }
}

#[component]
fn TurnOff(action: ServerAction<DisableTwoFactor>) -> impl IntoView {
    let error = action_error(action.value());
    view! {
        <ActionForm action attr:class="inline-form" attr:aria-label="Turn off two-factor authentication">
            <FormError error/>
            <CurrentPassword id="disable-password" error/>
            <FreshCode id="disable-code" error/>
            <button type="submit" class="btn secondary">"Turn off"</button>
            <span class="muted small">"Logins will ask for your password only."</span>
        </ActionForm>
    }
}

#[component]
fn ShowCodes(codes: RecoveryCodes) -> impl IntoView {
    view! {
        <section class="card notice" aria-labelledby="codes-title" data-testid="recovery-codes">
            <h2 id="codes-title">"Your recovery codes"</h2>
            <p>"Each works once, in place of a code from the app. Keep them somewhere safe: they are not shown again."</p>
            <ul class="codes">{codes.0.into_iter().map(|c| view! { <li><code>{c}</code></li> }).collect_view()}</ul>
            <p><a href="/dashboard">"Continue to your dashboard"</a></p>
        </section>
    }
}
