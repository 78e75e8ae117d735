//! The sales table's search box, its sort by every column and its pages: what each
//! finds, through the server function, and what each request costs the database, on a
//! table large enough that a scan would show.

use crate::helpers::{TestApp, spawn_app};
use app::model::report::{SaleRow, SalesFilter, SalesPage, SalesQuery, SortColumn};
use app::model::{Email, ItemName, Role};
use app::server::sales::list::{self, CountCache, SearchPlan};
use app::server::sales::{dual_write, generate, rollups};
use serde_json::json;
use sqlx::{MySqlPool, Row};

async fn list_page(
    app: &TestApp,
    client: &reqwest::Client,
    args: &[(&str, &str)],
) -> (u16, serde_json::Value) {
    let query: serde_json::Map<String, serde_json::Value> = args
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    app.call_json(client, "sales/list", &json!({ "query": query }))
        .await
}

async fn found(app: &TestApp, client: &reqwest::Client, args: &[(&str, &str)]) -> SalesPage {
    let (status, body) = list_page(app, client, args).await;
    assert_eq!(status, 200, "{args:?}: {body}");
    serde_json::from_value(body).unwrap()
}

fn ids(page: &SalesPage) -> Vec<String> {
    let mut ids: Vec<String> = page.rows.iter().map(|r| r.id.to_string()).collect();
    ids.sort();
    ids
}

