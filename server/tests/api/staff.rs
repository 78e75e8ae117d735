//! Staff accountability: a second factor for every privileged login, every sales edit
//! attributed, each sale's history, and a manager always left to manage.

use crate::helpers::{PASSWORD, TOTP_SECRET, TestApp, mailed_setup_code, spawn_app, wait_for_mail};
use app::model::{Role, SaleInput};
use app::server::auth::second_factor::{code_at, current_step};
use app::server::sales::generate;
use serde_json::json;

async fn audit_count(app: &TestApp, event: &str, user_id: u64) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM auth_audit WHERE event = ? AND user_id = ?")
        .bind(event)
        .bind(user_id)
        .fetch_one(&app.mysql)
        .await
        .unwrap()
}

/// A code that is not the user's for any step near now.
fn wrong_code() -> String {
    let near: Vec<String> = (current_step() - 2..=current_step() + 2)
        .map(|s| code_at(TOTP_SECRET, s).unwrap())
        .collect();
    (0..1_000_000)
        .map(|n| format!("{n:06}"))
        .find(|c| !near.contains(c))
        .unwrap()
}

#[tokio::test]
async fn staff_without_a_second_factor_reach_only_their_own_pages() {
    let app = spawn_app().await;
    let input = app::model::RegistrationInput {
        username: "no.factor".into(),
        email: app.email_for("no.factor"),
        password: PASSWORD.into(),
        confirm_password: PASSWORD.into(),
        role: "technical_worker".into(),
    };
    app::server::auth::accounts::create_active_user(&app.mysql, &input.parse().unwrap(), "test")
        .await
        .unwrap();
    let client = app.new_client();
    let (status, body) = app.login(&client, "no.factor", PASSWORD).await;
    assert_eq!(
        (status, body["second_factor"].as_str()),
        (200, Some("Missing"))
    );
    let (status, body) = app
        .call_json(&client, "sales/list", &json!({ "query": {} }))
        .await;
    assert_eq!((status, body.as_str()), (403, Some("SecondFactorRequired")));
    assert_eq!(app.call(&client, "sessions", &[]).await.0, 200);
    let page = client
        .get(app.url("/worker"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 302);
    assert_eq!(page.headers()["location"], "/profile/two-factor");

    // Setting it up through the API, as the profile page does, opens the dashboard.
    let (status, enrolment) = app.call(&client, "two-factor/begin", &[]).await;
    assert_eq!(status, 200, "{enrolment}");
    let secret = enrolment["secret"].as_str().unwrap();
    assert!(enrolment["qr_svg"].as_str().unwrap().starts_with("<svg"));
    assert!(
        enrolment["uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/")
    );
    let mailed = mailed_setup_code(&app.email_for("no.factor")).await;
    let (status, _) = app
        .call(
            &client,
            "two-factor/confirm",
            &[("code", &wrong_code()), ("mailed_code", &mailed)],
        )
        .await;
    assert_eq!(status, 400);
    let code = code_at(secret, current_step()).unwrap();
    // The password and the app are not enough: the mailbox proves the set-up too.
    let (status, body) = app
        .call(
            &client,
            "two-factor/confirm",
            &[("code", &code), ("mailed_code", "00000000")],
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("mailed_code"), "{body}");
    let (status, codes) = app
        .call(
            &client,
            "two-factor/confirm",
            &[("code", &code), ("mailed_code", &mailed)],
        )
        .await;
    assert_eq!(status, 200, "{codes}");
    assert_eq!(codes.as_array().unwrap().len(), 10);
    let (status, _) = app
        .call_json(&client, "sales/list", &json!({ "query": {} }))
        .await;
    assert_eq!(status, 200);
    let id = app.user_id("no.factor").await;
    assert_eq!(audit_count(&app, "second_factor_enabled", id).await, 1);
    // The code just used is spent.
    let other = app.new_client();
    app.password_login(&other, "no.factor", PASSWORD).await;
    assert_eq!(
        app.call(&other, "login/second-step", &[("code", &code)])
            .await
            .0,
        400
    );
}

#[tokio::test]
async fn wrong_codes_are_throttled_like_passwords_and_audited_once() {
    let app = spawn_app().await;
    app.user_with_role("guessed", Role::TechnicalWorker).await;
    let id = app.user_id("guessed").await;
    let client = app.new_client();
    app.password_login(&client, "guessed", PASSWORD).await;
    let wrong = wrong_code();
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(
            app.call(&client, "login/second-step", &[("code", &wrong)])
                .await
                .0,
        );
    }
    assert_eq!(&statuses[..5], &[400; 5]);
    assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
    // Throttled, even the right code waits.
    let right = app.next_code(id).await;
    assert_eq!(
        app.call(&client, "login/second-step", &[("code", &right)])
            .await
            .0,
        429
    );
    assert_eq!(audit_count(&app, "second_factor_failed", id).await, 5);
    assert_eq!(audit_count(&app, "second_factor_throttled", id).await, 1);
}

