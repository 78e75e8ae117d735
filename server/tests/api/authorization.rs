//! The role × endpoint matrix: anonymous and every role against every server function.

use crate::helpers::{PASSWORD, spawn_app};
use app::model::Role;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Need {
    Public,
    /// Any login, even one before its second step.
    Session,
    Login,
    /// Active customers only.
    Customer,
    /// Active technical workers and senior managers.
    Staff,
    Management,
}

/// A sale input that parses, for the JSON endpoints.
const SALE: &str = r#"{"sale_date":"2015-03-23T21:06","items":[{"name":"pens","tags":["office"],"price":"1.50","quantity":"2"}],
"store_location":"Denver","customer_gender":"F","customer_age":"30","customer_email":"a@b.co",
"customer_satisfaction":"4","coupon_used":false,"purchase_method":"Online"}"#;

/// JSON-bodied server functions: (endpoint, body, who may call).
fn json_endpoints() -> Vec<(&'static str, serde_json::Value, Need)> {
    let sale: serde_json::Value = serde_json::from_str(SALE).unwrap();
    vec![
        (
            "sales/list",
            serde_json::json!({ "query": { "page": "1" } }),
            Need::Staff,
        ),
        (
            "sales/count",
            serde_json::json!({ "query": {} }),
            Need::Staff,
        ),
        (
            "sales/create",
            serde_json::json!({ "token": "", "input": sale.clone() }),
            Need::Staff,
        ),
        (
            "sales/update",
            serde_json::json!({ "token": "", "id": "0123456789abcdef01234567", "version": 1, "input": sale }),
            Need::Staff,
        ),
    ]
}

/// A server function's path, arguments that parse, and who may call it.
type Endpoint = (&'static str, &'static [(&'static str, &'static str)], Need);

/// Every server function.
const ENDPOINTS: &[Endpoint] = &[
    ("health", &[], Need::Public),
    ("me", &[], Need::Public),
    ("sessions", &[], Need::Login),
    ("sessions/revoke", &[("handle", "0000")], Need::Login),
    (
        "password/change",
        &[
            ("current_password", "x"),
            ("new_password", "y"),
            ("confirm_password", "y"),
        ],
        Need::Login,
    ),
    ("sessions/revoke-all", &[], Need::Login),
    ("email/resend", &[], Need::Login),
    (
        "email/change",
        &[("current_password", "x"), ("email", "changed@example.com")],
        Need::Login,
    ),
    ("email/verify", &[("token", "00")], Need::Public),
    ("email/pending", &[("token", "00")], Need::Public),
    ("email/decline", &[("token", "00")], Need::Public),
    (
        "password/forgot",
        &[("email", "nobody@example.com")],
        Need::Public,
    ),
    ("logout", &[], Need::Session),
    (
        "login",
        &[("username", "nobody"), ("password", "x")],
        Need::Public,
    ),
    ("register", &[("username", "x")], Need::Public),
    (
        "password/reset",
        &[
            ("token", "00"),
            ("new_password", "y"),
            ("confirm_password", "y"),
        ],
        Need::Public,
    ),
    ("login/second-step", &[("code", "000000")], Need::Session),
    ("two-factor", &[], Need::Login),
    ("passkeys", &[], Need::Login),
    (
        "passkeys/begin",
        &[("current_password", "Not-The-Password-1")],
        Need::Login,
    ),
    (
        "passkeys/finish",
        &[("ceremony", "00"), ("name", "x"), ("credential", "{}")],
        Need::Login,
    ),
    (
        "passkeys/remove",
        &[("id", "999999"), ("current_password", "Not-The-Password-1")],
        Need::Login,
    ),
    ("passkeys/sign-in/begin", &[], Need::Public),
    (
        "passkeys/sign-in/finish",
        &[("ceremony", "00"), ("credential", "{}")],
        Need::Public,
    ),
    ("two-factor/begin", &[], Need::Login),
    (
        "two-factor/confirm",
        &[("code", "000000"), ("mailed_code", "00000000")],
        Need::Login,
    ),
    (
        "two-factor/recovery-codes",
        &[("current_password", "x")],
        Need::Login,
    ),
    (
        "two-factor/disable",
        &[("current_password", "x")],
        Need::Login,
    ),
    (
        "admin/users/reset-two-factor",
        &[("id", "999999")],
        Need::Management,
    ),
    (
        "sales/history",
        &[("id", "0123456789abcdef01234567")],
        Need::Staff,
    ),
    ("admin/users", &[("query", "")], Need::Management),
    (
        "admin/users/decide",
        &[("id", "999999"), ("approve", "true")],
        Need::Management,
    ),
    (
        "admin/users/role",
        &[("id", "999999"), ("role", "customer")],
        Need::Management,
    ),
    (
        "admin/users/enabled",
        &[("id", "999999"), ("enabled", "true")],
        Need::Management,
    ),
    (
        "admin/users/reset-link",
        &[("id", "999999")],
        Need::Management,
    ),
    ("admin/audit", &[], Need::Management),
    ("replication/status", &[], Need::Staff),
    ("replication/sync", &[("dry_run", "true")], Need::Staff),
    ("sales/mine", &[("page", "1")], Need::Customer),
    (
        "sales/get",
        &[("id", "0123456789abcdef01234567")],
        Need::Staff,
    ),
    ("sales/token", &[], Need::Staff),
    (
        "sales/delete",
        &[
            ("token", ""),
            ("id", "0123456789abcdef01234567"),
            ("version", "1"),
        ],
        Need::Staff,
    ),
    ("analytics", &[("from", ""), ("to", "")], Need::Management),
    ("imports", &[], Need::Staff),
    ("imports/get", &[("id", "999999")], Need::Staff),
    ("imports/start", &[("id", "999999")], Need::Staff),
    ("imports/cancel", &[("id", "999999")], Need::Staff),
    // A wrong password: the matrix's customer keeps their account.
    (
        "account/close",
        &[("current_password", "not-theirs")],
        Need::Customer,
    ),
];

