use crate::helpers::{Proxy, TestOptions, mongo_target, mysql_target, spawn_app, spawn_app_with};
use serde_json::Value;
use std::time::Duration;

async fn healthz(app: &crate::helpers::TestApp) -> (u16, Value) {
    let res = app
        .client
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("request");
    let status = res.status().as_u16();
    (status, res.json().await.expect("JSON body"))
}

/// Polls until /healthz answers `want`, so tests do not depend on driver timing.
async fn wait_for_health(app: &crate::helpers::TestApp, want: u16) -> Value {
    let mut last = Value::Null;
    for _ in 0..40 {
        let (status, body) = healthz(app).await;
        if status == want {
            return body;
        }
        last = body;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("/healthz never returned {want}; last body: {last}");
}

#[tokio::test]
async fn healthz_reports_both_stores_up() {
    let app = spawn_app().await;
    let (status, body) = healthz(&app).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ok");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    for store in ["mysql", "mongodb"] {
        assert_eq!(body[store]["up"], true, "{store}: {body}");
        assert!(
            body[store]["rtt_ms"].as_f64().is_some(),
            "{store} has a round-trip time"
        );
    }
}

#[tokio::test]
async fn home_page_is_server_rendered() {
    let app = spawn_app().await;
    let res = app.client.get(app.url("/")).send().await.expect("request");
    assert_eq!(res.status().as_u16(), 200);
    let html = res.text().await.expect("body");
    assert!(
        html.contains("Service status"),
        "status card rendered on the server"
    );
    assert!(
        html.contains("/pkg/portal.js"),
        "hydration script is linked"
    );
}

#[tokio::test]
async fn unknown_page_is_404() {
    let app = spawn_app().await;
    let res = app
        .client
        .get(app.url("/definitely/not/here"))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status().as_u16(), 404);
    assert!(res.text().await.expect("body").contains("Page not found"));
}

/// An app whose traffic to `store` goes through a proxy the test can cut.
async fn behind_proxy(store: app::model::Database) -> (Proxy, crate::helpers::TestApp) {
    use app::model::Database;
    let mut options = TestOptions::default();
    let proxy = match store {
        Database::MySql | Database::Reporting => Proxy::start(mysql_target()).await,
        Database::MongoDb => Proxy::start(mongo_target()).await,
    };
    match store {
        Database::MySql | Database::Reporting => options.mysql_addr = Some(proxy.addr),
        Database::MongoDb => options.mongo_addr = Some(proxy.addr),
    }
    (proxy, spawn_app_with(options).await)
}

#[tokio::test]
async fn mongodb_outage_turns_health_503_and_recovers_without_restart() {
    let (proxy, app) = behind_proxy(app::model::Database::MongoDb).await;
    wait_for_health(&app, 200).await;

    proxy.cut();
    let body = wait_for_health(&app, 503).await;
    assert_eq!(body["mongodb"]["up"], false, "{body}");
    assert_eq!(body["mysql"]["up"], true, "{body}");
    let page = app.client.get(app.url("/")).send().await.expect("request");
    assert_eq!(
        page.status().as_u16(),
        200,
        "pages are still served while MongoDB is down"
    );

    proxy.restore();
    let body = wait_for_health(&app, 200).await;
    assert_eq!(body["mongodb"]["up"], true);
}

#[tokio::test]
async fn mysql_outage_turns_health_503_and_recovers_without_restart() {
    let (proxy, app) = behind_proxy(app::model::Database::MySql).await;
    wait_for_health(&app, 200).await;

    proxy.cut();
    let body = wait_for_health(&app, 503).await;
    assert_eq!(body["mysql"]["up"], false, "{body}");
    assert_eq!(body["mongodb"]["up"], true, "{body}");

    proxy.restore();
    wait_for_health(&app, 200).await;
}

