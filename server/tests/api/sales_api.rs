//! The dashboards' server functions over HTTP: a customer's purchases, the staff's
//! filtered and paginated table, edits through the dual writer, and analytics numbers
//! checked against direct queries of the sales tables.

use crate::helpers::{TestApp, spawn_app};
use app::model::report::{Analytics, Purchases, SalesPage};
use app::model::{Role, Sale, SaleInput};
use app::server::sales::{dual_write, generate};
use rust_decimal::Decimal;
use serde_json::json;

/// `n` generated sales through the dual writer; every third bought by `email`.
async fn seed(app: &TestApp, n: usize, email: &str) -> Vec<Sale> {
    let writer = dual_write::writer(app.mysql.clone(), app.mongo.clone());
    let mut out = Vec::new();
    for (i, mut draft) in generate::sales(61).take(n).enumerate() {
        if i % 3 == 0 {
            draft.customer.email = app::model::Email::parse(email).unwrap();
        }
        out.push(writer.create(None, draft).await.expect("seed sale"));
    }
    out
}

#[tokio::test]
async fn a_customer_sees_exactly_their_own_purchases() {
    let app = spawn_app().await;
    let sales = seed(&app, 36, "shopper@example.com").await;
    let mine: Vec<&Sale> = sales
        .iter()
        .filter(|s| s.draft.customer.email.as_str() == "shopper@example.com")
        .collect();
    let customer = app
        .user_with_email("shopper", "shopper@example.com", Role::Customer)
        .await;

    let (status, body) = app.call(&customer, "sales/mine", &[("page", "1")]).await;
    assert_eq!(status, 200, "{body}");
    let first: Purchases = serde_json::from_value(body).unwrap();
    assert_eq!(first.count, mine.len() as u64);
    assert_eq!(
        first.spent,
        mine.iter().map(|s| s.draft.total()).sum::<Decimal>()
    );
    assert_eq!((first.page, first.pages), (1, 2));
    assert_eq!(first.sales.len(), 10);
    let (_, body) = app.call(&customer, "sales/mine", &[("page", "2")]).await;
    let second: Purchases = serde_json::from_value(body).unwrap();
    assert_eq!(second.sales.len(), mine.len() - 10);
    let shown: Vec<&Sale> = first.sales.iter().chain(second.sales.iter()).collect();
    assert!(
        shown
            .iter()
            .all(|s| s.draft.customer.email.as_str() == "shopper@example.com"),
        "only the account's own sales"
    );
    assert!(
        shown
            .windows(2)
            .all(|w| w[0].draft.sale_date >= w[1].draft.sale_date),
        "newest first"
    );
    let mut stores: std::collections::HashMap<String, usize> = Default::default();
    for s in &mine {
        *stores
            .entry(s.draft.store_location.to_string())
            .or_default() += 1;
    }
    let top = stores.values().max().copied().unwrap();
    let favourite = first.favourite_store.unwrap();
    assert_eq!(
        stores[&favourite], top,
        "the favourite store has the most purchases"
    );

    // The other endpoints are not a way around it.
    let (status, _) = app
        .call_json(&customer, "sales/list", &json!({ "query": {} }))
        .await;
    assert_eq!(status, 403);
    let other = sales
        .iter()
        .find(|s| s.draft.customer.email.as_str() != "shopper@example.com")
        .unwrap();
    let (status, _) = app
        .call(&customer, "sales/get", &[("id", other.id.as_str())])
        .await;
    assert_eq!(status, 403);
}

async fn list(app: &TestApp, client: &reqwest::Client, args: &[(&str, &str)]) -> SalesPage {
    let query: serde_json::Map<String, serde_json::Value> = args
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    let (status, body) = app
        .call_json(client, "sales/list", &json!({ "query": query }))
        .await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_value(body).unwrap()
}

async fn count(app: &TestApp, sql: &str) -> u64 {
    sqlx::query_scalar::<_, i64>(sql)
        .fetch_one(&app.mysql)
        .await
        .unwrap() as u64
}

