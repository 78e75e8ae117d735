//! The role × endpoint matrix: anonymous and every role against every server function.

use crate::helpers::{PASSWORD, spawn_app};
use app::model::Role;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Need {
    Public,
    Login,
    /// Active technical workers and senior managers.
    Staff,
    Management,
}

/// Every server function, with arguments that parse, and who may call it.
const ENDPOINTS: &[(&str, &[(&str, &str)], Need)] = &[
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

    for (endpoint, args, need) in ENDPOINTS {
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
            let (status, body) = app.call(&client, endpoint, args).await;
            let name = who.map(|w| w.0);
            let active_manager = name == Some("m.boss");
            let active_staff = active_manager || name == Some("m.work");
            let expected_denial = match (need, who) {
                (Need::Public, _) => None,
                (_, None) => Some(401),
                (Need::Login, Some(_)) => None,
                (Need::Staff, Some(_)) if active_staff => None,
                (Need::Management, Some(_)) if active_manager => None,
                (Need::Staff | Need::Management, Some(_)) => Some(403),
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