#[tokio::test]
async fn server_starts_while_mysql_is_down_and_migrates_when_it_returns() {
    let proxy = Proxy::start(mysql_target()).await;
    proxy.cut();
    let app = spawn_app_with(TestOptions {
        mysql_addr: Some(proxy.addr),
        ..Default::default()
    })
    .await;
    let body = wait_for_health(&app, 503).await;
    assert_eq!(body["mysql"]["up"], false);

    proxy.restore();
    wait_for_health(&app, 200).await;
    // The deferred migrations ran: the schema exists in the test database.
    let mut tables = 0;
    for _ in 0..40 {
        tables = sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = 'users'",
        )
        .fetch_one(&app.mysql)
        .await
        .expect("count tables");
        if tables == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(tables, 1, "migrations applied after MySQL came back");
}

#[tokio::test]
async fn while_mongodb_is_down_the_sales_pages_say_so_and_the_rest_keeps_working() {
    use app::model::{AppError, Database, Role, SaleInput};
    use app::server::sales::dual_write::{self, Primary};
    use app::server::sales::generate;
    let (proxy, app) = behind_proxy(app::model::Database::MongoDb).await;
    // Written past the proxy, straight to both stores.
    let sale = dual_write::writer(app.mysql.clone(), app.mongo.clone())
        .create(None, generate::sales(71).next().unwrap())
        .await
        .unwrap();
    let worker = app
        .user_with_role("outage.worker", Role::TechnicalWorker)
        .await;
    proxy.cut();
    wait_for_health(&app, 503).await;

    let page = |path: String| {
        let (worker, url) = (worker.clone(), app.url(&path));
        async move {
            let res = worker.get(url).send().await.expect("request");
            (res.status().as_u16(), res.text().await.expect("body"))
        }
    };
    // The table and the replication panel read MySQL: they keep working.
    let (status, html) = page("/worker".into()).await;
    assert_eq!(status, 200);
    assert!(html.contains(r#"data-testid="sales-table""#), "{html}");
    assert!(html.contains(sale.draft.customer.email.as_str()));
    assert!(html.contains(r#"data-testid="replication""#));
    // Editing needs MongoDB's copy: the page is rendered with the status of its own
    // data (503), the form's place says why, and the navigation around it stays.
    let (status, html) = page(format!("/worker/sales/{}", sale.id)).await;
    assert_eq!(status, 503);
    assert!(html.contains(r#"data-testid="error-note""#), "{html}");
    assert!(html.contains("The sales database is unavailable right now"));
    assert!(html.contains(r#"class="topbar""#));
    // A save says the same, and changes nothing.
    let body = serde_json::json!({
        "token": "", "id": sale.id, "version": 1,
        "input": serde_json::to_value(SaleInput::from(&sale.draft)).unwrap(),
    });
    let (status, body) = app.call_json(&worker, "sales/update", &body).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        serde_json::from_value::<AppError>(body).unwrap(),
        AppError::Unavailable(Database::MongoDb)
    );

    proxy.restore();
    wait_for_health(&app, 200).await;
    let writer = dual_write::writer(app.mysql.clone(), app.mongo.clone());
    let stored = writer.primary().get(&sale.id).await.unwrap().unwrap();
    assert_eq!(stored.version, 1, "the failed save left the sale as it was");
}

#[tokio::test]
async fn while_mysql_is_down_pages_say_so_and_public_ones_still_serve() {
    let (proxy, app) = behind_proxy(app::model::Database::MySql).await;
    let worker = app
        .user_with_role("outage.reader", app::model::Role::TechnicalWorker)
        .await;
    proxy.cut();
    wait_for_health(&app, 503).await;
    let get = |path: &'static str| {
        let (worker, url) = (worker.clone(), app.url(path));
        async move {
            let res = worker.get(url).send().await.expect("request");
            (res.status().as_u16(), res.text().await.expect("body"))
        }
    };
    for path in ["/", "/login"] {
        assert_eq!(get(path).await.0, 200, "{path} needs no database");
    }
    // Sessions live in MySQL: a signed-in page cannot tell who is asking, and says why.
    for path in ["/worker", "/management"] {
        let (status, html) = get(path).await;
        assert_eq!(status, 503, "{path}");
        assert!(
            html.contains("The account database is unavailable right now"),
            "{path}: {html}"
        );
    }
    let (status, body) = app
        .login(&worker, "outage.reader", crate::helpers::PASSWORD)
        .await;
    assert_eq!(
        (status, body),
        (503, serde_json::json!({ "Unavailable": "MySql" }))
    );
}