#[tokio::test]
async fn a_recovery_code_works_once() {
    let app = spawn_app().await;
    let client = app
        .user_with_role("lost.phone", Role::SeniorManagement)
        .await;
    let (status, codes) = app
        .call(
            &client,
            "two-factor/recovery-codes",
            &[("current_password", PASSWORD)],
        )
        .await;
    assert_eq!(status, 200, "{codes}");
    let code = codes[3].as_str().unwrap().to_uppercase();
    let first = app.new_client();
    app.password_login(&first, "lost.phone", PASSWORD).await;
    let (status, body) = app
        .call(&first, "login/second-step", &[("code", &code)])
        .await;
    assert_eq!(
        (status, body["second_factor"].as_str()),
        (200, Some("Passed"))
    );
    assert_eq!(app.call(&first, "admin/audit", &[]).await.0, 200);
    let second = app.new_client();
    app.password_login(&second, "lost.phone", PASSWORD).await;
    assert_eq!(
        app.call(&second, "login/second-step", &[("code", &code)])
            .await
            .0,
        400
    );
    let (_, status) = app.call(&first, "two-factor", &[]).await;
    assert_eq!(status["recovery_codes_left"], 9);
}

/// Two instances given the same code at once accept it once between them.
#[tokio::test]
async fn a_code_is_accepted_once_across_instances() {
    let app = spawn_app().await;
    app.user_with_role("twice", Role::TechnicalWorker).await;
    let id = app.user_id("twice").await;
    let other = app
        .spawn_instance(&crate::helpers::TestOptions::default().serve)
        .await;
    for _ in 0..3 {
        let (a, b) = (app.new_client(), app.new_client());
        app.password_login(&a, "twice", PASSWORD).await;
        app.password_login(&b, "twice", PASSWORD).await;
        let code = app.next_code(id).await;
        let send = |client: reqwest::Client, base: String| {
            let code = code.clone();
            async move {
                client
                    .post(format!("{base}/api/login/second-step"))
                    .form(&[("code", code)])
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }
        };
        let (x, y) = tokio::join!(send(a, app.address.clone()), send(b, other.clone()));
        let mut answers = [x, y];
        answers.sort();
        assert_eq!(answers, [200, 400]);
    }
}

#[tokio::test]
async fn a_managers_reset_of_a_second_factor_is_audited_and_ends_the_users_sessions() {
    let app = spawn_app().await;
    let manager = app.user_with_role("resetter", Role::SeniorManagement).await;
    let worker = app
        .user_with_role("phone.lost", Role::TechnicalWorker)
        .await;
    let id = app.user_id("phone.lost").await;
    let (status, body) = app
        .call(
            &manager,
            "admin/users/reset-two-factor",
            &[("id", &id.to_string())],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["two_factor"], false);
    assert_eq!(
        app.call(&worker, "sessions", &[]).await.0,
        401,
        "their sessions ended"
    );
    let row: (Option<u64>, Option<String>) = sqlx::query_as(
        "SELECT actor_id, detail FROM auth_audit WHERE event = 'second_factor_reset' AND user_id = ?",
    )
    .bind(id)
    .fetch_one(&app.mysql)
    .await
    .unwrap();
    assert_eq!(row.0, Some(app.user_id("resetter").await));
    wait_for_mail(
        &app.email_for("phone.lost"),
        "Your two-factor authentication was reset",
    )
    .await;
    let again = app.new_client();
    let (_, body) = app.login(&again, "phone.lost", PASSWORD).await;
    assert_eq!(body["second_factor"], "Missing", "they set a new one up");
    // Not one's own, and only where there is one.
    let own = app.user_id("resetter").await.to_string();
    assert_eq!(
        app.call(&manager, "admin/users/reset-two-factor", &[("id", &own)])
            .await
            .0,
        409
    );
    assert_eq!(
        app.call(
            &manager,
            "admin/users/reset-two-factor",
            &[("id", &id.to_string())]
        )
        .await
        .0,
        409
    );
}

