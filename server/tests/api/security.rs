//! Accounts and HTTP against OWASP ASVS level 2: personal data behind a verified
//! address, throttling that holds under parallel requests and cannot lock out an
//! account's owner, bounded work, security headers, malformed input answered 400.

use crate::helpers::{PASSWORD, TestApp, TestOptions, spawn_app, spawn_app_with, wait_for_mail};
use app::model::{Role, SaleInput};
use app::server::sales::{dual_write, generate};

/// The first sale a customer's address bought, written behind the scenes.
async fn a_purchase_by(app: &TestApp, email: &str) -> app::model::Sale {
    let mut draft = generate::sales(81).next().unwrap();
    draft.customer.email = app::model::Email::parse(email).unwrap();
    dual_write::writer(app.mysql.clone(), app.mongo.clone())
        .create(None, draft)
        .await
        .unwrap()
}

/// H-1: registering with someone's address must not show their purchases.
#[tokio::test]
async fn purchases_show_only_once_the_address_is_proven() {
    let app = spawn_app().await;
    let victim = app.email_for("victim");
    let sale = a_purchase_by(&app, &victim).await;
    let client = app.new_client();
    let (status, _) = app
        .call(
            &client,
            "register",
            &[
                ("username", "squatter"),
                ("email", &victim),
                ("password", PASSWORD),
                ("confirm_password", PASSWORD),
                ("role", "customer"),
            ],
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(app.login(&client, "squatter", PASSWORD).await.0, 200);
    let (status, body) = app.call(&client, "sales/mine", &[]).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body, "EmailUnverified");
    assert!(!body.to_string().contains(sale.id.as_str()));
    let page = client
        .get(app.url("/customer"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!page.contains(sale.id.as_str()), "nor in the page");
    assert!(!page.contains(&victim) || page.contains("confirm-email-first"));

    // The owner of the address confirms it: then the purchases are theirs to see.
    let token = wait_for_mail(&victim, "Confirm your email address")
        .await
        .token_for("/verify-email");
    assert_eq!(
        app.call(&client, "email/verify", &[("token", &token)])
            .await
            .0,
        200
    );
    let (status, body) = app.call(&client, "sales/mine", &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["count"], 1);
}

/// A new address becomes the account's only once confirmed from its inbox.
#[tokio::test]
async fn a_changed_address_is_confirmed_before_it_counts() {
    let app = spawn_app().await;
    let client = app.user_with_role("ella", Role::Customer).await;
    let new = app.email_for("ella.new");
    let (status, body) = app
        .call(
            &client,
            "email/change",
            &[("current_password", PASSWORD), ("email", &new)],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        app.me(&client).await["email"],
        app.email_for("ella"),
        "not yet"
    );
    wait_for_mail(
        &app.email_for("ella"),
        "Your email address is being changed",
    )
    .await;
    let token = wait_for_mail(&new, "Confirm your email address")
        .await
        .token_for("/verify-email");
    assert_eq!(
        app.call(&client, "email/verify", &[("token", &token)])
            .await
            .0,
        200
    );
    let me = app.me(&client).await;
    assert_eq!(
        (me["email"].as_str(), me["email_verified"].as_bool()),
        (Some(new.as_str()), Some(true))
    );
}

async fn audit_count(app: &TestApp, event: &str) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM auth_audit WHERE event = ?")
        .bind(event)
        .fetch_one(&app.mysql)
        .await
        .unwrap()
}

/// M-1: the failure is reserved before the password is checked, so a burst counts in
/// full; and a flood of refusals is audited once.
#[tokio::test]
async fn forty_parallel_guesses_reach_the_password_check_at_most_five_times() {
    let app = spawn_app().await;
    app.user_with_role("target", Role::Customer).await;
    let guesses = (0..40).map(|i| {
        let (app, client) = (&app, app.new_client());
        async move {
            app.login(&client, "target", &format!("Wrong-Guess-{i:03}"))
                .await
                .0
        }
    });
    let statuses = futures::future::join_all(guesses).await;
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    // Beyond the hashing queue's bound the answer is "busy, retry in a second".
    let shed = statuses.iter().filter(|s| **s == 503).count();
    assert_eq!(checked + refused + shed, 40, "{statuses:?}");
    assert!(refused > 0, "{statuses:?}");
    assert!(checked <= 5, "{checked} guesses reached the password check");
    assert!(audit_count(&app, "login_failed").await <= 5);
    for _ in 0..50 {
        app.login(&app.new_client(), "target", "Wrong-Guess-xyz")
            .await;
    }
    assert!(
        audit_count(&app, "login_throttled").await <= 1,
        "one audit row for a flood of refusals"
    );
}