/// Endpoints that end the session they run in: each is called last, or logs in again.
const SESSION_ENDERS: &[&str] = &["logout", "sessions/revoke-all"];

#[tokio::test]
async fn every_server_function_checks_the_session_and_role() {
    let app = spawn_app().await;
    for (name, role) in [
        ("m.cust", Role::Customer),
        ("m.work", Role::TechnicalWorker),
        ("m.boss", Role::SeniorManagement),
    ] {
        app.user_with_role(name, role).await;
    }
    assert_eq!(
        app.register(&app.new_client(), "m.pend", "technical_worker")
            .await
            .0,
        200
    );

    let form_calls = ENDPOINTS
        .iter()
        .map(|(e, args, need)| (*e, Some(*args), None, *need));
    let json_calls = json_endpoints()
        .into_iter()
        .map(|(e, body, need)| (e, None, Some(body), need));
    let calls: Vec<_> = form_calls.chain(json_calls).collect();

    // The matrix cannot miss a server function: every registered path is in it.
    let covered: std::collections::HashSet<String> =
        calls.iter().map(|(e, ..)| format!("/api/{e}")).collect();
    let missing: Vec<&str> = leptos::server_fn::axum::server_fn_paths()
        .map(|(path, _)| path)
        .filter(|path| !covered.contains(*path))
        .collect();
    assert!(
        missing.is_empty(),
        "server functions missing from the matrix: {missing:?}"
    );

    for who in [
        None,
        Some(("m.cust", Role::Customer)),
        Some(("m.work", Role::TechnicalWorker)),
        Some(("m.pend", Role::TechnicalWorker)),
        Some(("m.boss", Role::SeniorManagement)),
    ] {
        let logged_in = || async {
            let client = app.new_client();
            if let Some((name, _)) = who {
                assert_eq!(app.login(&client, name, PASSWORD).await.0, 200);
            }
            client
        };
        let mut client = logged_in().await;
        for (endpoint, args, json, need) in &calls {
            let (status, body) = match (args, json) {
                (Some(args), _) => app.call(&client, endpoint, args).await,
                (None, Some(json)) => app.call_json(&client, endpoint, json).await,
                (None, None) => unreachable!("every endpoint has a body"),
            };
            let name = who.map(|w| w.0);
            let active_manager = name == Some("m.boss");
            let active_staff = active_manager || name == Some("m.work");
            let active_customer = name == Some("m.cust");
            let expected_denial = match (need, who) {
                (Need::Public, _) => None,
                (_, None) => Some(401),
                (Need::Session | Need::Login, Some(_)) => None,
                (Need::Customer, Some(_)) if active_customer => None,
                (Need::Staff, Some(_)) if active_staff => None,
                (Need::Management, Some(_)) if active_manager => None,
                (Need::Customer | Need::Staff | Need::Management, Some(_)) => Some(403),
            };
            match expected_denial {
                Some(code) => assert_eq!(status, code, "{endpoint} as {who:?}: {body}"),
                // A public endpoint may refuse its arguments (a wrong password).
                None if *need == Need::Public => {
                    assert!(
                        status < 500,
                        "{endpoint} as {who:?} failed: {status} {body}"
                    )
                }
                None => assert!(
                    status != 401 && status != 403 && status < 500,
                    "{endpoint} as {who:?} was refused or failed: {status} {body}"
                ),
            }
            if SESSION_ENDERS.contains(endpoint) {
                client = logged_in().await;
            }
        }
    }
}

/// Before its second step, a login reaches nothing but the second step and logout.
#[tokio::test]
async fn a_login_before_its_second_step_reaches_only_the_second_step() {
    let app = spawn_app().await;
    app.user_with_role("half.way", Role::TechnicalWorker).await;
    let form_calls = ENDPOINTS.iter().map(|(e, args, need)| (*e, *args, *need));
    for (endpoint, args, need) in form_calls {
        let client = app.new_client();
        let (status, body) = app.password_login(&client, "half.way", PASSWORD).await;
        assert_eq!(
            (status, body["second_factor"].as_str()),
            (200, Some("Pending"))
        );
        let (status, body) = app.call(&client, endpoint, args).await;
        match need {
            Need::Public => assert!(status < 500, "{endpoint}: {status} {body}"),
            Need::Session => assert!(status < 500 && status != 401, "{endpoint}: {status} {body}"),
            _ => assert_eq!(
                (status, body.as_str()),
                (401, Some("SecondStepRequired")),
                "{endpoint}"
            ),
        }
    }
    for (endpoint, json, _) in json_endpoints() {
        let client = app.new_client();
        app.password_login(&client, "half.way", PASSWORD).await;
        assert_eq!(
            app.call_json(&client, endpoint, &json).await.0,
            401,
            "{endpoint}"
        );
    }
}