/// One box finds a sale by its id or the start of it, by any word (or word start) of
/// the customer's address, and by a word of an item's name; letters inside a word do
/// not match.
#[tokio::test]
async fn one_search_box_finds_a_sale_by_id_address_word_or_item() {
    let app = spawn_app().await;
    let worker = app.user_with_role("finder", Role::TechnicalWorker).await;
    let writer = dual_write::writer(app.mysql.clone(), app.mongo.clone());
    let addresses = [
        "j.smith@mail.example.co.uk",
        "smith.j@post.org",
        "ann-marie+news@shop.de",
        "other@elsewhere.com",
    ];
    let mut sales = Vec::new();
    for (i, mut draft) in generate::sales(5).take(8).enumerate() {
        draft.customer.email = Email::parse(addresses[i % 4]).unwrap();
        for item in &mut draft.items {
            item.name = ItemName::parse(if i == 5 { "Printer Paper" } else { "Laptop" }).unwrap();
        }
        sales.push(writer.create(None, draft).await.unwrap());
    }
    let with = |pick: &dyn Fn(usize) -> bool| {
        let mut ids: Vec<String> = (0..8)
            .filter(|i| pick(*i))
            .map(|i| sales[i].id.to_string())
            .collect();
        ids.sort();
        ids
    };
    for (q, expected) in [
        ("smith", with(&|i| i % 4 < 2)),
        ("SMI", with(&|i| i % 4 < 2)),
        ("marie", with(&|i| i % 4 == 2)),
        ("news@", with(&|i| i % 4 == 2)),
        ("example.co", with(&|i| i % 4 == 0)),
        ("paper", with(&|i| i == 5)),
        ("printer pa", with(&|i| i == 5)),
        ("lap", with(&|i| i != 5)),
        ("mith", vec![]),
        ("xample", vec![]),
    ] {
        let page = found(&app, &worker, &[("q", q)]).await;
        assert_eq!(ids(&page), expected, "search {q:?}");
        assert_eq!(page.matching, expected.len() as u64, "count for {q:?}");
    }
    let id = sales[3].id.to_string();
    for q in [
        id.clone(),
        id[..10].to_uppercase(),
        format!(" {} ", &id[..8]),
    ] {
        let page = found(&app, &worker, &[("q", &q)]).await;
        assert!(ids(&page).contains(&id), "id search {q:?}");
        assert!(
            page.rows
                .iter()
                .all(|r| r.id.as_str().starts_with(&id[..8]))
        );
    }
    // Search and filters together, and a sale that no longer exists is not found.
    let denver = found(
        &app,
        &worker,
        &[
            ("q", "smith"),
            ("store", sales[0].draft.store_location.as_str()),
        ],
    )
    .await;
    assert!(
        denver
            .rows
            .iter()
            .all(|r| r.store_location == sales[0].draft.store_location.as_str())
    );
    writer
        .delete(None, &sales[0].id, sales[0].version)
        .await
        .unwrap();
    let after = found(&app, &worker, &[("q", sales[0].id.as_str())]).await;
    assert_eq!(after.matching, 0, "a deleted sale is no longer found");
    let (count,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM sale_search_terms WHERE sale_id = ?")
            .bind(sales[0].id.as_str())
            .fetch_one(&app.mysql)
            .await
            .unwrap();
    assert_eq!(count, 0, "its words went with it");
}

/// Every column sorts both ways, ties broken by date then id in the same direction;
/// pages hold 25, 50 or 100 rows; anything else is refused by name.
#[tokio::test]
async fn every_column_sorts_both_ways_and_pages_hold_the_size_asked_for() {
    let app = spawn_app().await;
    let worker = app.user_with_role("sorter", Role::TechnicalWorker).await;
    let writer = dual_write::writer(app.mysql.clone(), app.mongo.clone());
    for draft in generate::sales(23).take(60) {
        writer.create(None, draft).await.unwrap();
    }
    // Each column's value as text that sorts like it, and whether ties go by date
    // (category columns) or straight to the id (dates and totals, which rarely tie).
    type Key = fn(&SaleRow) -> String;
    let keys: [(SortColumn, Key, bool); 7] = [
        (SortColumn::Date, |r| r.sale_date.to_rfc3339(), false),
        (SortColumn::Store, |r| r.store_location.to_lowercase(), true),
        (
            SortColumn::Method,
            |r| r.purchase_method.as_str().into(),
            true,
        ),
        (
            SortColumn::Coupon,
            |r| u8::from(r.coupon_used).to_string(),
            true,
        ),
        (
            SortColumn::Customer,
            |r| r.customer_email.to_lowercase(),
            true,
        ),
        (SortColumn::Items, |r| format!("{:05}", r.items), true),
        (SortColumn::Total, |r| format!("{:020}", r.total), false),
    ];
    for (column, key, by_date) in keys {
        for direction in ["asc", "desc"] {
            let sort = format!("{}_{direction}", column.as_str());
            let page = found(&app, &worker, &[("sort", &sort), ("size", "100")]).await;
            assert_eq!(page.rows.len(), 60, "{sort}");
            let tuples: Vec<_> = page
                .rows
                .iter()
                .map(|r| (key(r), by_date.then_some(r.sale_date), r.id.to_string()))
                .collect();
            let mut expected = tuples.clone();
            expected.sort();
            if direction == "desc" {
                expected.reverse();
            }
            assert_eq!(tuples, expected, "{sort}");
        }
    }
    let first = found(&app, &worker, &[("size", "50")]).await;
    assert_eq!((first.rows.len(), first.pages, first.size), (50, 2, 50));
    let second = found(&app, &worker, &[("size", "50"), ("page", "2")]).await;
    assert_eq!(second.rows.len(), 10);
    let (status, body) = list_page(&app, &worker, &[("size", "30")]).await;
    assert_eq!(status, 400);
    assert_eq!(body["Invalid"][0]["field"], "size", "{body}");
    let (status, body) = list_page(&app, &worker, &[("sort", "colour_asc")]).await;
    assert_eq!(
        (status, body["Invalid"][0]["field"].as_str()),
        (400, Some("sort")),
        "{body}"
    );
}

/// Sales in the shape the generator gives, written straight into the backup tables
/// with their search terms and rollups: 150,000 is more than any request may examine.
async fn many_sales(pool: &MySqlPool, n: u64) {
    let run = |sql: String| async move {
        sqlx::query(&sql)
            .execute(pool)
            .await
            .unwrap_or_else(|e| panic!("{e}: {sql}"));
    };
    run("CREATE TABLE digits (d INT NOT NULL)".into()).await;
    run("INSERT INTO digits VALUES (0), (1), (2), (3), (4), (5), (6), (7), (8), (9)".into()).await;
    run(format!(
        "INSERT INTO sales (id, sale_date, store_location, purchase_method, coupon_used, customer_gender, \
         customer_age, customer_email, customer_satisfaction, item_count, total, version, updated_at) \
         SELECT LPAD(LOWER(HEX(n)), 24, '0'), \
                TIMESTAMP('2015-01-01') + INTERVAL (n % 1000) DAY + INTERVAL (n * 37 % 86400) SECOND, \
                ELT(1 + n % 5, 'Denver', 'Seattle', 'London', 'Austin', 'New York'), \
                ELT(1 + n % 3, 'In store', 'Online', 'Phone'), n % 2, ELT(1 + n % 2, 'F', 'M'), 18 + n % 60, \
                CONCAT(ELT(1 + n % 20, 'smith', 'jones', 'kawit', 'lee', 'garcia', 'nguyen', 'brown', 'okafor', \
                            'silva', 'novak', 'haas', 'ito', 'kim', 'moreau', 'olsen', 'patel', 'rossi', 'sato', 'weber', 'zhou'), '.', \
                       LOWER(HEX(n)), '@', ELT(1 + (n DIV 20) % 4, 'mail.com', 'shop.co.uk', 'example.de', 'post.org')), \
                1 + n % 5, 1 + n % 6, (n * 7919 % 100000) / 100, 1, NOW(6) \
         FROM (SELECT a.d + 10 * b.d + 100 * c.d + 1000 * e.d + 10000 * f.d + 100000 * g.d AS n \
               FROM digits a, digits b, digits c, digits e, digits f, digits g) seq \
         WHERE n < {n}"
    ))
    .await;
    // Four sales in five have a notepad first: a word too common to search through its terms.
    run("INSERT INTO sale_items (sale_id, position, name, price, quantity) \
         SELECT s.id, p.d, IF(p.d = 0 AND CONV(s.id, 16, 10) % 5 <> 0, 'Notepad', \
                ELT(1 + (CONV(s.id, 16, 10) + p.d) % 6, 'Printer Paper', 'Laptop', 'Pens', 'Envelopes', 'Backpack', 'Binder')), \
                1 + p.d, 1 \
         FROM sales s JOIN digits p ON p.d < s.item_count"
        .into())
    .await;
    // The terms `model::search` would give these addresses and names.
    for term in [
        "customer_email",
        "SUBSTRING(customer_email, LOCATE('.', customer_email) + 1)",
        "SUBSTRING_INDEX(customer_email, '@', -1)",
        "SUBSTRING_INDEX(customer_email, '.', -1)",
    ] {
        run(format!(
            "INSERT IGNORE INTO sale_search_terms (term, sale_id) SELECT {term}, id FROM sales"
        ))
        .await;
    }
    run("INSERT IGNORE INTO sale_search_terms (term, sale_id) SELECT LOWER(name), sale_id FROM sale_items".into()).await;
    run("INSERT IGNORE INTO sale_search_terms (term, sale_id) \
         SELECT LOWER(SUBSTRING_INDEX(name, ' ', -1)), sale_id FROM sale_items WHERE name LIKE '% %'"
        .into())
    .await;
    run("UPDATE sales s JOIN (SELECT sale_id, CONCAT('\\n', GROUP_CONCAT(term SEPARATOR '\\n'), '\\n') AS text \
         FROM sale_search_terms GROUP BY sale_id) t ON t.sale_id = s.id SET s.search_text = t.text"
        .into())
    .await;
    rollups::rebuild(pool).await.unwrap();
}

/// Index entries and rows this connection has read so far (`Handler_read%`).
async fn reads(conn: &MySqlPool) -> u64 {
    let rows = sqlx::query("SHOW SESSION STATUS LIKE 'Handler_read%'")
        .fetch_all(conn)
        .await
        .unwrap();
    rows.iter()
        .map(|r| {
            let value: String = r.get(1);
            value.parse::<u64>().unwrap()
        })
        .sum()
}

fn filter(args: &[(&str, &str)]) -> SalesFilter {
    let mut q = serde_json::Map::new();
    for (k, v) in args {
        q.insert(k.to_string(), json!(v));
    }
    serde_json::from_value::<SalesQuery>(serde_json::Value::Object(q))
        .unwrap()
        .parse()
        .unwrap()
}

/// Every kind of list request, on 150,000 sales: each reads at most 100,000 index
/// entries and rows in all (counted by the server's handler counters, with the count
/// computed afresh), its page's plan touches no table whole (`EXPLAIN`: no `ALL`, no
/// full index scan), and a page past the budget is refused with what to do instead.
#[tokio::test]
async fn every_list_request_stays_within_its_budget_of_rows_examined() {
    const BUDGET: u64 = 100_000;
    let app = spawn_app().await;
    many_sales(&app.mysql, 150_000).await;
    // One connection, so its session counters are the request's.
    let conn = sqlx::pool::PoolOptions::<sqlx::MySql>::new()
        .max_connections(1)
        .connect_with(app.databases.mysql.clone())
        .await
        .unwrap();
    let overhead = {
        let a = reads(&conn).await;
        reads(&conn).await - a
    };
    let deepest = format!("{}", list_deepest_page(100));
    type Shape<'a> = (&'a str, Vec<(&'a str, &'a str)>, SearchPlan);
    let shapes: Vec<Shape> = vec![
        ("first page", vec![], SearchPlan::Postings),
        (
            "deepest page",
            vec![("size", "100"), ("page", &deepest)],
            SearchPlan::Postings,
        ),
        (
            "a store, by total",
            vec![("store", "Denver"), ("sort", "total_desc")],
            SearchPlan::Postings,
        ),
        (
            "by customer, ascending",
            vec![("sort", "customer_asc")],
            SearchPlan::Postings,
        ),
        (
            "by items",
            vec![("sort", "items_desc")],
            SearchPlan::Postings,
        ),
        (
            "by coupon",
            vec![("sort", "coupon_asc")],
            SearchPlan::Postings,
        ),
        (
            "by method",
            vec![("sort", "method_desc")],
            SearchPlan::Postings,
        ),
        (
            "an id's start",
            vec![("q", "000000000000000000001")],
            SearchPlan::Postings,
        ),
        (
            "one customer's word",
            vec![("q", "1e240")],
            SearchPlan::Postings,
        ),
        ("a common name", vec![("q", "smith")], SearchPlan::Postings),
        (
            "a common name, by total",
            vec![("q", "smith"), ("sort", "total_desc")],
            SearchPlan::Postings,
        ),
        (
            "a common name, last page",
            vec![("q", "smith"), ("size", "100"), ("page", "75")],
            SearchPlan::Postings,
        ),
        (
            "a domain in a store",
            vec![("q", "mail.com"), ("store", "Austin")],
            SearchPlan::Probe,
        ),
        (
            "an item on most sales",
            vec![("q", "notepad")],
            SearchPlan::Probe,
        ),
        (
            "an item on most sales, last page",
            vec![("q", "note"), ("size", "100"), ("page", "3")],
            SearchPlan::Probe,
        ),
        (
            "an item on most sales, by total",
            vec![("q", "notepad"), ("sort", "total_asc")],
            SearchPlan::Probe,
        ),
        (
            "an item on most sales, one day",
            vec![
                ("q", "notepad"),
                ("from", "2016-03-02"),
                ("to", "2016-03-02"),
            ],
            SearchPlan::Probe,
        ),
    ];
    let mut report = Vec::new();
    for (name, args, expected_plan) in shapes {
        let f = filter(&args);
        if let Some(search) = &f.search {
            assert_eq!(
                list::choose_plan(&conn, search).await.unwrap(),
                expected_plan,
                "{name}"
            );
        }
        let before = reads(&conn).await;
        let page = list::list(&conn, &CountCache::default(), &f)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        let read = reads(&conn).await - before - overhead;
        report.push(format!(
            "{name}: {read} reads, {} matching{}",
            page.matching,
            if page.matching_exact { "" } else { " or more" }
        ));
        assert!(
            !page.rows.is_empty(),
            "{name} found no sales\n{}",
            report.join("\n")
        );
        assert!(
            read <= BUDGET,
            "{name} read {read} entries\n{}",
            report.join("\n")
        );

        let mut explain = list::page_query("EXPLAIN SELECT", &f, expected_plan);
        for row in explain.build().fetch_all(&conn).await.unwrap() {
            let table: Option<String> = row.try_get("table").unwrap();
            let access: Option<String> = row.try_get("type").unwrap();
            // A derived table is the page's own few ids; an index walked in order
            // (`index`) stops at the LIMIT, which the read counts above bound.
            let base = table.as_deref().is_some_and(|t| !t.starts_with('<'));
            assert!(
                !(base && access.as_deref() == Some("ALL")),
                "{name}: {table:?} read whole"
            );
        }
    }
    println!("{}", report.join("\n"));

    // Filters whose index does not give the order: the walk passes over the sales they
    // leave out, so the list pages less deep, and its deepest page stays in budget.
    let args = [
        ("store", "Denver"),
        ("method", "Online"),
        ("sort", "total_desc"),
        ("size", "100"),
    ];
    let first = list::list(&conn, &CountCache::default(), &filter(&args))
        .await
        .unwrap();
    assert!(
        first.pages > 1 && first.pages < 300,
        "{} pages",
        first.pages
    );
    let deepest_page = first.pages.to_string();
    let deepest = filter(&[args.as_slice(), &[("page", deepest_page.as_str())]].concat());
    let before = reads(&conn).await;
    let page = list::list(&conn, &CountCache::default(), &deepest)
        .await
        .unwrap();
    let read = reads(&conn).await - before - overhead;
    assert!(!page.rows.is_empty());
    assert!(
        read <= BUDGET,
        "a store and a method by total, page {deepest_page}: {read} reads"
    );

    // Past the budget: refused in words, with what to do instead.
    for args in [
        vec![("size", "100"), ("page", "1001")],
        vec![("q", "notepad"), ("size", "100"), ("page", "11")],
        vec![
            ("store", "Denver"),
            ("method", "Online"),
            ("sort", "total_desc"),
            ("size", "100"),
            ("page", "50"),
        ],
    ] {
        let err = list::list(&conn, &CountCache::default(), &filter(&args))
            .await
            .unwrap_err();
        let app::model::AppError::Invalid(fields) = err else {
            panic!("{args:?}: {err:?}");
        };
        assert_eq!(fields[0].field, "page");
    }
}

/// The last page of 100 rows an unsearched list may open.
fn list_deepest_page(size: u64) -> u64 {
    app::model::report::DEEPEST_ROW / size
}
