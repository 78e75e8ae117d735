//! Passkeys through the public endpoints, with a software authenticator in place of the
//! browser's: what a passkey proves, and what a thief holding a session, a ceremony
//! token or a recorded answer can do with it.

use crate::authenticator::Authenticator;
use crate::helpers::{PASSWORD, TestApp, spawn_app, wait_for_mail};
use app::model::Role;
use serde_json::Value;

/// The browser's origin: passkeys are offered at `localhost` when the portal's address
/// is a loopback one.
fn origin(app: &TestApp) -> String {
    app.address.replace("127.0.0.1", "localhost")
}

/// Begins adding a passkey as `client`: the ceremony token and the options.
async fn begin(app: &TestApp, client: &reqwest::Client, code: Option<&str>) -> (String, String) {
    let mut form = vec![("current_password", PASSWORD)];
    if let Some(code) = code {
        form.push(("code", code));
    }
    let (status, body) = app.call(client, "passkeys/begin", &form).await;
    assert_eq!(status, 200, "{body}");
    challenge(&body)
}

fn challenge(body: &Value) -> (String, String) {
    (
        body["ceremony"].as_str().expect("a ceremony").to_string(),
        body["options"].as_str().expect("options").to_string(),
    )
}

async fn finish(
    app: &TestApp,
    client: &reqwest::Client,
    ceremony: &str,
    credential: &str,
) -> (u16, Value) {
    app.call(
        client,
        "passkeys/finish",
        &[
            ("ceremony", ceremony),
            ("name", "Test key"),
            ("credential", credential),
        ],
    )
    .await
}

/// Adds a passkey to the account `client` is signed in to; answers its authenticator.
async fn add_passkey(app: &TestApp, client: &reqwest::Client) -> Authenticator {
    let mut authenticator = Authenticator::new(&origin(app));
    let (ceremony, options) = begin(app, client, None).await;
    let (status, body) = finish(app, client, &ceremony, &authenticator.create(&options)).await;
    assert_eq!(status, 200, "{body}");
    authenticator
}

async fn begin_sign_in(app: &TestApp, client: &reqwest::Client) -> (String, String) {
    let (status, body) = app.call(client, "passkeys/sign-in/begin", &[]).await;
    assert_eq!(status, 200, "{body}");
    challenge(&body)
}

async fn finish_sign_in(
    app: &TestApp,
    client: &reqwest::Client,
    ceremony: &str,
    credential: &str,
) -> (u16, Value) {
    app.call(
        client,
        "passkeys/sign-in/finish",
        &[("ceremony", ceremony), ("credential", credential)],
    )
    .await
}

async fn signed_in_as(app: &TestApp, client: &reqwest::Client) -> Value {
    app.call(client, "me", &[]).await.1
}

#[tokio::test]
async fn a_passkey_signs_in_alone_with_both_factors_and_each_ceremony_finishes_once() {
    let app = spawn_app().await;
    let worker = app.user_with_role("paz", Role::TechnicalWorker).await;
    let mut authenticator = add_passkey(&app, &worker).await;
    wait_for_mail(&app.email_for("paz"), "A passkey was added to your account").await;

    let browser = app.new_client();
    let (ceremony, options) = begin_sign_in(&app, &browser).await;
    let answer = authenticator.get(&options);
    let (status, body) = finish_sign_in(&app, &browser, &ceremony, &answer).await;
    assert_eq!(status, 200, "{body}");
    let me = signed_in_as(&app, &browser).await;
    assert_eq!(me["username"], "paz");
    assert_eq!(
        me["second_factor"], "Passed",
        "a passkey is both factors: {me}"
    );
    let (status, body) = app.call(&browser, "sessions", &[]).await;
    assert_eq!(status, 200, "a complete login: {body}");

    // A recorded answer, replayed: its ceremony is spent, and another ceremony's
    // challenge is not the one it signed.
    let thief = app.new_client();
    let (status, body) = finish_sign_in(&app, &thief, &ceremony, &answer).await;
    assert_eq!(status, 409, "a spent ceremony: {body}");
    let (fresh, _) = begin_sign_in(&app, &thief).await;
    let (status, body) = finish_sign_in(&app, &thief, &fresh, &answer).await;
    assert_eq!(status, 400, "a signature over another challenge: {body}");
    assert!(signed_in_as(&app, &thief).await.is_null());
}