/// M-6: a stranger guessing an account throttles strangers only: its owner's browser
/// (which logged in before) goes on, and another user behind the stranger's address is
/// not locked out.
#[tokio::test]
async fn the_owners_browser_logs_in_while_strangers_are_throttled() {
    let mut options = TestOptions::default();
    options.serve.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    let app = spawn_app_with(options).await;
    app.user_with_role("owner", Role::Customer).await;
    app.user_with_role("neighbour", Role::Customer).await;
    let behind = |address: &str| crate::helpers::from_address(&app, address);
    // The owner's browser logged in once, from home: it is now trusted for the account.
    let owners_browser = behind("198.51.100.7");
    assert_eq!(app.login(&owners_browser, "owner", PASSWORD).await.0, 200);
    app.call(&owners_browser, "logout", &[]).await;

    // An attacker at an office address guesses 40 times.
    let attacker = behind("203.0.113.50");
    let mut statuses = Vec::new();
    for i in 0..40 {
        statuses.push(
            app.login(&attacker, "owner", &format!("Guess-{i:03}-x"))
                .await
                .0,
        );
    }
    assert!(statuses.iter().filter(|s| **s == 401).count() <= 5);
    assert_eq!(statuses.last(), Some(&429));
    assert_eq!(
        app.login(&behind("198.51.100.99"), "owner", PASSWORD)
            .await
            .0,
        429,
        "a new browser is a stranger too, even with the right password"
    );
    assert_eq!(
        app.login(&owners_browser, "owner", PASSWORD).await.0,
        200,
        "the owner's browser is not locked out"
    );
    assert_eq!(
        app.login(&behind("203.0.113.50"), "neighbour", PASSWORD)
            .await
            .0,
        200,
        "another user behind the attacker's address is not locked out"
    );
}

/// M-2: anonymous requests that cost a password hash or send mail are limited per client.
#[tokio::test]
async fn registrations_from_one_client_are_limited() {
    let app = spawn_app().await;
    let mut statuses = Vec::new();
    for i in 0..11 {
        let (status, _) = app
            .register(&app.new_client(), &format!("reg{i}"), "customer")
            .await;
        statuses.push(status);
    }
    assert_eq!(&statuses[..10], &[200; 10]);
    assert_eq!(statuses[10], 429, "the 11th in an hour");
}

/// L-7: passwords over the maximum are refused before any hashing.
#[tokio::test]
async fn overlong_passwords_are_refused_without_hashing() {
    let app = spawn_app().await;
    app.user_with_role("long", Role::Customer).await;
    let huge = "x".repeat(100_000);
    let started = std::time::Instant::now();
    let (status, body) = app.login(&app.new_client(), "long", &huge).await;
    assert_eq!(status, 401, "{body}");
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
}

fn header<'a>(res: &'a reqwest::Response, name: &str) -> &'a str {
    res.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// M-3: security headers on every response; a strict CSP whose nonce is the one on
/// the page's scripts; nothing personal cached.
#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app = spawn_app().await;
    let client = app.user_with_role("hedy", Role::Customer).await;
    let login = app
        .new_client()
        .get(app.url("/login"))
        .send()
        .await
        .unwrap();
    let csp = header(&login, "content-security-policy").to_string();
    for directive in [
        "default-src 'self'",
        "frame-ancestors 'none'",
        "object-src 'none'",
        "base-uri 'none'",
        "'wasm-unsafe-eval'",
    ] {
        assert!(csp.contains(directive), "{directive} missing from {csp}");
    }
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    let nonce = csp
        .split("'nonce-")
        .nth(1)
        .and_then(|s| s.split('\'').next())
        .expect("a nonce")
        .to_string();
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "same-origin"),
        ("x-frame-options", "DENY"),
        ("cache-control", "no-store"),
    ] {
        assert_eq!(header(&login, name), value, "{name}");
    }
    assert!(
        header(&login, "strict-transport-security").is_empty(),
        "no HSTS over plain HTTP"
    );
    assert!(!header(&login, "x-request-id").is_empty());
    let html = login.text().await.unwrap();
    assert!(
        html.contains(&format!("nonce=\"{nonce}\"")),
        "the hydration script carries the nonce"
    );
    let again = app
        .new_client()
        .get(app.url("/login"))
        .send()
        .await
        .unwrap();
    assert_ne!(
        header(&again, "content-security-policy"),
        csp,
        "a new nonce per response"
    );

    let page = client.get(app.url("/profile")).send().await.unwrap();
    assert_eq!(header(&page, "cache-control"), "no-store");
    let api = client.post(app.url("/api/me")).send().await.unwrap();
    assert_eq!(header(&api, "cache-control"), "no-store");
    assert!(header(&api, "content-security-policy").contains("default-src 'none'"));

    let mut options = TestOptions::default();
    options.serve.cookie_secure = true;
    let secure = spawn_app_with(options).await;
    let res = reqwest::get(secure.url("/login")).await.unwrap();
    assert!(header(&res, "strict-transport-security").contains("max-age="));
}

