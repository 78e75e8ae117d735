//! What a customer does with their own account: download their purchases, and close
//! the account.

use crate::helpers::{PASSWORD, TestApp, spawn_app};
use app::model::{Email, Role, Sale};
use app::server::sales::{dual_write, generate};
use rust_decimal::Decimal;
use std::collections::HashMap;

/// `n` generated sales through the dual writer; every other one bought by `email`.
async fn seed(app: &TestApp, n: usize, email: &str) -> Vec<Sale> {
    let writer = dual_write::writer(app.mysql.clone(), app.mongo.clone());
    let mut out = Vec::new();
    for (i, mut draft) in generate::sales(83).take(n).enumerate() {
        if i % 2 == 0 {
            draft.customer.email = Email::parse(email).unwrap();
        }
        out.push(writer.create(None, draft).await.expect("seed sale"));
    }
    out
}

async fn get(client: &reqwest::Client, url: &str) -> (u16, String, String) {
    let res = client.get(url).send().await.expect("download");
    let status = res.status().as_u16();
    let kind = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (status, kind, res.text().await.expect("body"))
}

async fn count(app: &TestApp, sql: &str, id: u64) -> i64 {
    sqlx::query_scalar(sql)
        .bind(id)
        .fetch_one(&app.mysql)
        .await
        .expect(sql)
}

#[tokio::test]
async fn a_customer_downloads_exactly_their_own_purchases_item_by_item() {
    let app = spawn_app().await;
    let email = app.email_for("cleo");
    let sales = seed(&app, 12, &email).await;
    let customer = app.user_with_email("cleo", &email, Role::Customer).await;
    let url = app.url("/api/export/purchases.csv");

    let (status, kind, csv) = get(&customer, &url).await;
    assert_eq!(status, 200, "{csv}");
    assert!(kind.starts_with("text/csv"), "{kind}");
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(header[0], "sale_id");
    let column = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();

    let mine: Vec<&Sale> = sales
        .iter()
        .filter(|s| s.draft.customer.email.as_str() == email)
        .collect();
    let items: usize = mine.iter().map(|s| s.draft.items.len()).sum();
    assert_eq!(rows.len(), items, "one line per item of her own sales");
    // Each sale's lines add up to its total, to the cent.
    let mut by_sale: HashMap<&str, Decimal> = HashMap::new();
    for row in &rows {
        let line: Decimal = row[column("item_total")].parse().unwrap();
        *by_sale.entry(row[column("sale_id")]).or_default() += line;
    }
    assert_eq!(by_sale.len(), mine.len());
    for sale in &mine {
        assert_eq!(by_sale[sale.id.as_str()], sale.draft.total(), "{}", sale.id);
    }
    let dates: Vec<&str> = rows.iter().map(|r| r[column("sale_date_utc")]).collect();
    assert!(dates.windows(2).all(|w| w[0] >= w[1]), "newest first");

    // Staff have their own export; the anonymous have none.
    let worker = app.user_with_role("wes", Role::TechnicalWorker).await;
    assert_eq!(get(&worker, &url).await.0, 403);
    assert_eq!(get(&app.new_client(), &url).await.0, 401);
}

