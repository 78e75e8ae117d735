//! Every registered server function, fed thousands of mutated, malformed and oversized
//! payloads as every role: no answer is a 500 or leaks a decoder's or driver's text,
//! no request is dropped, and neither store is changed by what was refused.

use crate::helpers::{TestApp, spawn_app};
use app::model::{Role, SaleInput};
use app::server::sales::{dual_write, generate};
use futures::StreamExt;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

/// Argument names of the app's server functions, and a few they do not have.
const FIELDS: &[&str] = &[
    "username",
    "password",
    "confirm_password",
    "new_password",
    "current_password",
    "email",
    "role",
    "token",
    "id",
    "version",
    "input",
    "query",
    "status",
    "page",
    "approve",
    "enabled",
    "dry_run",
    "next",
    "handle",
    "before_id",
    "from",
    "to",
    "admin",
    "is_manager",
];

/// Values that are wrong for every argument: none names an existing account, sale,
/// token or password, so nothing the fuzzer sends may be accepted as a change.
const VALUES: &[&str] = &[
    "",
    " ",
    "-1",
    "18446744073709551616",
    "99999999999",
    "1e309",
    "NaN",
    "maybe",
    "null",
    "[]",
    "{}",
    "../../etc/passwd",
    "' OR '1'='1",
    "\"; DROP TABLE users; --",
    "<script>alert(1)</script>",
    "%00",
    "\u{0}",
    "\u{202E}gnp.exe",
    "a\u{200B}b",
    "senior_management",
    "https://evil.example/",
    "//evil.example",
    "😀😀😀",
    "ｆｕｌｌｗｉｄｔｈ",
];

fn hostile(rng: &mut StdRng) -> String {
    match rng.gen_range(0..10) {
        0 => "x".repeat(rng.gen_range(1_000..60_000)),
        1 => (0..rng.gen_range(1..40))
            .map(|_| char::from_u32(rng.gen_range(0x20..0x3000)).unwrap_or('?'))
            .collect(),
        _ => (*VALUES.choose(rng).expect("values")).to_owned(),
    }
}

/// A JSON value of a random shape, up to `depth` deep.
fn random_json(rng: &mut StdRng, depth: u32) -> Value {
    match rng.gen_range(0..if depth == 0 { 5 } else { 7 }) {
        0 => Value::Null,
        1 => json!(rng.r#gen::<bool>()),
        2 => json!(rng.gen_range(-1_000_000_000_000i64..1_000_000_000_000)),
        3 => json!(rng.r#gen::<f64>() * 1e12),
        4 => json!(hostile(rng)),
        5 => Value::Array(
            (0..rng.gen_range(0..4))
                .map(|_| random_json(rng, depth - 1))
                .collect(),
        ),
        _ => Value::Object(
            (0..rng.gen_range(0..5))
                .map(|_| {
                    let key = FIELDS.choose(rng).expect("fields").to_string();
                    (key, random_json(rng, depth - 1))
                })
                .collect(),
        ),
    }
}

/// Every leaf's path in `value`.
fn leaves(value: &Value, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                path.push(k.clone());
                leaves(v, path, out);
                path.pop();
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                path.push(i.to_string());
                leaves(v, path, out);
                path.pop();
            }
        }
        _ => out.push(path.clone()),
    }
}

fn leaf_mut<'a>(value: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    path.iter().try_fold(value, |v, key| match v {
        Value::Object(map) => map.get_mut(key),
        Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get_mut(i)),
        _ => None,
    })
}

/// A valid sale made invalid in one place: a wrong type, a hidden formatting character,
/// an over-long text, or a number out of range.
fn mutated_sale(rng: &mut StdRng, valid: &Value) -> Value {
    let mut sale = valid.clone();
    let mut paths = Vec::new();
    leaves(&sale, &mut Vec::new(), &mut paths);
    let path = paths.choose(rng).expect("a sale has leaves").clone();
    let Some(leaf) = leaf_mut(&mut sale, &path) else {
        return sale;
    };
    *leaf = match (rng.gen_range(0..5), &*leaf) {
        (0, Value::String(s)) => json!(format!("{s}\u{202E}")),
        (1, Value::String(s)) => json!(format!("\u{200B}{s}")),
        (2, Value::String(s)) => json!(s.repeat(2_000)),
        (3, Value::String(_)) => json!(["not", "a", "string"]),
        (_, Value::String(_)) => json!(rng.gen_range(-99i64..99)),
        (_, Value::Bool(_)) => json!("yes please"),
        _ => json!({ "nested": true }),
    };
    sale
}

