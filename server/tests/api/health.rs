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

#[tokio::test]
async fn mongodb_outage_turns_health_503_and_recovers_without_restart() {
    let proxy = Proxy::start(mongo_target()).await;
    let app = spawn_app_with(TestOptions {
        mongo_addr: Some(proxy.addr),
        ..Default::default()
    })
    .await;
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
    let proxy = Proxy::start(mysql_target()).await;
    let app = spawn_app_with(TestOptions {
        mysql_addr: Some(proxy.addr),
        ..Default::default()
    })
    .await;
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