#[tokio::test]
async fn a_registration_finishes_only_in_the_login_that_began_it() {
    let app = spawn_app().await;
    let owner = app.user_with_role("quin", Role::Customer).await;
    let other_login = app.new_client();
    assert_eq!(app.login(&other_login, "quin", PASSWORD).await.0, 200);
    let mut authenticator = Authenticator::new(&origin(&app));
    let (ceremony, options) = begin(&app, &owner, None).await;
    let credential = authenticator.create(&options);

    let (status, body) = finish(&app, &other_login, &ceremony, &credential).await;
    assert_eq!(status, 409, "another login of the same account: {body}");
    let (status, body) = finish(&app, &app.new_client(), &ceremony, &credential).await;
    assert_eq!(status, 401, "no login at all: {body}");
    // Those attempts did not spend the owner's ceremony.
    let (status, body) = finish(&app, &owner, &ceremony, &credential).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn adding_a_passkey_needs_the_password_and_a_recent_second_factor() {
    let app = spawn_app().await;
    let manager = app.user_with_role("rhea", Role::SeniorManagement).await;
    let (status, body) = app
        .call(
            &manager,
            "passkeys/begin",
            &[("current_password", "Not-The-Password-1")],
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("current_password"), "{body}");

    // A session whose second step is more than ten minutes old, as a stolen one is.
    sqlx::query(
        "UPDATE user_sessions SET second_factor_at = UTC_TIMESTAMP(6) - INTERVAL 11 MINUTE \
         WHERE user_id = (SELECT id FROM users WHERE username_key = 'rhea')",
    )
    .execute(&app.mysql)
    .await
    .expect("age the session");
    let (status, body) = app
        .call(
            &manager,
            "passkeys/begin",
            &[("current_password", PASSWORD)],
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("\"code\""), "{body}");
    let id: u64 = sqlx::query_scalar("SELECT id FROM users WHERE username_key = 'rhea'")
        .fetch_one(&app.mysql)
        .await
        .expect("the user");
    let code = app.next_code(id).await;
    let mut authenticator = Authenticator::new(&origin(&app));
    let (ceremony, options) = begin(&app, &manager, Some(&code)).await;
    let (status, body) = finish(&app, &manager, &ceremony, &authenticator.create(&options)).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_removed_passkey_and_a_disabled_accounts_passkey_sign_in_nobody() {
    let app = spawn_app().await;
    let customer = app.user_with_role("sol", Role::Customer).await;
    let mut kept = add_passkey(&app, &customer).await;
    let mut removed = add_passkey(&app, &customer).await;
    let (status, body) = app.call(&customer, "passkeys", &[]).await;
    assert_eq!(status, 200, "{body}");
    let keys = body["keys"].as_array().expect("a list").clone();
    assert_eq!(keys.len(), 2, "{body}");
    let second = keys[1]["id"].as_u64().expect("an id").to_string();
    let (status, body) = app
        .call(
            &customer,
            "passkeys/remove",
            &[("id", &second), ("current_password", PASSWORD)],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    wait_for_mail(
        &app.email_for("sol"),
        "A passkey was removed from your account",
    )
    .await;

    let browser = app.new_client();
    let (ceremony, options) = begin_sign_in(&app, &browser).await;
    let (status, body) = finish_sign_in(&app, &browser, &ceremony, &removed.get(&options)).await;
    assert_eq!(status, 400, "a removed passkey: {body}");
    assert!(signed_in_as(&app, &browser).await.is_null());

    sqlx::query("UPDATE users SET status = 'disabled' WHERE username_key = 'sol'")
        .execute(&app.mysql)
        .await
        .expect("disable");
    let (ceremony, options) = begin_sign_in(&app, &browser).await;
    let (status, body) = finish_sign_in(&app, &browser, &ceremony, &kept.get(&options)).await;
    assert_eq!(
        status, 400,
        "a disabled account's passkey is refused like any other: {body}"
    );
    assert!(signed_in_as(&app, &browser).await.is_null());
}

/// A manager resetting a lost device's factor, and a customer closing their account,
/// leave no passkey that signs in.
#[tokio::test]
async fn a_factor_reset_and_a_closed_account_take_the_passkeys_with_them() {
    let app = spawn_app().await;
    let manager = app.user_with_role("tess", Role::SeniorManagement).await;
    let worker = app.user_with_role("ugo", Role::TechnicalWorker).await;
    let mut lost = add_passkey(&app, &worker).await;
    let id = app.user_id("ugo").await.to_string();
    let (status, body) = app
        .call(&manager, "admin/users/reset-two-factor", &[("id", &id)])
        .await;
    assert_eq!(status, 200, "{body}");
    let browser = app.new_client();
    let (ceremony, options) = begin_sign_in(&app, &browser).await;
    let (status, body) = finish_sign_in(&app, &browser, &ceremony, &lost.get(&options)).await;
    assert_eq!(status, 400, "the lost device's passkey: {body}");

    let customer = app.user_with_role("vera", Role::Customer).await;
    let mut kept = add_passkey(&app, &customer).await;
    let (status, body) = app
        .call(
            &customer,
            "account/close",
            &[("current_password", PASSWORD)],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let left: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM passkeys p JOIN users u ON u.id = p.user_id WHERE u.username_key LIKE '#closed-%'",
    )
    .fetch_one(&app.mysql)
    .await
    .expect("count");
    assert_eq!(left, 0, "a closed account keeps no passkey");
    let (ceremony, options) = begin_sign_in(&app, &browser).await;
    let (status, body) = finish_sign_in(&app, &browser, &ceremony, &kept.get(&options)).await;
    assert_eq!(status, 400, "a closed account's passkey: {body}");
}
