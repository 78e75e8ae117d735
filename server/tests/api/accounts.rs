use crate::helpers::{
    PASSWORD, TestApp, TestOptions, mail_to, session_cookie, spawn_app, spawn_app_with,
    wait_for_mail,
};
use app::model::Role;
use app::server::auth::secret_keys::SecretKeys;
use std::time::{Duration, Instant};

/// Registers `username` with `role`, then confirms the address from the mail.
async fn register_and_verify(app: &TestApp, username: &str, role: &str) {
    let (status, body) = app.register(&app.new_client(), username, role).await;
    assert_eq!(status, 200, "{body}");
    let mail = wait_for_mail(&app.email_for(username), "Confirm your email address").await;
    let token = mail.token_for("/verify-email");
    let (status, body) = app
        .call(&app.new_client(), "email/verify", &[("token", &token)])
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn registration_answers_check_your_inbox_and_the_link_confirms_the_address() {
    let app = spawn_app().await;
    let client = app.new_client();
    let res = client
        .post(app.url("/api/register"))
        .form(&[
            ("username", "Alice"),
            ("email", &app.email_for("alice")),
            ("password", PASSWORD),
            ("confirm_password", PASSWORD),
            ("role", "customer"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        session_cookie(&res).is_none(),
        "nobody is logged in by registering"
    );
    assert_eq!(app.me(&client).await, serde_json::Value::Null);
    let hash: String =
        sqlx::query_scalar("SELECT password_hash FROM users WHERE username_key = 'alice'")
            .fetch_one(&app.mysql)
            .await
            .unwrap();
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );

    // Logged in before confirming: active, but the address is not proven.
    assert_eq!(app.login(&client, "alice", PASSWORD).await.0, 200);
    assert_eq!(app.me(&client).await["email_verified"], false);
    let mail = wait_for_mail(&app.email_for("alice"), "Confirm your email address").await;
    let token = mail.token_for("/verify-email");
    assert_eq!(token.len(), 64);
    let stored: Vec<u8> = sqlx::query_scalar("SELECT token_hash FROM email_tokens")
        .fetch_one(&app.mysql)
        .await
        .unwrap();
    assert_ne!(stored, token.as_bytes(), "only the token's hash is stored");

    let (status, body) = app
        .call(&client, "email/verify", &[("token", &token)])
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(app.me(&client).await["email_verified"], true);
    let (status, body) = app
        .call(&client, "email/verify", &[("token", &token)])
        .await;
    assert_eq!(status, 409, "a link works once: {body}");
}

#[tokio::test]
async fn privileged_registrations_wait_for_a_confirmed_address_and_approval() {
    let app = spawn_app().await;
    let manager = app
        .user_with_role("mgr.approve", Role::SeniorManagement)
        .await;
    for (name, role) in [("tina", "technical_worker"), ("sam", "senior_management")] {
        let client = app.new_client();
        let (status, body) = app.register(&client, name, role).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(app.login(&client, name, PASSWORD).await.0, 200);
        assert_eq!(
            app.me(&client).await["status"],
            "pending",
            "pending users can log in"
        );
        let (status, _) = app.call(&client, "admin/users", &[("query", "")]).await;
        assert_eq!(status, 403, "a pending {role} has no privileges yet");

        let id = app.user_id(name).await.to_string();
        let approve = [("id", id.as_str()), ("approve", "true")];
        let (status, body) = app.call(&manager, "admin/users/decide", &approve).await;
        assert_eq!(status, 409, "not before the address is confirmed: {body}");
        let token = wait_for_mail(&app.email_for(name), "Confirm your email address")
            .await
            .token_for("/verify-email");
        assert_eq!(
            app.call(&client, "email/verify", &[("token", &token)])
                .await
                .0,
            200
        );
        let (status, body) = app.call(&manager, "admin/users/decide", &approve).await;
        assert_eq!(status, 200, "{body}");
    }
}

/// The answer never tells whether a username or address has an account; the owner of
/// the address learns what happened by mail.
#[tokio::test]
async fn registration_answers_the_same_whether_or_not_the_address_is_taken() {
    let app = spawn_app().await;
    register_and_verify(&app, "bob", "customer").await;
    let bob = app.email_for("bob");
    let form = |username: &'static str, email: String| {
        vec![
            ("username", username.to_string()),
            ("email", email),
            ("password", PASSWORD.to_string()),
            ("confirm_password", PASSWORD.to_string()),
            ("role", "customer".to_string()),
        ]
    };
    let attempt = |fields: Vec<(&'static str, String)>| {
        let (app, client) = (&app, app.new_client());
        async move {
            let res = client
                .post(app.url("/api/register"))
                .form(&fields)
                .send()
                .await
                .unwrap();
            let cookie = session_cookie(&res).is_some();
            (res.status().as_u16(), res.text().await.unwrap(), cookie)
        }
    };
    let taken_email = attempt(form("robert", bob.to_uppercase())).await;
    let taken_username = attempt(form("BOB", app.email_for("bobby"))).await;
    let fresh = attempt(form("carl", app.email_for("carl"))).await;
    assert_eq!(taken_email, fresh, "same answer for a taken address");
    assert_eq!(taken_username, fresh, "same answer for a taken username");
    assert_eq!(fresh.0, 200);
    assert!(!fresh.2, "no session either way");

    let owner = wait_for_mail(&bob, "Someone tried to register with your address").await;
    assert!(
        owner.text.contains("No new account was created"),
        "{}",
        owner.text
    );
    let chooser = wait_for_mail(&app.email_for("bobby"), "Choose another username").await;
    assert!(chooser.text.contains("\"BOB\""), "{}", chooser.text);
    wait_for_mail(&app.email_for("carl"), "Confirm your email address").await;
    let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(&app.mysql)
        .await
        .unwrap();
    assert_eq!(users, 2, "bob and carl");
}

#[tokio::test]
async fn registration_errors_are_friendly_and_change_nothing() {
    let app = spawn_app().await;
    let (status, body) = app
        .call(
            &app.new_client(),
            "register",
            &[
                ("username", "carol"),
                ("email", &app.email_for("carol")),
                ("password", "password1234"),
                ("confirm_password", "password1234"),
                ("role", "customer"),
            ],
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body["Invalid"][0]["message"]
            .as_str()
            .unwrap()
            .contains("too common"),
        "{body}"
    );

    let (status, body) = app
        .call(
            &app.new_client(),
            "register",
            &[
                ("username", "x"),
                ("email", "nope"),
                ("password", "short"),
                ("confirm_password", "other"),
                ("role", "admin"),
            ],
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["Invalid"].as_array().unwrap().len(), 5, "{body}");

    let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(&app.mysql)
        .await
        .unwrap();
    assert_eq!(users, 0, "no rejected registration created a user");
    assert!(
        mail_to(&app.email_for("carol")).await.is_empty(),
        "and sent nothing"
    );
}

#[tokio::test]
async fn login_failures_look_the_same_for_unknown_users() {
    let app = spawn_app().await;
    app.user_with_role("dora", Role::Customer).await;
    let client = app.new_client();
    let mut wrong = Vec::new();
    let mut unknown = Vec::new();
    // Two of each: a fifth failure from one address would throttle the client.
    for _ in 0..2 {
        let t = Instant::now();
        let (s1, b1) = app.login(&client, "dora", "Not-The-Password-1").await;
        wrong.push(t.elapsed());
        let t = Instant::now();
        let (s2, b2) = app
            .login(&client, "nobody-here", "Not-The-Password-1")
            .await;
        unknown.push(t.elapsed());
        assert_eq!((s1, s2), (401, 401));
        assert_eq!(b1, "InvalidCredentials");
        assert_eq!(b1, b2, "same message either way");
    }
    let mean = |v: &[Duration]| v.iter().map(Duration::as_secs_f64).sum::<f64>() / v.len() as f64;
    let ratio = mean(&unknown) / mean(&wrong);
    assert!(
        (0.5..2.0).contains(&ratio),
        "unknown-user login took {ratio:.2}x a wrong password: the dummy hash is not used"
    );
}

#[tokio::test]
async fn account_throttling_backs_off_and_skips_the_password_check() {
    let mut options = TestOptions::default();
    options.serve.login_throttle_base_delay_secs = 2;
    let app = spawn_app_with(options).await;
    app.user_with_role("erin", Role::Customer).await;
    let client = app.new_client();
    for _ in 0..5 {
        assert_eq!(
            app.login(&client, "erin", "Wrong-Password-123").await.0,
            401
        );
    }
    let (status, body) = app.login(&client, "erin", PASSWORD).await;
    assert_eq!(
        status, 429,
        "throttled even with the right password: {body}"
    );
    let wait = body["Throttled"].as_u64().expect("seconds to wait");
    assert!((1..=2).contains(&wait), "{body}");

    let lockouts: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM auth_audit WHERE event = 'lockout'")
            .fetch_one(&app.mysql)
            .await
            .unwrap();
    assert_eq!(lockouts, 1);

    tokio::time::sleep(Duration::from_secs(wait + 1)).await;
    assert_eq!(
        app.login(&client, "erin", PASSWORD).await.0,
        200,
        "allowed again after the delay"
    );
}

/// With the per-address limit as low as the per-account one: failures against many
/// usernames from one address add up.
#[tokio::test]
async fn address_throttling_covers_many_usernames() {
    let mut options = TestOptions::default();
    options.serve.login_throttle_client_max_failures = 5;
    let app = spawn_app_with(options).await;
    app.user_with_role("fred", Role::Customer).await;
    let client = app.new_client();
    for i in 0..5 {
        assert_eq!(
            app.login(&client, &format!("guess{i}"), "Wrong-Password-123")
                .await
                .0,
            401
        );
    }
    let (status, body) = app.login(&client, "fred", PASSWORD).await;
    assert_eq!(status, 429, "{body}");
    let wait = body["Throttled"].as_u64().unwrap();
    assert!(
        (25..=30).contains(&wait),
        "exponential backoff starts at 30 s: {body}"
    );
}

/// A client whose requests say, as a proxy would, who sent them.
fn forwarded(app: &TestApp, forwarded_for: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .default_headers(
            [
                (
                    reqwest::header::HeaderName::from_static("x-forwarded-for"),
                    forwarded_for.parse().unwrap(),
                ),
                (reqwest::header::ORIGIN, app.address.parse().unwrap()),
            ]
            .into_iter()
            .collect(),
        )
        .build()
        .unwrap()
}

/// The addresses the audit log recorded for logins, in order.
async fn login_addresses(app: &crate::helpers::TestApp) -> Vec<String> {
    sqlx::query_scalar("SELECT DISTINCT ip FROM auth_audit WHERE event LIKE 'login%' ORDER BY ip")
        .fetch_all(&app.mysql)
        .await
        .unwrap()
}

/// Five failed logins from `forwarded_for`, then fred's correct one from the same
/// client: its status.
async fn throttled_behind_proxy(app: &crate::helpers::TestApp, forwarded_for: &str) -> u16 {
    let client = forwarded(app, forwarded_for);
    for i in 0..5 {
        app.login(&client, &format!("guess{i}"), "Wrong-Password-123")
            .await;
    }
    app.login(&client, "fred", PASSWORD).await.0
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_client_is_throttled_and_audited_on_its_own() {
    let mut options = TestOptions::default();
    options.serve.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    options.serve.login_throttle_client_max_failures = 5;
    let app = spawn_app_with(options).await;
    app.user_with_role("fred", Role::Customer).await;

    assert_eq!(throttled_behind_proxy(&app, "203.0.113.9").await, 429);
    let fred_from = |address: &'static str| {
        let app = &app;
        async move { app.login(&forwarded(app, address), "fred", PASSWORD).await }
    };
    assert_eq!(
        fred_from("192.0.2.50").await.0,
        200,
        "other clients behind the same proxy are not locked out"
    );
    assert_eq!(
        fred_from("192.0.2.51, 203.0.113.9").await.0,
        429,
        "an address the client prepends does not count; the one the proxy saw does"
    );
    // 127.0.0.1: fred's set-up login came through the proxy without the header.
    assert_eq!(
        login_addresses(&app).await,
        ["127.0.0.1", "192.0.2.50", "203.0.113.9"]
    );
}

#[tokio::test]
async fn without_trusted_proxies_a_forwarded_for_header_is_ignored() {
    let mut options = TestOptions::default();
    options.serve.login_throttle_client_max_failures = 5;
    let app = spawn_app_with(options).await;
    app.user_with_role("fred", Role::Customer).await;
    assert_eq!(throttled_behind_proxy(&app, "203.0.113.9").await, 429);
    assert_eq!(
        app.login(&forwarded(&app, "192.0.2.50"), "fred", PASSWORD)
            .await
            .0,
        429,
        "a new header does not buy a new address"
    );
    assert_eq!(login_addresses(&app).await, ["127.0.0.1"]);
}

#[tokio::test]
async fn login_cycles_the_session_id_and_logout_ends_it_server_side() {
    let app = spawn_app().await;
    let client = app.user_with_role("gina", Role::Customer).await;
    let first = client
        .post(app.url("/api/login"))
        .form(&[("username", "gina"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    let first_cookie = session_cookie(&first).expect("login sets the session cookie");
    assert!(first_cookie.contains("HttpOnly"), "{first_cookie}");
    assert!(first_cookie.contains("SameSite=Lax"), "{first_cookie}");
    assert!(
        !first_cookie.contains("Secure"),
        "plain-HTTP default: {first_cookie}"
    );
    let second = client
        .post(app.url("/api/login"))
        .form(&[("username", "gina"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    let second_cookie = session_cookie(&second).expect("second login sets a cookie");
    let id = |c: &str| c.split(';').next().unwrap().to_string();
    assert_ne!(
        id(&first_cookie),
        id(&second_cookie),
        "a new session id on login"
    );

    let stolen = id(&second_cookie);
    let (status, _) = app.call(&client, "logout", &[]).await;
    assert_eq!(status, 200);
    let replay = app
        .new_client()
        .post(app.url("/api/sessions"))
        .header(reqwest::header::COOKIE, stolen)
        .send()
        .await
        .unwrap();
    assert_eq!(
        replay.status().as_u16(),
        401,
        "the old cookie is dead after logout"
    );
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM user_sessions")
        .fetch_one(&app.mysql)
        .await
        .unwrap();
    assert_eq!(rows, 0);
}

#[tokio::test]
async fn secure_cookie_uses_the_host_prefix() {
    let mut options = TestOptions::default();
    options.serve.cookie_secure = true;
    let app = spawn_app_with(options).await;
    app.user_with_role("hugo", Role::Customer).await;
    let res = app
        .new_client()
        .post(app.url("/api/login"))
        .form(&[("username", "hugo"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    let cookie = res
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("__Host-portal_session="))
        .expect("__Host- cookie")
        .to_string();
    assert!(
        cookie.contains("Secure") && cookie.contains("Path=/") && !cookie.contains("Domain"),
        "{cookie}"
    );
}

#[tokio::test]
async fn role_change_cycles_the_session_and_takes_effect_at_once() {
    let app = spawn_app().await;
    let manager = app.user_with_role("mona", Role::SeniorManagement).await;
    let worker = app.user_with_role("walt", Role::TechnicalWorker).await;
    let before = worker.post(app.url("/api/me")).send().await.unwrap();
    assert!(
        session_cookie(&before).is_none(),
        "no cookie churn without a change"
    );

    let id = app.user_id("walt").await.to_string();
    let (status, body) = app
        .call(
            &manager,
            "admin/users/role",
            &[("id", &id), ("role", "senior_management")],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let after = worker.post(app.url("/api/me")).send().await.unwrap();
    assert!(
        session_cookie(&after).is_some(),
        "role change cycles the session id"
    );
    let me: serde_json::Value = after.json().await.unwrap();
    assert_eq!(me["role"], "senior_management");
    assert_eq!(
        app.call(&worker, "admin/audit", &[]).await.0,
        200,
        "new rights apply immediately"
    );
}

#[tokio::test]
async fn idle_and_absolute_timeouts_end_sessions() {
    let mut options = TestOptions::default();
    options.serve.session_idle_timeout_secs = 2;
    options.serve.session_absolute_timeout_secs = 4;
    let app = spawn_app_with(options).await;

    let idle = app.user_with_role("ivan", Role::Customer).await;
    tokio::time::sleep(Duration::from_millis(2600)).await;
    assert_eq!(
        app.me(&idle).await,
        serde_json::Value::Null,
        "idle for longer than the idle timeout"
    );
    assert_eq!(app.call(&idle, "sessions", &[]).await.0, 401);

    let busy = app.user_with_role("jane", Role::Customer).await;
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(3500) {
        assert_eq!(
            app.me(&busy).await["username"],
            "jane",
            "activity keeps it alive before the absolute limit"
        );
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        app.me(&busy).await,
        serde_json::Value::Null,
        "absolute timeout despite activity"
    );
}

#[tokio::test]
async fn cross_site_posts_are_rejected() {
    let app = spawn_app().await;
    let client = app.user_with_role("kate", Role::Customer).await;
    let host = app.address.trim_start_matches("http://").to_string();
    for (name, value) in [
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-site", "same-site"),
        ("origin", "http://evil.example"),
        ("origin", "null"),
    ] {
        let res = client
            .post(app.url("/api/logout"))
            .header(name, value)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 403, "{name}: {value}");
    }
    // Neither header: not shown to come from the site, so refused.
    let login = app
        .new_client()
        .post(app.url("/api/login"))
        .form(&[("username", "kate"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    let cookie = session_cookie(&login).expect("a session");
    let cookie = cookie.split(';').next().unwrap().to_string();
    let bare = reqwest::Client::new()
        .post(app.url("/api/logout"))
        .header(reqwest::header::COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status().as_u16(), 403, "no Origin, no Sec-Fetch-Site");
    let still: serde_json::Value = reqwest::Client::new()
        .post(app.url("/api/me"))
        .header(reqwest::header::COOKIE, &cookie)
        .header(reqwest::header::ORIGIN, &app.address)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(still["username"], "kate", "the refused logout did nothing");
    assert_eq!(
        app.me(&client).await["username"],
        "kate",
        "the rejected logouts did nothing"
    );
    let res = client
        .post(app.url("/api/logout"))
        .header("sec-fetch-site", "same-origin")
        .header("origin", format!("http://{host}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
}

#[tokio::test]
async fn login_next_only_follows_local_paths() {
    let app = spawn_app().await;
    app.user_with_role("liam", Role::Customer).await;
    for (next, expected) in [
        ("/profile", "/profile"),
        ("//evil.example/x", "/customer"),
        ("https://evil.example", "/customer"),
        ("/\\evil.example", "/customer"),
    ] {
        let res = app
            .new_client()
            .post(app.url("/api/login"))
            .header(reqwest::header::ACCEPT, "text/html")
            .form(&[("username", "liam"), ("password", PASSWORD), ("next", next)])
            .send()
            .await
            .unwrap();
        let location = res
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        assert_eq!(location, expected, "next={next}");
    }
}

#[tokio::test]
async fn protected_pages_redirect_to_login_and_refuse_wrong_roles() {
    let app = spawn_app().await;
    let anon = app.new_client();
    // Page loads as a browser makes them: Accept: text/html turns redirects into 302s.
    let page = |client: &reqwest::Client, path: &str| {
        client
            .get(app.url(path))
            .header(reqwest::header::ACCEPT, "text/html")
            .send()
    };
    let res = page(&anon, "/management").await.unwrap();
    assert_eq!(res.status().as_u16(), 302);
    assert_eq!(
        res.headers()[reqwest::header::LOCATION],
        "/login?next=/management"
    );

    let customer = app.user_with_role("mary", Role::Customer).await;
    let res = page(&customer, "/management").await.unwrap();
    assert_eq!(res.status().as_u16(), 403);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("You don't have access to this page")
    );
    let res = page(&customer, "/customer").await.unwrap();
    assert_eq!(
        res.status().as_u16(),
        200,
        "a refresh on the user's own page keeps them there"
    );
    let res = page(&customer, "/dashboard").await.unwrap();
    assert_eq!(res.headers()[reqwest::header::LOCATION], "/customer");
}

/// The reset link in the latest reset mail to `username`.
async fn reset_token(app: &TestApp, username: &str) -> String {
    wait_for_mail(&app.email_for(username), "Reset your password")
        .await
        .token_for("/reset-password")
}

async fn reset(app: &TestApp, token: &str, password: &str) -> (u16, serde_json::Value) {
    let form = [
        ("token", token),
        ("new_password", password),
        ("confirm_password", password),
    ];
    app.call(&app.new_client(), "password/reset", &form).await
}

#[tokio::test]
async fn manager_reset_links_go_to_the_user_and_work_once() {
    let app = spawn_app().await;
    let manager = app.user_with_role("nora", Role::SeniorManagement).await;
    app.user_with_role("nell", Role::SeniorManagement).await;
    let user = app.user_with_role("otto", Role::Customer).await;
    let id = app.user_id("otto").await.to_string();
    let (status, body) = app
        .call(&manager, "admin/users/reset-link", &[("id", &id)])
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        serde_json::Value::Null,
        "the manager never sees the link"
    );
    let token = reset_token(&app, "otto").await;
    let stored: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM email_tokens WHERE token_hash = UNHEX(SHA2(?, 256)) AND created_by IS NOT NULL",
    )
    .bind(&token)
    .fetch_one(&app.mysql)
    .await
    .unwrap();
    assert_eq!(
        stored, 1,
        "only the SHA-256 of the token is stored, with who asked"
    );

    // Not for oneself, nor for another senior manager.
    for target in ["nora", "nell"] {
        let target = app.user_id(target).await.to_string();
        let (status, body) = app
            .call(&manager, "admin/users/reset-link", &[("id", &target)])
            .await;
        assert_eq!(status, 409, "{body}");
    }

    let new_password = "Velvet-Compass-Rain-31";
    assert_eq!(reset(&app, &token, new_password).await.0, 200);
    assert_eq!(
        app.me(&user).await,
        serde_json::Value::Null,
        "the reset ended the user's sessions"
    );
    let (status, body) = reset(&app, &token, new_password).await;
    assert_eq!(status, 409, "second use is refused: {body}");
    assert_eq!(
        app.login(&app.new_client(), "otto", new_password).await.0,
        200
    );
    let notice = wait_for_mail(&app.email_for("otto"), "Your password was changed").await;
    assert!(
        notice.text.contains("other sessions were ended"),
        "{}",
        notice.text
    );

    app.call(&manager, "admin/users/reset-link", &[("id", &id)])
        .await;
    let token = reset_token(&app, "otto").await;
    sqlx::query("UPDATE email_tokens SET expires_at = UTC_TIMESTAMP(6) - INTERVAL 1 SECOND")
        .execute(&app.mysql)
        .await
        .unwrap();
    assert_eq!(
        reset(&app, &token, "Amber-Lantern-Quay-92").await.0,
        409,
        "expired links are refused"
    );
    let failures: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM auth_audit WHERE event = 'reset_failed'")
            .fetch_one(&app.mysql)
            .await
            .unwrap();
    assert_eq!(failures, 2, "failed resets are audited");
}

/// "Forgot password?" answers the same for any address; a new link, a password change
/// or a successful reset voids the older links.
#[tokio::test]
async fn forgotten_passwords_are_reset_by_mail_and_older_links_die() {
    let app = spawn_app().await;
    let user = app.user_with_role("fay", Role::Customer).await;
    let forgot = |email: String| {
        let app = &app;
        async move {
            app.call(&app.new_client(), "password/forgot", &[("email", &email)])
                .await
        }
    };
    let known = forgot(app.email_for("fay")).await;
    let unknown = forgot(app.email_for("nobody")).await;
    assert_eq!(
        known, unknown,
        "the same answer for a known and an unknown address"
    );
    assert_eq!(known.0, 200);
    let first = reset_token(&app, "fay").await;
    assert!(mail_to(&app.email_for("nobody")).await.is_empty());

    forgot(app.email_for("fay")).await;
    let second = loop {
        let t = reset_token(&app, "fay").await;
        if t != first {
            break t;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        reset(&app, &first, "Copper-Meadow-Tide-64").await.0,
        409,
        "a newer link voids the older"
    );

    // A password change voids outstanding links too.
    let (status, body) = app
        .call(
            &user,
            "password/change",
            &[
                ("current_password", PASSWORD),
                ("new_password", "Copper-Meadow-Tide-64"),
                ("confirm_password", "Copper-Meadow-Tide-64"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(reset(&app, &second, "Saffron-Bridge-Owl-77").await.0, 409);
    wait_for_mail(&app.email_for("fay"), "Your password was changed").await;

    // The address is limited: a fourth request within the hour is refused.
    assert_eq!(forgot(app.email_for("fay")).await.0, 200);
    assert_eq!(forgot(app.email_for("fay")).await.0, 429);
}

/// A wrong current password on the profile is throttled like a login, and audited.
#[tokio::test]
async fn current_password_guesses_are_throttled_and_audited() {
    let app = spawn_app().await;
    let user = app.user_with_role("gus", Role::Customer).await;
    let change = [
        ("current_password", "Wrong-Current-Pass-1"),
        ("new_password", "Granite-Harbor-Pine-58"),
        ("confirm_password", "Granite-Harbor-Pine-58"),
    ];
    for _ in 0..5 {
        assert_eq!(app.call(&user, "password/change", &change).await.0, 400);
    }
    let (status, body) = app.call(&user, "password/change", &change).await;
    assert_eq!(status, 429, "{body}");
    let audited: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM auth_audit WHERE event = 'password_check_failed'")
            .fetch_one(&app.mysql)
            .await
            .unwrap();
    assert_eq!(audited, 5);
}

#[tokio::test]
async fn approval_disabling_and_audit() {
    let app = spawn_app().await;
    let manager = app.user_with_role("pat", Role::SeniorManagement).await;
    register_and_verify(&app, "quinn", "technical_worker").await;
    let worker = app.new_client();
    assert_eq!(app.login(&worker, "quinn", PASSWORD).await.0, 200);
    let id = app.user_id("quinn").await.to_string();

    let (status, body) = app
        .call(
            &manager,
            "admin/users",
            &[("query", ""), ("status", "pending")],
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["users"].as_array().unwrap().len(), 1);
    assert_eq!(body["matching"], 1);
    let (status, body) = app
        .call(
            &manager,
            "admin/users/decide",
            &[("id", &id), ("approve", "true")],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "active");
    assert_eq!(app.me(&worker).await["status"], "active");

    let (status, _) = app
        .call(
            &manager,
            "admin/users/enabled",
            &[("id", &id), ("enabled", "false")],
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        app.me(&worker).await,
        serde_json::Value::Null,
        "disabling kills the sessions"
    );
    // Refused like a wrong password, so the answer never confirms a guessed one; the
    // owner learns why by mail.
    let (status, body) = app.login(&app.new_client(), "quinn", PASSWORD).await;
    assert_eq!(status, 401, "{body}");
    wait_for_mail(&app.email_for("quinn"), "A login to your disabled account").await;

    let own = app.user_id("pat").await.to_string();
    assert_eq!(
        app.call(
            &manager,
            "admin/users/enabled",
            &[("id", &own), ("enabled", "false")]
        )
        .await
        .0,
        409,
        "no self-lockout"
    );

    let (status, log) = app.call(&manager, "admin/audit", &[]).await;
    assert_eq!(status, 200);
    let events: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    for expected in [
        "registered",
        "approved",
        "disabled",
        "login_succeeded",
        "user_created",
    ] {
        assert!(
            events.contains(&expected),
            "{expected} missing from {events:?}"
        );
    }
    assert!(log[0]["ip"].as_str().is_some());
}

#[tokio::test]
async fn sessions_can_be_listed_and_revoked_and_password_change_ends_others() {
    let app = spawn_app().await;
    let laptop = app.user_with_role("rita", Role::Customer).await;
    let phone = app.new_client();
    assert_eq!(app.login(&phone, "rita", PASSWORD).await.0, 200);

    let (_, list) = app.call(&laptop, "sessions", &[]).await;
    let list = list.as_array().unwrap().clone();
    assert_eq!(list.len(), 2);
    let other = list.iter().find(|s| s["current"] == false).unwrap()["handle"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        app.call(&laptop, "sessions/revoke", &[("handle", &other)])
            .await
            .0,
        200
    );
    assert_eq!(app.me(&phone).await, serde_json::Value::Null);

    assert_eq!(app.login(&phone, "rita", PASSWORD).await.0, 200);
    let (status, body) = app
        .call(
            &laptop,
            "password/change",
            &[
                ("current_password", "Wrong-Current-9"),
                ("new_password", "Amber-Tunnel-Kite-64"),
                ("confirm_password", "Amber-Tunnel-Kite-64"),
            ],
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["Invalid"][0]["field"], "current_password");
    let (status, _) = app
        .call(
            &laptop,
            "password/change",
            &[
                ("current_password", PASSWORD),
                ("new_password", "Amber-Tunnel-Kite-64"),
                ("confirm_password", "Amber-Tunnel-Kite-64"),
            ],
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        app.me(&laptop).await["username"],
        "rita",
        "this session stays"
    );
    assert_eq!(
        app.me(&phone).await,
        serde_json::Value::Null,
        "other sessions end"
    );

    assert_eq!(app.call(&laptop, "sessions/revoke-all", &[]).await.0, 200);
    assert_eq!(
        app.me(&laptop).await,
        serde_json::Value::Null,
        "log out everywhere"
    );
}

#[tokio::test]
async fn cli_user_create_reads_the_password_from_stdin() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let app = spawn_app().await;
    let mysql_url = format!(
        "{}/{}",
        crate::helpers::mysql_base_url().rsplit_once('/').unwrap().0,
        app.db_name
    );
    let run = move |username: &str, password: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_server"))
            .args([
                "user",
                "create",
                "--username",
                username,
                "--email",
                &format!("{username}@example.com"),
                "--role",
                "senior_management",
            ])
            .env("MYSQL_URL", &mysql_url)
            .env("MONGODB_URI", crate::helpers::mongodb_uri())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run server binary");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{password}\n").as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let out = tokio::task::spawn_blocking(move || {
        (
            run("root.admin", PASSWORD),
            run("weak.admin", "password1234"),
        )
    })
    .await
    .unwrap();
    assert!(
        out.0.status.success(),
        "{}",
        String::from_utf8_lossy(&out.0.stderr)
    );
    assert!(!out.1.status.success());
    assert!(String::from_utf8_lossy(&out.1.stderr).contains("too common"));
    let client = app.new_client();
    assert_eq!(app.login(&client, "root.admin", PASSWORD).await.0, 200);
    assert_eq!(app.me(&client).await["status"], "active");
}

#[tokio::test]
async fn demo_accounts_are_seeded_once() {
    let app = spawn_app().await;
    assert_eq!(
        app::server::demo::seed_accounts(&app.mysql, &SecretKeys::development())
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        app::server::demo::seed_accounts(&app.mysql, &SecretKeys::development())
            .await
            .unwrap(),
        0
    );
    for demo in app::server::demo::DEMO_ACCOUNTS {
        let client = app.new_client();
        assert_eq!(
            app.login(&client, demo.username, demo.password).await.0,
            200
        );
        let me = app.me(&client).await;
        assert_eq!(me["role"], demo.role.as_str());
        // Staff have their published second factor (and `login` passed its step).
        let expected = if demo.totp_secret.is_some() {
            "Passed"
        } else {
            "Off"
        };
        assert_eq!(me["second_factor"], expected, "{}", demo.username);
    }
}

/// User administration pages its list, 50 a page, and says how many match; the search
/// finds any part of a username or address, and the status narrows it.
#[tokio::test]
async fn the_users_list_pages_and_searches() {
    let app = spawn_app().await;
    let manager = app.user_with_role("lister", Role::SeniorManagement).await;
    for i in 0..120 {
        let status = if i % 4 == 0 { "pending" } else { "active" };
        sqlx::query(
            "INSERT INTO users (username, username_key, email, email_verified_at, password_hash, role, status, created_at) \
             VALUES (?, ?, ?, UTC_TIMESTAMP(6), 'x', 'technical_worker', ?, UTC_TIMESTAMP(6))",
        )
        .bind(format!("page.user.{i}"))
        .bind(format!("page.user.{i}"))
        .bind(format!("u{i}@listed.example"))
        .bind(status)
        .execute(&app.mysql)
        .await
        .unwrap();
    }
    let list = |query: &'static str, status: &'static str, page: &'static str| {
        let (app, manager) = (&app, &manager);
        async move {
            let (code, body) = app
                .call(
                    manager,
                    "admin/users",
                    &[("query", query), ("status", status), ("page", page)],
                )
                .await;
            assert_eq!(code, 200, "{body}");
            body
        }
    };
    let first = list("page.user", "", "1").await;
    assert_eq!(
        (first["matching"].as_u64(), first["pages"].as_u64()),
        (Some(120), Some(3))
    );
    assert_eq!(first["users"].as_array().unwrap().len(), 50);
    assert!(
        first["users"].as_array().unwrap()[..30]
            .iter()
            .all(|u| u["status"] == "pending"),
        "pending accounts come first"
    );
    let last = list("page.user", "", "3").await;
    assert_eq!(last["users"].as_array().unwrap().len(), 20);
    let pending = list("LISTED.example", "pending", "1").await;
    assert_eq!(
        pending["matching"], 30,
        "address substring, any case, and the status"
    );
    let one = list("user.11", "", "1").await;
    let names: Vec<&str> = one["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 11, "user.11 and user.110-119: {names:?}");
}