enum Payload {
    Form(Vec<(String, String)>),
    Json(Value),
    Raw(&'static str, Vec<u8>),
    Get,
}

fn payloads(rng: &mut StdRng, path: &str, valid_sale: &Value) -> Vec<Payload> {
    let mut out = vec![
        Payload::Form(Vec::new()),
        Payload::Get,
        Payload::Raw(
            "application/x-www-form-urlencoded",
            vec![0xff, 0xfe, b'=', 0x80],
        ),
        Payload::Raw("application/json", b"{\"unterminated\": ".to_vec()),
        Payload::Raw("text/plain", b"id=987654321&version=x".to_vec()),
        Payload::Raw(
            "multipart/form-data; boundary=x",
            b"--x\r\n\r\n--x--".to_vec(),
        ),
        Payload::Raw("application/x-www-form-urlencoded", vec![b'a'; 300 * 1024]),
        Payload::Json(json!([1, 2, 3])),
    ];
    for _ in 0..8 {
        let fields = (0..rng.gen_range(1..7))
            .map(|_| {
                (
                    FIELDS.choose(rng).expect("fields").to_string(),
                    hostile(rng),
                )
            })
            .collect();
        out.push(Payload::Form(fields));
    }
    for _ in 0..4 {
        out.push(Payload::Json(random_json(rng, 3)));
    }
    if path.ends_with("/sales/create") || path.ends_with("/sales/update") {
        for _ in 0..30 {
            let input = mutated_sale(rng, valid_sale);
            out.push(Payload::Json(json!({
                "token": hostile(rng),
                "id": "64b7f0000000000000000000",
                "input": input,
            })));
        }
    }
    out
}

/// What the stores hold that a refused request must not change. Sessions, throttle
/// counters and the audit log are left out: refusals are meant to touch those.
async fn snapshot(app: &TestApp) -> (Vec<(String, Option<i64>)>, Vec<bson::Document>) {
    #[derive(sqlx::FromRow)]
    struct Checksum {
        #[sqlx(rename = "Table")]
        table: String,
        #[sqlx(rename = "Checksum")]
        checksum: Option<i64>,
    }
    let tables: Vec<Checksum> = sqlx::query_as(
        "CHECKSUM TABLE users, email_tokens, trusted_devices, mail_outbox, sales, sale_items, \
         sale_item_tags, sales_daily, item_daily, sale_intents, sale_feed_head, sale_feed",
    )
    .fetch_all(&app.mysql)
    .await
    .expect("checksums");
    let documents = app
        .mongo
        .collection::<bson::Document>("sales")
        .find(bson::doc! {})
        .sort(bson::doc! { "_id": 1 })
        .await
        .expect("sales")
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .expect("documents");
    (
        tables.into_iter().map(|t| (t.table, t.checksum)).collect(),
        documents,
    )
}

/// Words of the decoders and drivers that must never reach a client.
const LEAKS: &[&str] = &[
    "deserializ",
    "missing field",
    "invalid type",
    "sqlx",
    "mongo",
    "panicked",
    "Error {",
    "at line",
    "expected",
    "ServerFnError",
];

#[tokio::test]
async fn no_payload_makes_an_endpoint_fail_or_change_the_stores() {
    let app = spawn_app().await;
    let writer = dual_write::writer(app.mysql.clone(), app.mongo.clone());
    for draft in generate::sales(83).take(20) {
        writer.create(None, draft).await.expect("seed sale");
    }
    let valid_sale = serde_json::to_value(SaleInput::from(
        &generate::sales(84).next().expect("a sale"),
    ))
    .expect("json");
    let mut roles = vec![("anonymous", app.new_client())];
    for (name, role) in [
        ("customer", Role::Customer),
        ("worker", Role::TechnicalWorker),
        ("manager", Role::SeniorManagement),
    ] {
        roles.push((
            name,
            app.user_with_role(&format!("fuzz.{name}"), role).await,
        ));
    }
    // A client with no Origin header, as a cross-site form would be.
    roles.push(("cross-site", reqwest::Client::new()));

    let mut paths: Vec<(&'static str, http::Method)> =
        leptos::server_fn::axum::server_fn_paths().collect();
    assert!(
        paths.len() >= 30 && paths.iter().any(|(p, _)| *p == "/api/login"),
        "the server functions are registered: {paths:?}"
    );
    // Starting a second-factor set-up takes no input, so no payload of it is malformed:
    // every call is a real request, which mails a set-up code by design. The
    // authorization matrix covers who may call it.
    paths.retain(|(p, _)| *p != "/api/two-factor/begin");
    // Ending a session last, so each role stays logged in for the rest.
    paths.sort_by_key(|(p, _)| (p.contains("logout") || p.contains("revoke"), *p));

    let before = snapshot(&app).await;
    let mut rng = StdRng::seed_from_u64(13);
    let mut requests = Vec::new();
    for (role, client) in &roles {
        for (path, method) in &paths {
            for payload in payloads(&mut rng, path, &valid_sale) {
                requests.push((*role, client.clone(), *path, method.clone(), payload));
            }
        }
    }
    let total = requests.len();
    assert!(total > 3_000, "thousands of payloads: {total}");

    let statuses = std::sync::Mutex::new(std::collections::BTreeMap::<u16, usize>::new());
    let failures: Vec<String> = futures::stream::iter(requests)
        .map(|(role, client, path, method, payload)| {
            let (url, statuses) = (app.url(path), &statuses);
            async move {
                let request = match &payload {
                    Payload::Get => client.get(&url),
                    Payload::Form(fields) => client.request(method, &url).form(fields),
                    Payload::Json(value) => client.request(method, &url).json(value),
                    Payload::Raw(content_type, body) => client
                        .request(method, &url)
                        .header(reqwest::header::CONTENT_TYPE, *content_type)
                        .body(body.clone()),
                };
                let res = match request.send().await {
                    Ok(res) => res,
                    Err(e) => return Some(format!("{role} {path}: no answer: {e}")),
                };
                let status = res.status();
                *statuses
                    .lock()
                    .expect("not poisoned")
                    .entry(status.as_u16())
                    .or_default() += 1;
                let body = res.text().await.unwrap_or_default();
                let leak = LEAKS.iter().find(|w| body.contains(*w));
                let refused = !status.is_success();
                if status.is_server_error() && status != 503 {
                    Some(format!("{role} {path}: {status} {body}"))
                } else if refused && leak.is_some() {
                    Some(format!("{role} {path}: {status} leaks {leak:?}: {body}"))
                } else if refused && serde_json::from_str::<app::model::AppError>(&body).is_err() {
                    Some(format!(
                        "{role} {path}: {status} is not an app error: {body}"
                    ))
                } else if status.is_success()
                    && [
                        "/create",
                        "/update",
                        "/delete",
                        "/decide",
                        "/role",
                        "/enabled",
                        "/change",
                        "/reset",
                        "/reset-link",
                        "/register",
                        "/verify",
                    ]
                    .iter()
                    .any(|w| path.ends_with(w))
                {
                    Some(format!("{role} {path}: a fuzzed change was accepted"))
                } else {
                    None
                }
            }
        })
        .buffer_unordered(8)
        .filter_map(|f| async move { f })
        .collect()
        .await;
    eprintln!(
        "{total} requests, answers by status: {:?}",
        statuses.lock().expect("not poisoned")
    );
    assert!(
        failures.is_empty(),
        "{} of {total} requests failed, e.g.:\n{}",
        failures.len(),
        failures
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    let after = snapshot(&app).await;
    assert_eq!(before.0, after.0, "MySQL is unchanged");
    assert!(before.1 == after.1, "MongoDB is unchanged");
}
