//! The role × endpoint matrix: anonymous and every role against every server function.

use crate::helpers::{PASSWORD, spawn_app};
use app::model::Role;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Need {
    Public,
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
    (
        "password/forgot",
        &[("email", "nobody@example.com")],
        Need::Public,
    ),
    ("logout", &[], Need::Login),
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
];

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
    for (endpoint, args, json, need) in form_calls.chain(json_calls) {
        for who in [
            None,
            Some(("m.cust", Role::Customer)),
            Some(("m.work", Role::TechnicalWorker)),
            Some(("m.pend", Role::TechnicalWorker)),
            Some(("m.boss", Role::SeniorManagement)),
        ] {
            // A fresh login per call: some endpoints end the session they run in.
            let client = app.new_client();
            if let Some((name, _)) = who {
                assert_eq!(app.login(&client, name, PASSWORD).await.0, 200);
            }
            let (status, body) = match (&args, &json) {
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
                (Need::Login, Some(_)) => None,
                (Need::Customer, Some(_)) if active_customer => None,
                (Need::Staff, Some(_)) if active_staff => None,
                (Need::Management, Some(_)) if active_manager => None,
                (Need::Customer | Need::Staff | Need::Management, Some(_)) => Some(403),
            };
            match expected_denial {
                Some(code) => assert_eq!(status, code, "{endpoint} as {who:?}: {body}"),
                None => assert!(
                    status != 401 && status != 403,
                    "{endpoint} as {who:?} was refused: {status} {body}"
                ),
            }
        }
    }
}