#[tokio::test]
async fn the_sales_table_filters_sorts_and_paginates_on_the_server() {
    let app = spawn_app().await;
    seed(&app, 80, "regular@example.com").await;
    let worker = app
        .user_with_role("table.worker", Role::TechnicalWorker)
        .await;

    let all = list(&app, &worker, &[]).await;
    assert_eq!(all.matching, 80);
    assert_eq!((all.rows.len(), all.pages), (25, 4));
    assert!(
        all.rows
            .windows(2)
            .all(|w| w[0].sale_date >= w[1].sale_date),
        "newest first by default"
    );
    let page4 = list(&app, &worker, &[("page", "4")]).await;
    assert_eq!(page4.rows.len(), 5);
    let page2 = list(&app, &worker, &[("page", "2")]).await;
    assert!(
        page2
            .rows
            .iter()
            .all(|r| !all.rows.iter().any(|a| a.id == r.id)),
        "pages do not overlap"
    );

    let store = all.stores[0].clone();
    let by_store = list(&app, &worker, &[("store", &store)]).await;
    assert!(by_store.rows.iter().all(|r| r.store_location == store));
    assert_eq!(
        by_store.matching,
        count(
            &app,
            &format!("SELECT COUNT(*) FROM sales WHERE store_location = '{store}'")
        )
        .await
    );

    let online = list(&app, &worker, &[("method", "Online"), ("coupon", "no")]).await;
    assert!(
        online
            .rows
            .iter()
            .all(|r| r.purchase_method.as_str() == "Online" && !r.coupon_used)
    );
    assert_eq!(
        online.matching,
        count(
            &app,
            "SELECT COUNT(*) FROM sales WHERE purchase_method = 'Online' AND NOT coupon_used"
        )
        .await
    );

    let dated = list(
        &app,
        &worker,
        &[
            ("from", "2015-01-01"),
            ("to", "2015-12-31"),
            ("sort", "total_desc"),
        ],
    )
    .await;
    assert!(
        dated
            .rows
            .iter()
            .all(|r| r.sale_date.format("%Y").to_string() == "2015")
    );
    assert!(
        dated.rows.windows(2).all(|w| w[0].total >= w[1].total),
        "largest total first"
    );
    assert_eq!(
        dated.matching,
        count(&app, "SELECT COUNT(*) FROM sales WHERE sale_date >= '2015-01-01' AND sale_date < '2016-01-01'").await
    );

    let email = list(&app, &worker, &[("q", "REGULAR@")]).await;
    assert_eq!(
        email.matching, 27,
        "the whole address as a word prefix, case-insensitive"
    );

    let (status, body) = app
        .call_json(
            &worker,
            "sales/list",
            &json!({ "query": { "method": "Fax", "page": "0" } }),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let fields: Vec<&str> = body["Invalid"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["method", "page"]);
}

fn input_json(input: &SaleInput) -> serde_json::Value {
    serde_json::to_value(input).unwrap()
}

#[tokio::test]
async fn edits_go_through_the_dual_writer_with_clear_errors() {
    let app = spawn_app().await;
    let worker = app
        .user_with_role("edit.worker", Role::TechnicalWorker)
        .await;
    let draft = generate::sales(62).next().unwrap();
    let mut input = SaleInput::from(&draft);

    // The list's "N matching" follows each edit at once, cached or not.
    assert_eq!(list(&app, &worker, &[]).await.matching, 0);
    let (status, token) = app.call(&worker, "sales/token", &[]).await;
    assert_eq!(status, 200);
    let token = token.as_str().unwrap().to_string();
    let body = json!({ "token": token, "input": input_json(&input) });
    let (status, created) = app.call_json(&worker, "sales/create", &body).await;
    assert_eq!(status, 200, "{created}");
    let (status, again) = app.call_json(&worker, "sales/create", &body).await;
    assert_eq!(
        (status, &again),
        (200, &created),
        "a retried submission is applied once"
    );
    let sale: Sale = serde_json::from_value(created).unwrap();
    assert_eq!(count(&app, "SELECT COUNT(*) FROM sales").await, 1);
    assert_eq!(list(&app, &worker, &[]).await.matching, 1);

    // Invalid input: every problem named, nothing written.
    input.customer_age = "200".into();
    input.items[0].price = "-1".into();
    let (status, body) = app
        .call_json(
            &worker,
            "sales/update",
            &json!({ "token": "", "id": sale.id, "version": 1, "input": input_json(&input) }),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let fields: Vec<&str> = body["Invalid"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["customer_age", "items.0.price"]);

    input.customer_age = "33".into();
    input.items[0].price = "9.99".into();
    let update = |version: u64| json!({ "token": "", "id": sale.id, "version": version, "input": input_json(&input) });
    let (status, body) = app.call_json(&worker, "sales/update", &update(1)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["version"], 2);
    let (status, body) = app.call_json(&worker, "sales/update", &update(1)).await;
    assert_eq!(status, 409, "a stale version is a conflict: {body}");
    assert!(body.to_string().contains("changed by someone else"));

    let (status, body) = app
        .call(&worker, "sales/get", &[("id", sale.id.as_str())])
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["sale"]["version"], 2);
    let (status, _) = app
        .call(
            &worker,
            "sales/delete",
            &[("token", ""), ("id", sale.id.as_str()), ("version", "2")],
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM sales").await, 0);
    assert_eq!(list(&app, &worker, &[]).await.matching, 0);
    let (status, _) = app
        .call(&worker, "sales/get", &[("id", sale.id.as_str())])
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_match_count_follows_a_sync_repair_at_once() {
    let app = spawn_app().await;
    seed(&app, 30, "drift@example.com").await;
    let worker = app
        .user_with_role("count.worker", Role::TechnicalWorker)
        .await;
    // The backup loses three of the ten sales behind the app's back, and the list
    // counts (and caches) what is left.
    sqlx::query("DELETE FROM sales WHERE customer_email = 'drift@example.com' LIMIT 3")
        .execute(&app.mysql)
        .await
        .unwrap();
    let filter = [("q", "drift@")];
    assert_eq!(list(&app, &worker, &filter).await.matching, 7);

    app.run_sync_from_panel(&worker).await;
    assert_eq!(
        list(&app, &worker, &filter).await.matching,
        10,
        "the repaired rows count at once, not after the cache's 5 s"
    );
}

/// The analytics straight from the sales tables, for comparison.
async fn direct(
    app: &TestApp,
    range: &str,
) -> (Decimal, u64, u64, u64, Vec<(String, Decimal)>, Decimal) {
    let (revenue, sales, coupons, sat): (Option<Decimal>, i64, Option<Decimal>, Option<Decimal>) = sqlx::query_as(&format!(
        "SELECT SUM(total), COUNT(*), SUM(coupon_used), SUM(customer_satisfaction) FROM sales WHERE {range}"
    ))
    .fetch_one(&app.mysql)
    .await
    .unwrap();
    let by_store: Vec<(String, Decimal)> = sqlx::query_as(&format!(
        "SELECT store_location, SUM(total) FROM sales WHERE {range} GROUP BY store_location ORDER BY 2 DESC, 1"
    ))
    .fetch_all(&app.mysql)
    .await
    .unwrap();
    let top_item: Option<Decimal> = sqlx::query_scalar(&format!(
        "SELECT SUM(i.price * i.quantity) FROM sale_items i JOIN sales s ON s.id = i.sale_id WHERE {range} \
         GROUP BY i.name ORDER BY 1 DESC LIMIT 1"
    ))
    .fetch_optional(&app.mysql)
    .await
    .unwrap();
    use rust_decimal::prelude::ToPrimitive;
    (
        revenue.unwrap_or_default(),
        sales as u64,
        coupons.and_then(|c| c.to_u64()).unwrap_or(0),
        sat.and_then(|c| c.to_u64()).unwrap_or(0),
        by_store,
        top_item.unwrap_or_default(),
    )
}

/// The analytics for `args` (the page's URL fields) against the same figures read from
/// the sales tables with `range` (SQL over `sales`).
async fn assert_analytics_match(
    app: &TestApp,
    manager: &reqwest::Client,
    args: &[(&str, &str)],
    range: &str,
) {
    let (status, body) = app.call(manager, "analytics", args).await;
    assert_eq!(status, 200, "{body}");
    let a: Analytics = serde_json::from_value(body).unwrap();
    let (revenue, sales, coupons, sat, by_store, top_item) = direct(app, range).await;
    assert_eq!(a.kpis.revenue, revenue, "revenue to the cent");
    assert_eq!(a.kpis.sales, sales);
    let n = Decimal::from(sales.max(1));
    assert_eq!(a.kpis.average_basket, (revenue / n).round_dp(2));
    assert_eq!(a.kpis.coupon_rate, (Decimal::from(coupons) / n).round_dp(4));
    assert_eq!(
        a.kpis.average_satisfaction,
        (Decimal::from(sat) / n).round_dp(2)
    );
    assert_eq!(
        a.by_store
            .iter()
            .map(|s| (s.label.clone(), s.revenue))
            .collect::<Vec<_>>(),
        by_store
    );
    assert_eq!(
        a.trend.points.iter().map(|p| p.revenue).sum::<Decimal>(),
        revenue,
        "the trend adds up"
    );
    assert_eq!(a.trend.points.iter().map(|p| p.sales).sum::<u64>(), sales);
    assert_eq!(a.by_method.iter().map(|m| m.sales).sum::<u64>(), sales);
    assert_eq!(a.satisfaction.iter().sum::<u64>(), sales);
    assert_eq!(
        a.top_items.first().map(|i| i.revenue).unwrap_or_default(),
        top_item
    );
}

#[tokio::test]
async fn analytics_agree_with_the_sales_tables_to_the_cent() {
    let app = spawn_app().await;
    let sales = seed(&app, 120, "x@example.com").await;
    let manager = app.user_with_role("an.boss", Role::SeniorManagement).await;
    assert_analytics_match(&app, &manager, &[("from", ""), ("to", "")], "1 = 1").await;
    assert_analytics_match(
        &app,
        &manager,
        &[("from", "2014-01-01"), ("to", "2015-06-30")],
        "sale_date >= '2014-01-01' AND sale_date < '2015-07-01'",
    )
    .await;
    // One store, one purchase method, both, and a range with them: top items included.
    let store = sales[0].draft.store_location.to_string();
    let store_sql = format!("store_location = '{store}'");
    assert_analytics_match(
        &app,
        &manager,
        &[("from", ""), ("to", ""), ("store", &store)],
        &store_sql,
    )
    .await;
    assert_analytics_match(
        &app,
        &manager,
        &[("from", ""), ("to", ""), ("method", "Online")],
        "purchase_method = 'Online'",
    )
    .await;
    assert_analytics_match(
        &app,
        &manager,
        &[
            ("from", "2014-01-01"),
            ("to", "2016-12-31"),
            ("store", &store),
            ("method", "In store"),
        ],
        &format!(
            "{store_sql} AND purchase_method = 'In store' AND sale_date >= '2014-01-01' AND sale_date < '2017-01-01'"
        ),
    )
    .await;

    // The rollups follow every edit.
    let writer = dual_write::writer(app.mysql.clone(), app.mongo.clone());
    let mut drafts = generate::sales(63);
    for s in sales.iter().take(10) {
        writer
            .update(None, &s.id, 1, drafts.next().unwrap())
            .await
            .unwrap();
    }
    for s in sales.iter().skip(10).take(5) {
        writer.delete(None, &s.id, 1).await.unwrap();
    }
    assert_analytics_match(&app, &manager, &[("from", ""), ("to", "")], "1 = 1").await;
    assert_analytics_match(
        &app,
        &manager,
        &[("from", ""), ("to", ""), ("store", &store)],
        &store_sql,
    )
    .await;

    let (status, body) = app
        .call(
            &manager,
            "analytics",
            &[("from", "2016-01-01"), ("to", "2015-01-01")],
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = app
        .call(
            &manager,
            "analytics",
            &[("from", ""), ("to", ""), ("method", "Carrier pigeon")],
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("method"), "{body}");
    let worker = app.user_with_role("an.worker", Role::TechnicalWorker).await;
    assert_eq!(
        app.call(&worker, "analytics", &[("from", ""), ("to", "")])
            .await
            .0,
        403
    );
}

#[tokio::test]
async fn kpis_compare_with_the_previous_period_of_the_same_length() {
    let app = spawn_app().await;
    let writer = dual_write::writer(app.mysql.clone(), app.mongo.clone());
    // March 2016 (31 days) and the 31 days before it, 30 January to 29 February; one
    // sale on 29 January, just outside both.
    let days = [
        ("2016-01-29T12:00:00Z", false),
        ("2016-01-30T09:00:00Z", true),
        ("2016-02-29T18:00:00Z", true),
        ("2016-03-01T08:00:00Z", false),
        ("2016-03-15T12:00:00Z", false),
        ("2016-03-31T23:00:00Z", false),
    ];
    let mut drafts = generate::sales(64);
    let mut before = (Decimal::ZERO, 0u64);
    let mut now = (Decimal::ZERO, 0u64);
    for (at, previous) in days {
        let mut draft = drafts.next().unwrap();
        draft.sale_date = at.parse().unwrap();
        let march = at.starts_with("2016-03");
        let total = draft.total();
        writer.create(None, draft).await.unwrap();
        if previous {
            before = (before.0 + total, before.1 + 1);
        } else if march {
            now = (now.0 + total, now.1 + 1);
        }
    }
    let manager = app.user_with_role("cmp.boss", Role::SeniorManagement).await;
    let (status, body) = app
        .call(
            &manager,
            "analytics",
            &[("from", "2016-03-01"), ("to", "2016-03-31")],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let a: Analytics = serde_json::from_value(body).unwrap();
    assert_eq!((a.kpis.revenue, a.kpis.sales), now);
    let p = a.previous.expect("a closed range has a previous period");
    assert_eq!((p.revenue, p.sales), before);
    // 31 days: one point a day, those without sales at zero.
    assert_eq!(a.trend.step, app::model::analytics::Step::Day);
    assert_eq!(a.trend.points.len(), 31);
    assert_eq!(a.trend.points[14].sales, 1, "15 March");
    assert_eq!(a.trend.points.iter().filter(|p| p.sales > 0).count(), 3);

    // An open range has no period of the same length before it.
    let (_, body) = app
        .call(&manager, "analytics", &[("from", "2016-03-01"), ("to", "")])
        .await;
    let open: Analytics = serde_json::from_value(body).unwrap();
    assert_eq!(open.previous, None);
    assert_eq!(open.kpis.sales, 3);
}