#[tokio::test]
async fn closing_an_account_deletes_the_person_and_keeps_the_sales() {
    let app = spawn_app().await;
    let email = app.email_for("dora");
    let sales = seed(&app, 6, &email).await;
    let customer = app.user_with_email("dora", &email, Role::Customer).await;
    let elsewhere = app.new_client();
    assert_eq!(app.login(&elsewhere, "dora", PASSWORD).await.0, 200);
    let id = app.user_id("dora").await;

    // A wrong password changes nothing.
    let (status, body) = app
        .call(&customer, "account/close", &[("current_password", "wrong")])
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("current_password"), "{body}");
    assert_eq!(app.me(&customer).await["username"], "dora");

    let (status, body) = app
        .call(
            &customer,
            "account/close",
            &[("current_password", PASSWORD)],
        )
        .await;
    assert_eq!(status, 200, "{body}");

    // Every session is over, and the name and password lead nowhere.
    assert!(app.me(&customer).await.is_null());
    assert!(app.me(&elsewhere).await.is_null());
    assert_ne!(app.login(&app.new_client(), "dora", PASSWORD).await.0, 200);

    // The row is a tombstone without personal data; what hung off it is gone.
    #[derive(sqlx::FromRow)]
    struct Tombstone {
        username: String,
        email: String,
        password_hash: String,
        status: String,
    }
    let row: Tombstone =
        sqlx::query_as("SELECT username, email, password_hash, status FROM users WHERE id = ?")
            .bind(id)
            .fetch_one(&app.mysql)
            .await
            .unwrap();
    assert_eq!(row.status, "closed");
    assert!(!row.username.contains("dora") && !row.email.contains("dora"));
    assert!(row.password_hash.is_empty());
    for table in ["user_sessions", "trusted_devices", "email_tokens"] {
        let sql = format!("SELECT COUNT(*) FROM {table} WHERE user_id = ?");
        assert_eq!(count(&app, &sql, id).await, 0, "{table}");
    }
    let mails: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM mail_outbox WHERE recipient = ?")
        .bind(&email)
        .fetch_one(&app.mysql)
        .await
        .unwrap();
    assert_eq!(mails, 0, "no mail to her address is kept");
    let closed = count(
        &app,
        "SELECT COUNT(*) FROM auth_audit WHERE user_id = ? AND event = 'account_closed'",
        id,
    )
    .await;
    assert_eq!(closed, 1, "recorded in the audit log");

    // The sales belong to the stores: all still there, in both stores.
    let kept: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sales WHERE customer_email = ?")
        .bind(&email)
        .fetch_one(&app.mysql)
        .await
        .unwrap();
    let hers = sales
        .iter()
        .filter(|s| s.draft.customer.email.as_str() == email)
        .count();
    assert_eq!(kept as usize, hers);
    let in_mongo = app::server::sales::primary::collection(&app.mongo)
        .count_documents(mongodb::bson::doc! { "customer.email": &email })
        .await
        .unwrap();
    assert_eq!(in_mongo as usize, hers);

    // The address is free again: the person may come back as a new customer.
    let (status, body) = app
        .call(
            &app.new_client(),
            "register",
            &[
                ("username", "dora"),
                ("email", &email),
                ("password", PASSWORD),
                ("confirm_password", PASSWORD),
                ("role", "customer"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_ne!(app.user_id("dora").await, id, "a new account");
}

#[tokio::test]
async fn closing_an_account_with_a_second_factor_needs_a_code() {
    let app = spawn_app().await;
    app.user_with_role("eve", Role::Customer).await;
    let id = app.user_id("eve").await;
    app.enrol_second_factor(id).await;
    let customer = app.new_client();
    let (status, body) = app.login(&customer, "eve", PASSWORD).await;
    assert_eq!(status, 200, "{body}");

    let (status, body) = app
        .call(
            &customer,
            "account/close",
            &[("current_password", PASSWORD)],
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("code"), "{body}");
    let (status, body) = app
        .call(
            &customer,
            "account/close",
            &[("current_password", PASSWORD), ("code", "000000")],
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(app.me(&customer).await["username"], "eve", "still open");

    let code = app.next_code(id).await;
    let (status, body) = app
        .call(
            &customer,
            "account/close",
            &[("current_password", PASSWORD), ("code", &code)],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let factors = count(
        &app,
        "SELECT COUNT(*) FROM second_factors WHERE user_id = ?",
        id,
    )
    .await;
    assert_eq!(factors, 0);

    // Staff cannot close their own accounts: a manager disables them.
    let worker = app.user_with_role("wim", Role::TechnicalWorker).await;
    let (status, _) = app
        .call(&worker, "account/close", &[("current_password", PASSWORD)])
        .await;
    assert_eq!(status, 403);
}