#[tokio::test]
async fn customers_may_opt_in_and_out() {
    let app = spawn_app().await;
    let client = app.user_with_role("careful", Role::Customer).await;
    let (_, enrolment) = app.call(&client, "two-factor/begin", &[]).await;
    let secret = enrolment["secret"].as_str().unwrap().to_string();
    let code = code_at(&secret, current_step()).unwrap();
    let mailed = mailed_setup_code(&app.email_for("careful")).await;
    assert_eq!(
        app.call(
            &client,
            "two-factor/confirm",
            &[("code", &code), ("mailed_code", &mailed)]
        )
        .await
        .0,
        200
    );
    let next = app.new_client();
    let (_, body) = app.password_login(&next, "careful", PASSWORD).await;
    assert_eq!(body["second_factor"], "Pending");
    assert_eq!(app.call(&next, "sales/mine", &[]).await.0, 401);
    let (status, _) = app
        .call(
            &client,
            "two-factor/disable",
            &[("current_password", "wrong")],
        )
        .await;
    assert_eq!(status, 400);
    let (status, _) = app
        .call(
            &client,
            "two-factor/disable",
            &[("current_password", PASSWORD)],
        )
        .await;
    assert_eq!(status, 200);
    let (_, body) = app
        .password_login(&app.new_client(), "careful", PASSWORD)
        .await;
    assert_eq!(body["second_factor"], "Off");
    // Staff cannot turn theirs off.
    let worker = app.user_with_role("keeps.it", Role::TechnicalWorker).await;
    assert_eq!(
        app.call(
            &worker,
            "two-factor/disable",
            &[("current_password", PASSWORD)]
        )
        .await
        .0,
        409
    );
}

#[tokio::test]
async fn refusals_for_the_role_are_audited_once_per_window() {
    let app = spawn_app().await;
    let customer = app.user_with_role("curious", Role::Customer).await;
    for _ in 0..5 {
        let (status, _) = app
            .call_json(&customer, "sales/list", &json!({ "query": {} }))
            .await;
        assert_eq!(status, 403);
    }
    let id = app.user_id("curious").await;
    assert_eq!(audit_count(&app, "forbidden", id).await, 1);
    let detail: String = sqlx::query_scalar(
        "SELECT detail FROM auth_audit WHERE event = 'forbidden' AND user_id = ?",
    )
    .bind(id)
    .fetch_one(&app.mysql)
    .await
    .unwrap();
    assert!(detail.starts_with("/api/sales/list"), "{detail}");
}

#[derive(sqlx::FromRow, Debug, PartialEq)]
struct Attribution {
    op: String,
    actor_kind: Option<String>,
    actor_id: Option<u64>,
}

