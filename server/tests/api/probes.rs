//! The attacks found by reading the account code as an attacker would, each sent the
//! way that attacker would send it: through the public endpoints, with the real mail.
//! Every one of them succeeded against the code before its fix.

use crate::helpers::{
    PASSWORD, TestApp, TestOptions, from_address, mail_to, spawn_app, spawn_app_with, wait_for_mail,
};
use app::model::Role;

const NEW_PASSWORD: &str = "Granite-Harbour-Lamp-73";

async fn behind_a_proxy() -> TestApp {
    let mut options = TestOptions::default();
    options.serve.trusted_proxies = vec!["127.0.0.1".parse().expect("a network")];
    spawn_app_with(options).await
}

async fn disable(app: &TestApp, username: &str) {
    sqlx::query("UPDATE users SET status = 'disabled' WHERE username_key = ?")
        .bind(username.to_lowercase())
        .execute(&app.mysql)
        .await
        .expect("disable the account");
}

/// An address change the thief asked for, and its confirmation link (mailed to them).
async fn thief_asks_for_the_address(
    app: &TestApp,
    thief: &reqwest::Client,
    theirs: &str,
) -> String {
    let (status, body) = app
        .call(
            thief,
            "email/change",
            &[("current_password", PASSWORD), ("email", theirs)],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    wait_for_mail(theirs, "Confirm your email address")
        .await
        .token_for("/verify-email")
}

/// 1. With a phished session the thief asks for their own address; the owner changes
/// the password as the notice says. The thief's link must then confirm nothing.
#[tokio::test]
async fn a_stolen_sessions_address_change_dies_when_the_owner_changes_the_password() {
    let app = spawn_app().await;
    let owner = app.user_with_role("rosa", Role::Customer).await;
    let thief = app.new_client();
    assert_eq!(app.login(&thief, "rosa", PASSWORD).await.0, 200);
    let theirs = app.email_for("rosa.thief");
    let token = thief_asks_for_the_address(&app, &thief, &theirs).await;
    wait_for_mail(
        &app.email_for("rosa"),
        "Your email address is being changed",
    )
    .await;

    let (status, body) = app
        .call(
            &owner,
            "password/change",
            &[
                ("current_password", PASSWORD),
                ("new_password", NEW_PASSWORD),
                ("confirm_password", NEW_PASSWORD),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = app
        .call(&app.new_client(), "email/verify", &[("token", &token)])
        .await;
    assert_eq!(status, 409, "the pending change died with the password");
    assert_eq!(app.me(&owner).await["email"], app.email_for("rosa"));
}

/// 1. "Log out everywhere" ends the thief's pending address change too.
#[tokio::test]
async fn logging_out_everywhere_voids_a_pending_address_change() {
    let app = spawn_app().await;
    let owner = app.user_with_role("sami", Role::Customer).await;
    let thief = app.new_client();
    assert_eq!(app.login(&thief, "sami", PASSWORD).await.0, 200);
    let token = thief_asks_for_the_address(&app, &thief, &app.email_for("sami.thief")).await;
    assert_eq!(app.call(&owner, "sessions/revoke-all", &[]).await.0, 200);
    let (status, _) = app
        .call(&app.new_client(), "email/verify", &[("token", &token)])
        .await;
    assert_eq!(status, 409);
}

/// 1. New recovery codes are announced to the address on file: a thief who takes them
/// with a stolen session does not do so unseen.
#[tokio::test]
async fn new_recovery_codes_are_announced_by_mail() {
    let app = spawn_app().await;
    app.user_with_role("tove", Role::Customer).await;
    app.enrol_second_factor(app.user_id("tove").await).await;
    let owner = app.new_client();
    assert_eq!(app.login(&owner, "tove", PASSWORD).await.0, 200);
    let (status, body) = app
        .call(
            &owner,
            "two-factor/recovery-codes",
            &[("current_password", PASSWORD)],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    wait_for_mail(
        &app.email_for("tove"),
        "New recovery codes were made for your account",
    )
    .await;
}

/// 2. A thief registers with a buyer's address. The buyer's confirmation page names the
/// account that asked, and "This is not my account" spends the link for good.
#[tokio::test]
async fn a_confirmation_link_names_the_account_and_can_be_refused() {
    let app = spawn_app().await;
    let victim = app.email_for("buyer");
    let thief = app.new_client();
    let (status, body) = app
        .register_with_email(&thief, "friendly-store", &victim, "customer")
        .await;
    assert_eq!(status, 200, "{body}");
    let mail = wait_for_mail(&victim, "Confirm your email address").await;
    assert!(
        mail.text.contains("\"friendly-store\"") && mail.text.contains("not my account"),
        "the mail names the account and says what to do: {}",
        mail.text
    );
    let token = mail.token_for("/verify-email");
    let buyer = app.new_client();
    let (status, pending) = app
        .call(&buyer, "email/pending", &[("token", &token)])
        .await;
    assert_eq!(status, 200, "{pending}");
    assert_eq!(pending["username"], "friendly-store");
    assert_eq!(pending["email"], victim.as_str());

    assert_eq!(
        app.call(&buyer, "email/decline", &[("token", &token)])
            .await
            .0,
        200
    );
    assert_eq!(
        app.call(&thief, "email/verify", &[("token", &token)])
            .await
            .0,
        409,
        "a refused link confirms nothing"
    );
    let declined: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM auth_audit WHERE event = 'email_declined'")
            .fetch_one(&app.mysql)
            .await
            .unwrap();
    assert_eq!(declined, 1);
}

/// 3. A day of slow guessing closes the second step for the day, and the owner is told.
#[tokio::test]
async fn slow_guessing_of_second_step_codes_is_capped_per_day() {
    let app = spawn_app().await;
    app.user_with_role("ugo", Role::TechnicalWorker).await;
    let id = app.user_id("ugo").await;
    // Twenty wrong codes spread over the day so far, each within the 15-minute limit.
    sqlx::query(
        "INSERT INTO counters (kind, subject, hits, window_start, last_hit_at, refused_since_hit) \
         VALUES ('second_factor_day', ?, 20, UTC_TIMESTAMP(6) - INTERVAL 20 HOUR, \
         UTC_TIMESTAMP(6) - INTERVAL 20 MINUTE, FALSE) \
         ON DUPLICATE KEY UPDATE hits = 20, window_start = VALUES(window_start), \
         last_hit_at = VALUES(last_hit_at), refused_since_hit = FALSE",
    )
    .bind(id.to_string())
    .execute(&app.mysql)
    .await
    .unwrap();
    let thief = app.new_client();
    let (status, body) = app.password_login(&thief, "ugo", PASSWORD).await;
    assert_eq!((status, &body["second_factor"]), (200, &"Pending".into()));
    let (status, body) = app
        .call(&thief, "login/second-step", &[("code", "000000")])
        .await;
    assert_eq!(status, 429, "{body}");
    let right = app.next_code(id).await;
    assert_eq!(
        app.call(&thief, "login/second-step", &[("code", &right)])
            .await
            .0,
        429,
        "closed for the day, even to a right code"
    );
    wait_for_mail(
        &app.email_for("ugo"),
        "Someone is guessing your two-factor codes",
    )
    .await;
}

/// 4. A store named to run as a formula in a spreadsheet set to `;` stays one cell.
#[tokio::test]
async fn a_formula_hidden_behind_a_semicolon_stays_one_csv_cell() {
    let app = spawn_app().await;
    let customer = app.user_with_role("vera", Role::Customer).await;
    let worker = app.user_with_role("will", Role::TechnicalWorker).await;
    let store = "x;=1+2;y";
    let input = serde_json::json!({
        "token": "",
        "input": {
            "sale_date": "2026-03-04T10:30",
            "items": [{ "name": "printer paper", "tags": ["office"], "price": "12.50", "quantity": "3" }],
            "store_location": store,
            "customer_gender": "F",
            "customer_age": "41",
            "customer_email": app.email_for("vera"),
            "customer_satisfaction": "4",
            "coupon_used": false,
            "purchase_method": "Online",
        }
    });
    let (status, body) = app.call_json(&worker, "sales/create", &input).await;
    assert_eq!(status, 200, "{body}");
    let csv = customer
        .get(app.url("/api/export/purchases.csv"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(csv.contains("\"x;=1+2;y\""), "{csv}");
}

/// 5. One IPv6 /64 is one client: fresh addresses from it share the registration limit.
#[tokio::test]
async fn addresses_of_one_ipv6_64_share_one_limit() {
    let app = behind_a_proxy().await;
    let mut statuses = Vec::new();
    for i in 0..11 {
        let client = from_address(&app, &format!("2001:db8:5:6::{:x}", i + 1));
        let name = format!("spray{i}");
        statuses.push(app.register(&client, &name, "customer").await.0);
    }
    assert_eq!(statuses[..10], [200; 10]);
    assert_eq!(statuses[10], 429, "{statuses:?}");
    let elsewhere = from_address(&app, "2001:db8:5:7::1");
    assert_eq!(
        app.register(&elsewhere, "neighbour", "customer").await.0,
        200,
        "the next /64 is another client"
    );
}

/// 6. A self-registered customer who never confirmed an address holds no stream.
#[tokio::test]
async fn an_unconfirmed_customer_gets_no_live_stream() {
    let app = spawn_app().await;
    let client = app.new_client();
    assert_eq!(app.register(&client, "hush", "customer").await.0, 200);
    let (status, body) = app.login(&client, "hush", PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    let res = client.get(app.url("/api/events")).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 403);
}

/// 7. Asking to move to an address that has an account tells the old address just the
/// same: what it receives says nothing about the new one.
#[tokio::test]
async fn an_address_change_tells_the_old_address_whether_or_not_the_new_is_taken() {
    let app = spawn_app().await;
    app.user_with_role("owner7", Role::Customer).await;
    let prober = app.user_with_role("prober", Role::Customer).await;
    let (status, body) = app
        .call(
            &prober,
            "email/change",
            &[
                ("current_password", PASSWORD),
                ("email", &app.email_for("owner7")),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    wait_for_mail(
        &app.email_for("prober"),
        "Your email address is being changed",
    )
    .await;
}

/// 9. A username that reads as a web address is not a link in the portal's mail.
#[tokio::test]
async fn a_username_like_a_web_address_is_no_link_in_mail() {
    let app = spawn_app().await;
    let email = app.email_for("linky");
    let (status, body) = app
        .register_with_email(&app.new_client(), "login-supplyco.com", &email, "customer")
        .await;
    assert_eq!(status, 200, "{body}");
    let mail = wait_for_mail(&email, "Confirm your email address").await;
    assert!(!mail.text.contains("login-supplyco.com"), "{}", mail.text);
    assert!(
        mail.text.contains("login-supplyco\u{2024}com"),
        "{}",
        mail.text
    );
}

async fn reset_link(app: &TestApp, address: &str) -> String {
    let (status, _) = app
        .call(&app.new_client(), "password/forgot", &[("email", address)])
        .await;
    assert_eq!(status, 200);
    wait_for_mail(address, "Reset your password")
        .await
        .token_for("/reset-password")
}

async fn reset_with(app: &TestApp, token: &str) -> u16 {
    app.call(
        &app.new_client(),
        "password/reset",
        &[
            ("token", token),
            ("new_password", NEW_PASSWORD),
            ("confirm_password", NEW_PASSWORD),
        ],
    )
    .await
    .0
}

/// 10. Finishing an address change voids reset links sent to the old address, and
/// tells the old address.
#[tokio::test]
async fn reset_links_to_an_old_address_die_with_the_change() {
    let app = spawn_app().await;
    let client = app.user_with_role("xena", Role::Customer).await;
    let old = app.email_for("xena");
    let token = reset_link(&app, &old).await;
    let new = app.email_for("xena.new");
    let confirm = thief_asks_for_the_address(&app, &client, &new).await;
    assert_eq!(
        app.call(&client, "email/verify", &[("token", &confirm)])
            .await
            .0,
        200
    );
    wait_for_mail(&old, "Your email address was changed").await;
    assert_eq!(reset_with(&app, &token).await, 409);
}

/// 10. A reset link works only while the account has the address it was sent to.
#[tokio::test]
async fn a_reset_link_is_void_once_the_account_has_another_address() {
    let app = spawn_app().await;
    app.user_with_role("yann", Role::Customer).await;
    let old = app.email_for("yann");
    let token = reset_link(&app, &old).await;
    // The address moved by a path that voids no links (a manager's fix in the database).
    sqlx::query("UPDATE users SET email = ? WHERE username_key = 'yann'")
        .bind(app.email_for("yann.moved"))
        .execute(&app.mysql)
        .await
        .unwrap();
    assert_eq!(reset_with(&app, &token).await, 409);
}

/// 10. A disabled account cannot confirm an address.
#[tokio::test]
async fn a_disabled_account_confirms_no_address() {
    let app = spawn_app().await;
    let client = app.new_client();
    assert_eq!(app.register(&client, "zoe", "customer").await.0, 200);
    let token = wait_for_mail(&app.email_for("zoe"), "Confirm your email address")
        .await
        .token_for("/verify-email");
    disable(&app, "zoe").await;
    assert_eq!(
        app.call(&client, "email/verify", &[("token", &token)])
            .await
            .0,
        409
    );
}

/// 11. A disabled account answers a right password exactly as a wrong one; its owner
/// learns why by mail.
#[tokio::test]
async fn a_disabled_account_does_not_confirm_its_password() {
    let app = spawn_app().await;
    app.user_with_role("abel", Role::Customer).await;
    disable(&app, "abel").await;
    let right = app
        .password_login(&app.new_client(), "abel", PASSWORD)
        .await;
    let wrong = app
        .password_login(&app.new_client(), "abel", "Not-The-Password-11")
        .await;
    assert_eq!(right, wrong);
    assert_eq!(right.0, 401);
    wait_for_mail(&app.email_for("abel"), "A login to your disabled account").await;
    assert_eq!(
        mail_to(&app.email_for("abel"))
            .await
            .iter()
            .filter(|m| m.subject.contains("disabled"))
            .count(),
        1,
        "only the right password is news to the owner"
    );
}

/// 12. A manager cannot strip another manager's second factor.
#[tokio::test]
async fn a_manager_cannot_reset_another_managers_second_factor() {
    let app = spawn_app().await;
    let manager = app.user_with_role("boss1", Role::SeniorManagement).await;
    app.user_with_role("boss2", Role::SeniorManagement).await;
    let other = app.user_id("boss2").await.to_string();
    let (status, body) = app
        .call(&manager, "admin/users/reset-two-factor", &[("id", &other)])
        .await;
    assert_eq!(status, 409, "{body}");
    let factors: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM second_factors WHERE user_id = ?")
        .bind(app.user_id("boss2").await)
        .fetch_one(&app.mysql)
        .await
        .unwrap();
    assert_eq!(factors, 1);
}

/// 8. A copy of the database holds no usable second-factor secret: what is stored is
/// sealed for its account, and a plain one left from before is sealed by a reseal.
#[tokio::test]
async fn second_factor_secrets_are_sealed_at_rest() {
    use app::server::auth::secret_keys::{SecretKeys, reseal_all};
    // Keys of its own, as outside loopback: the published development key protects nothing.
    const KEYS: &str = "1:0707070707070707070707070707070707070707070707070707070707070707";
    let mut options = TestOptions::default();
    options.serve.totp_keys = Some(KEYS.into());
    let app = spawn_app_with(options).await;
    let client = app.user_with_role("cara", Role::Customer).await;
    let (status, enrolment) = app.call(&client, "two-factor/begin", &[]).await;
    assert_eq!(status, 200, "{enrolment}");
    let shown = enrolment["secret"].as_str().unwrap().to_string();
    let id = app.user_id("cara").await;
    let stored: String = sqlx::query_scalar("SELECT secret FROM second_factors WHERE user_id = ?")
        .bind(id)
        .fetch_one(&app.mysql)
        .await
        .unwrap();
    assert!(!stored.contains(&shown), "{stored}");
    let keys = SecretKeys::parse(KEYS).unwrap();
    assert_eq!(keys.open(id, &stored).unwrap(), shown);
    assert!(SecretKeys::development().open(id, &stored).is_err());
    let stranger =
        SecretKeys::parse("9:0909090909090909090909090909090909090909090909090909090909090909")
            .unwrap();
    assert!(
        stranger.open(id, &stored).is_err(),
        "another key opens nothing"
    );

    // A secret written in plain text before sealing: the reseal seals it, and the
    // account's codes still work.
    let code = app::server::auth::second_factor::code_at(
        &shown,
        app::server::auth::second_factor::current_step(),
    )
    .unwrap();
    let mailed = crate::helpers::mailed_setup_code(&app.email_for("cara")).await;
    let (status, body) = app
        .call(
            &client,
            "two-factor/confirm",
            &[("code", &code), ("mailed_code", &mailed)],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    sqlx::query("UPDATE second_factors SET secret = ? WHERE user_id = ?")
        .bind(&shown)
        .bind(id)
        .execute(&app.mysql)
        .await
        .unwrap();
    assert!(reseal_all(&app.mysql, &keys).await.unwrap() >= 1);
    let resealed: String =
        sqlx::query_scalar("SELECT secret FROM second_factors WHERE user_id = ?")
            .bind(id)
            .fetch_one(&app.mysql)
            .await
            .unwrap();
    assert!(resealed.starts_with("v1:") && !resealed.contains(&shown));
    // The step after the one spent at confirmation, inside the one step of skew allowed.
    let again = app.new_client();
    assert_eq!(app.password_login(&again, "cara", PASSWORD).await.0, 200);
    let next = app::server::auth::second_factor::code_at(
        &shown,
        app::server::auth::second_factor::current_step() + 1,
    )
    .unwrap();
    let (status, body) = app
        .call(&again, "login/second-step", &[("code", &next)])
        .await;
    assert_eq!(status, 200, "{body}");
}

/// Sensitive changes need a fresh proof of the second factor: a session whose login
/// proved it more than ten minutes ago (a stolen one, say) must give a code again.
#[tokio::test]
async fn sensitive_changes_need_a_recent_second_factor_proof() {
    let app = spawn_app().await;
    let worker = app.user_with_role("dora", Role::TechnicalWorker).await;
    let id = app.user_id("dora").await;
    sqlx::query(
        "UPDATE user_sessions SET second_factor_at = UTC_TIMESTAMP(6) - INTERVAL 11 MINUTE WHERE user_id = ?",
    )
    .bind(id)
    .execute(&app.mysql)
    .await
    .unwrap();
    let new = app.email_for("dora.new");
    let change = |code: Option<String>| {
        let (app, worker, new) = (&app, &worker, &new);
        async move {
            let mut form = vec![
                ("current_password", PASSWORD.to_string()),
                ("email", new.clone()),
            ];
            if let Some(code) = code {
                form.push(("code", code));
            }
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            app.call(worker, "email/change", &form).await
        }
    };
    let (status, body) = change(None).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("code"), "{body}");
    let (status, _) = app
        .call(
            &worker,
            "two-factor/recovery-codes",
            &[("current_password", PASSWORD)],
        )
        .await;
    assert_eq!(status, 400, "new recovery codes too");
    assert_eq!(change(Some("000000".into())).await.0, 400, "a wrong code");
    assert!(mail_to(&new).await.is_empty(), "nothing was sent");

    let (status, body) = change(Some(app.next_code(id).await)).await;
    assert_eq!(status, 200, "{body}");
    // That code is the session's newest proof: the next change within ten minutes
    // needs none.
    let (status, body) = app
        .call(
            &worker,
            "two-factor/recovery-codes",
            &[("current_password", PASSWORD)],
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

/// 12. The password of a staff account without a factor (new, or reset by a manager)
/// is not enough to attach the thief's authenticator: the set-up needs the code mailed
/// to the account's address.
#[tokio::test]
async fn a_password_alone_cannot_attach_an_authenticator() {
    let app = spawn_app().await;
    app.user_with_role("erin", Role::TechnicalWorker).await;
    let id = app.user_id("erin").await;
    sqlx::query("DELETE FROM second_factors WHERE user_id = ?")
        .bind(id)
        .execute(&app.mysql)
        .await
        .unwrap();
    let thief = app.new_client();
    let (status, body) = app.password_login(&thief, "erin", PASSWORD).await;
    assert_eq!((status, &body["second_factor"]), (200, &"Missing".into()));
    let (status, enrolment) = app.call(&thief, "two-factor/begin", &[]).await;
    assert_eq!(status, 200, "{enrolment}");
    let secret = enrolment["secret"].as_str().unwrap();
    let code = app::server::auth::second_factor::code_at(
        secret,
        app::server::auth::second_factor::current_step(),
    )
    .unwrap();
    for mailed in ["", "12345678"] {
        let (status, body) = app
            .call(
                &thief,
                "two-factor/confirm",
                &[("code", &code), ("mailed_code", mailed)],
            )
            .await;
        assert_eq!(status, 400, "{body}");
    }
    let confirmed: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM second_factors WHERE user_id = ? AND confirmed_at IS NOT NULL",
    )
    .bind(id)
    .fetch_one(&app.mysql)
    .await
    .unwrap();
    assert_eq!(confirmed, 0);
    wait_for_mail(
        &app.email_for("erin"),
        "Your code to set up two-factor authentication",
    )
    .await;
}