/// L-8: the session cookie ends with the browser; logout clears what the browser cached.
#[tokio::test]
async fn the_session_cookie_is_not_persistent_and_logout_clears_site_data() {
    let app = spawn_app().await;
    app.user_with_role("sid", Role::Customer).await;
    let client = app.new_client();
    let res = client
        .post(app.url("/api/login"))
        .form(&[("username", "sid"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    let session = crate::helpers::session_cookie(&res).unwrap();
    assert!(
        !session.contains("Expires") && !session.contains("Max-Age"),
        "{session}"
    );
    let device = res
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("portal_device="))
        .expect("a device cookie");
    assert!(
        device.contains("HttpOnly") && device.contains("SameSite=Strict"),
        "{device}"
    );
    let out = client.post(app.url("/api/logout")).send().await.unwrap();
    assert!(header(&out, "clear-site-data").contains("\"cache\""));
}

async fn raw(
    app: &TestApp,
    client: &reqwest::Client,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, String) {
    let res = client
        .post(app.url(path))
        .header(reqwest::header::CONTENT_TYPE, content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

/// A request the server cannot read is the client's fault: 400, in the app's words.
#[tokio::test]
async fn malformed_requests_are_answered_400_in_the_apps_words() {
    let app = spawn_app().await;
    let worker = app.user_with_role("mal", Role::TechnicalWorker).await;
    let form = "application/x-www-form-urlencoded";
    let json = "application/json";
    for (path, content_type, body) in [
        ("/api/sales/get", form, b"".to_vec()),
        (
            "/api/sales/delete",
            form,
            b"token=&id=x&version=notanumber".to_vec(),
        ),
        ("/api/sales/create", json, b"{\"token\": 5}".to_vec()),
        ("/api/sales/create", json, b"{not json".to_vec()),
        ("/api/sales/list", "application/xml", b"<query/>".to_vec()),
        (
            "/api/admin/users/decide",
            form,
            b"id=-1&approve=maybe".to_vec(),
        ),
        ("/api/login", form, vec![0xff, 0xfe, 0x00]),
    ] {
        let (status, body) = raw(&app, &worker, path, content_type, body).await;
        assert!(
            matches!(status, 400 | 403),
            "{path} {content_type}: {status} {body}"
        );
        assert!(
            !body.contains("deserializ") && !body.contains("missing field"),
            "{path}: {body}"
        );
    }
    let (status, body) = raw(&app, &worker, "/api/no/such/function", form, vec![]).await;
    assert_eq!((status, body.as_str()), (404, "\"NotFound\""));
    let (status, body) = raw(&app, &worker, "/api/sales/get", form, vec![b'a'; 300_000]).await;
    assert_eq!((status, body.as_str()), (413, "\"TooLarge\""));
}

/// L-7: a sale stops parsing at its 101st item, its date is within reason, and its
/// text holds no invisible formatting characters.
#[tokio::test]
async fn sale_input_is_bounded() {
    let app = spawn_app().await;
    let worker = app.user_with_role("bounds", Role::TechnicalWorker).await;
    let valid = SaleInput::from(&generate::sales(82).next().unwrap());
    let submit = |input: SaleInput| {
        let (app, worker) = (&app, &worker);
        async move {
            app.call_json(
                worker,
                "sales/create",
                &serde_json::json!({ "token": "", "input": input }),
            )
            .await
        }
    };
    let mut many = valid.clone();
    many.items = vec![valid.items[0].clone(); 500];
    let (status, body) = submit(many).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["Invalid"].as_array().unwrap().len(),
        1,
        "one error, not one per item"
    );

    for (date, why) in [
        ("1969-12-31T23:00", "before 1970"),
        ("2999-01-01T00:00", "in the future"),
    ] {
        let mut input = valid.clone();
        input.sale_date = date.into();
        let (status, body) = submit(input).await;
        assert_eq!(status, 400, "{why}: {body}");
        assert_eq!(body["Invalid"][0]["field"], "sale_date", "{why}");
    }
    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(3))
        .format("%Y-%m-%dT%H:%M")
        .to_string();
    let mut input = valid.clone();
    input.sale_date = tomorrow;
    assert_eq!(submit(input).await.0, 400, "after tomorrow");

    let mut input = valid.clone();
    input.store_location = "Den\u{202E}revn".into();
    let (status, body) = submit(input).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("invisible"), "{body}");
    let mut input = valid;
    input.items[0].name = "pen\u{200B}cil".into();
    assert_eq!(submit(input).await.0, 400);

    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sales")
        .fetch_one(&app.mysql)
        .await
        .unwrap();
    assert_eq!(count, 0, "nothing was written");
}