#[tokio::test]
async fn every_sales_edit_records_who_made_it_and_the_history_shows_what_changed() {
    let app = spawn_app().await;
    let worker = app
        .user_with_role("editor.one", Role::TechnicalWorker)
        .await;
    let other = app
        .user_with_role("editor.two", Role::TechnicalWorker)
        .await;
    let manager = app.user_with_role("overseer", Role::SeniorManagement).await;
    let draft = generate::sales(85).next().unwrap();
    let mut input = SaleInput::from(&draft);
    let (status, sale) = app
        .call_json(
            &worker,
            "sales/create",
            &json!({ "token": "", "input": input }),
        )
        .await;
    assert_eq!(status, 200, "{sale}");
    let id = sale["id"].as_str().unwrap().to_string();
    input.customer_age = if input.customer_age == "40" {
        "41"
    } else {
        "40"
    }
    .into();
    let (status, _) = app
        .call_json(
            &other,
            "sales/update",
            &json!({ "token": "", "id": id, "version": 1, "input": input }),
        )
        .await;
    assert_eq!(status, 200);

    let rows: Vec<Attribution> = sqlx::query_as(
        "SELECT CAST(op AS CHAR) AS op, CAST(actor_kind AS CHAR) AS actor_kind, actor_id \
         FROM sale_intents WHERE sale_id = ? ORDER BY id",
    )
    .bind(&id)
    .fetch_all(&app.mysql)
    .await
    .unwrap();
    let (one, two) = (
        app.user_id("editor.one").await,
        app.user_id("editor.two").await,
    );
    assert_eq!(
        rows,
        vec![
            Attribution {
                op: "create".into(),
                actor_kind: Some("user".into()),
                actor_id: Some(one)
            },
            Attribution {
                op: "update".into(),
                actor_kind: Some("user".into()),
                actor_id: Some(two)
            },
        ]
    );

    let (status, history) = app.call(&worker, "sales/history", &[("id", &id)]).await;
    assert_eq!(status, 200, "{history}");
    let entries = history["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["op"], "Created");
    assert_eq!(entries[0]["actor"], json!({ "User": "editor.one" }));
    assert_eq!(entries[1]["op"], "Updated");
    assert_eq!(entries[1]["actor"], json!({ "User": "editor.two" }));
    assert_eq!(entries[1]["version"], 2);
    assert_eq!(
        entries[1]["changes"],
        json!([{ "field": "Customer age", "before": draft.customer.age.get().to_string(), "after": input.customer_age }])
    );

    // Deleted: the record of it names the user, and its history is for managers only.
    let (status, _) = app
        .call(
            &worker,
            "sales/delete",
            &[("token", ""), ("id", &id), ("version", "2")],
        )
        .await;
    assert_eq!(status, 200);
    let deleted_by: Option<u64> =
        sqlx::query_scalar("SELECT actor_id FROM sale_intents WHERE sale_id = ? AND op = 'delete'")
            .bind(&id)
            .fetch_one(&app.mysql)
            .await
            .unwrap();
    assert_eq!(deleted_by, Some(one));
    assert_eq!(
        app.call(&worker, "sales/history", &[("id", &id)]).await.0,
        403
    );
    let (status, history) = app.call(&manager, "sales/history", &[("id", &id)]).await;
    assert_eq!(status, 200);
    assert_eq!(history["deleted"], true);
    assert_eq!(history["entries"][2]["op"], "Deleted");
    assert_eq!(history["entries"][2]["version"], serde_json::Value::Null);
}

#[tokio::test]
async fn imports_are_attributed_to_the_import() {
    let app = spawn_app().await;
    let line = generate::to_extended_json(&generate::sales(86).next().unwrap());
    let writer = app::server::sales::dual_write::writer(app.mysql.clone(), app.mongo.clone());
    let bytes = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    app::server::sales::import::import_reader(
        &writer,
        std::io::Cursor::new(line),
        false,
        bytes,
        |_| {},
    )
    .await
    .unwrap();
    let kinds: Vec<Option<String>> =
        sqlx::query_scalar("SELECT CAST(actor_kind AS CHAR) FROM sale_intents")
            .fetch_all(&app.mysql)
            .await
            .unwrap();
    assert_eq!(kinds, vec![Some("import".to_string())]);
}

/// Two managers demoting (or disabling) each other at the same moment: one wins, and
/// an active senior manager always remains.
#[tokio::test]
async fn the_last_active_manager_cannot_be_removed_even_by_two_at_once() {
    let app = spawn_app().await;
    for round in 0..4 {
        let (a, b) = (format!("boss.a{round}"), format!("boss.b{round}"));
        let ca = app.user_with_role(&a, Role::SeniorManagement).await;
        let cb = app.user_with_role(&b, Role::SeniorManagement).await;
        // Only these two are active managers.
        sqlx::query("UPDATE users SET status = 'disabled' WHERE role = 'senior_management' AND username NOT IN (?, ?)")
            .bind(&a)
            .bind(&b)
            .execute(&app.mysql)
            .await
            .unwrap();
        let (ia, ib) = (
            app.user_id(&a).await.to_string(),
            app.user_id(&b).await.to_string(),
        );
        let (endpoint, field, value) = if round % 2 == 0 {
            ("admin/users/role", "role", "technical_worker")
        } else {
            ("admin/users/enabled", "enabled", "false")
        };
        let (by_a, by_b) = (
            [("id", ib.as_str()), (field, value)],
            [("id", ia.as_str()), (field, value)],
        );
        let ((sa, _), (sb, _)) = tokio::join!(
            app.call(&ca, endpoint, &by_a),
            app.call(&cb, endpoint, &by_b),
        );
        let mut statuses = [sa, sb];
        statuses.sort();
        assert!(
            matches!(statuses, [200, 401 | 403]),
            "round {round}: exactly one wins: {statuses:?}"
        );
        let active: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM users WHERE role = 'senior_management' AND status = 'active'",
        )
        .fetch_one(&app.mysql)
        .await
        .unwrap();
        assert_eq!(active, 1, "round {round}");
    }
    // Nobody changes their own role.
    let boss = app
        .user_with_role("self.made", Role::SeniorManagement)
        .await;
    let own = app.user_id("self.made").await.to_string();
    assert_eq!(
        app.call(
            &boss,
            "admin/users/role",
            &[("id", &own), ("role", "customer")]
        )
        .await
        .0,
        409
    );
}
