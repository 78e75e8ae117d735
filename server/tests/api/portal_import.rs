//! Imports from the portal: a file uploaded, checked without writing, imported in the
//! background through the same importer as `server import`, followed from any
//! instance, cancelled between whole batches, and resumed when its instance died.

use crate::helpers::{
    TestApp, TestOptions, mongodb_uri, mysql_base_url, smtp_port, spawn_app, spawn_app_with,
};
use crate::outage::{free_port, wait_for_port};
use app::model::Role;
use app::model::imports::{IMPORT_FILE_LIMIT, ImportJob, ImportState};
use app::server::sales::{dual_write, generate, import, primary};
use std::time::{Duration, Instant};

/// `n` generated sales as Extended JSON lines.
fn file_of(seed: u64, n: usize) -> String {
    generate::sales(seed)
        .take(n)
        .map(|d| generate::to_extended_json(&d) + "\n")
        .collect()
}

/// Uploads as the import page's form does, asking for JSON back.
async fn upload(
    base: &str,
    client: &reqwest::Client,
    name: &str,
    kind: &str,
    bytes: Vec<u8>,
) -> (u16, serde_json::Value) {
    let part = reqwest::multipart::Part::bytes(bytes)
        .file_name(name.to_string())
        .mime_str(kind)
        .unwrap();
    let res = client
        .post(format!("{base}/api/imports/upload"))
        .header("Accept", "application/json")
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await
        .expect("upload");
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

/// The job as the instance at `base` reports it.
async fn job_at(base: &str, client: &reqwest::Client, id: u64) -> ImportJob {
    let res = client
        .post(format!("{base}/api/imports/get"))
        .form(&[("id", id.to_string())])
        .send()
        .await
        .expect("job");
    assert_eq!(res.status().as_u16(), 200);
    res.json().await.expect("a job")
}

async fn wait_until(
    base: &str,
    client: &reqwest::Client,
    id: u64,
    done: impl Fn(&ImportJob) -> bool,
) -> ImportJob {
    wait_within(Duration::from_secs(120), base, client, id, done).await
}

async fn wait_within(
    within: Duration,
    base: &str,
    client: &reqwest::Client,
    id: u64,
    done: impl Fn(&ImportJob) -> bool,
) -> ImportJob {
    let deadline = Instant::now() + within;
    loop {
        let j = job_at(base, client, id).await;
        if done(&j) {
            return j;
        }
        assert!(Instant::now() < deadline, "import stuck: {j:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Sales in MongoDB and in MySQL.
async fn stored(app: &TestApp) -> (u64, u64) {
    let mongo = primary::collection(&app.mongo)
        .count_documents(mongodb::bson::doc! {})
        .await
        .unwrap();
    let mysql: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sales")
        .fetch_one(&app.mysql)
        .await
        .unwrap();
    (mongo, mysql as u64)
}

async fn jobs_count(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM import_jobs")
        .fetch_one(&app.mysql)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_file_is_checked_without_writing_and_bad_files_are_refused() {
    let app = spawn_app().await;
    let worker = app
        .user_with_role("imp.worker", Role::TechnicalWorker)
        .await;
    let mut lines: Vec<String> = file_of(91, 20).lines().map(String::from).collect();
    lines.insert(6, lines[6].replace("\"storeLocation\"", "\"storeLocatio\""));
    let bad = lines.join("\n");

    let (status, body) = upload(
        &app.address,
        &worker,
        "sales.json",
        "application/json",
        bad.into_bytes(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let checked: ImportJob = serde_json::from_value(body).unwrap();
    assert_eq!(checked.state, ImportState::Checked);
    assert_eq!(
        (checked.valid, checked.new_sales, checked.rejected),
        (20, 20, 1)
    );
    assert_eq!(checked.rejections[0].at, "line 7");
    assert!(
        checked.rejections[0].reason.contains("storeLocatio"),
        "{:?}",
        checked.rejections
    );
    // A file with a rejected record is not imported: nothing is written.
    let (status, body) = app
        .call(&worker, "imports/start", &[("id", &checked.id.to_string())])
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(stored(&app).await, (0, 0));

    // The wrong kind of file, one too large, one that is not text, an empty one: each
    // gets its reason, and no job.
    let before = jobs_count(&app).await;
    let png = upload(
        &app.address,
        &worker,
        "photo.png",
        "image/png",
        vec![0x89, b'P', b'N', b'G'],
    )
    .await;
    assert_eq!(png.0, 400, "{}", png.1);
    assert!(
        png.1.to_string().contains("MongoDB Extended JSON"),
        "{}",
        png.1
    );
    let huge = upload(
        &app.address,
        &worker,
        "big.json",
        "application/json",
        vec![b' '; IMPORT_FILE_LIMIT + 1],
    )
    .await;
    assert_eq!(huge.0, 413, "{}", huge.1);
    let binary = upload(
        &app.address,
        &worker,
        "sales.json",
        "application/json",
        vec![0xff, 0xfe, 0x00, 0x7b],
    )
    .await;
    assert_eq!(binary.0, 400, "{}", binary.1);
    let empty = upload(
        &app.address,
        &worker,
        "sales.json",
        "application/json",
        Vec::new(),
    )
    .await;
    assert_eq!(empty.0, 400, "{}", empty.1);
    assert_eq!(jobs_count(&app).await, before);
    assert_eq!(stored(&app).await, (0, 0));

    // Customers and strangers cannot import.
    let customer = app.user_with_role("imp.customer", Role::Customer).await;
    let good = file_of(92, 3).into_bytes();
    let (status, _) = upload(
        &app.address,
        &customer,
        "s.json",
        "application/json",
        good.clone(),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = upload(
        &app.address,
        &app.new_client(),
        "s.json",
        "application/json",
        good,
    )
    .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_confirmed_import_runs_in_the_background_and_every_instance_follows_it() {
    let app = spawn_app().await;
    let other = app.spawn_instance(&TestOptions::default().serve).await;
    let worker = app
        .user_with_role("imp.runner", Role::TechnicalWorker)
        .await;
    // 200 of the file's 1,200 sales are in the stores already.
    let content = file_of(93, 1200);
    let writer = dual_write::writer(app.mysql.clone(), app.mongo.clone());
    let now = chrono::Utc::now();
    let first: Vec<_> = content
        .lines()
        .take(200)
        .map(|l| import::parse_line(l, now).unwrap())
        .collect();
    writer.import_batch(&first).await.unwrap();

    let (status, body) = upload(
        &app.address,
        &worker,
        "sales.json",
        "application/json",
        content.into_bytes(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let checked: ImportJob = serde_json::from_value(body).unwrap();
    assert_eq!(
        (
            checked.valid,
            checked.new_sales,
            checked.present,
            checked.rejected
        ),
        (1200, 1000, 200, 0)
    );
    assert_eq!(stored(&app).await, (200, 200), "the check writes nothing");
    let (status, body) = app
        .call(&worker, "imports/start", &[("id", &checked.id.to_string())])
        .await;
    assert_eq!(status, 200, "{body}");

    // Followed from the other instance, to its end.
    let done = wait_until(&other, &worker, checked.id, |j| {
        !j.state.is_active() && j.state != ImportState::Checked
    })
    .await;
    assert_eq!(done.state, ImportState::Done, "{done:?}");
    assert_eq!(
        (done.processed, done.inserted, done.skipped),
        (1200, 1000, 200)
    );
    assert!(done.finished_at.is_some());
    assert_eq!(stored(&app).await, (1200, 1200));
    let file: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM import_files")
        .fetch_one(&app.mysql)
        .await
        .unwrap();
    assert_eq!(file, 0, "the file is not kept once imported");
    // Started twice: refused.
    let (status, _) = app
        .call(&worker, "imports/start", &[("id", &checked.id.to_string())])
        .await;
    assert_eq!(status, 409);
}

#[tokio::test]
async fn a_cancelled_import_stops_between_whole_batches() {
    let app = spawn_app().await;
    let manager = app.user_with_role("imp.boss", Role::SeniorManagement).await;
    let (status, body) = upload(
        &app.address,
        &manager,
        "big.json",
        "application/json",
        file_of(94, 8_000).into_bytes(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let id = serde_json::from_value::<ImportJob>(body).unwrap().id;
    let (status, body) = app
        .call(&manager, "imports/start", &[("id", &id.to_string())])
        .await;
    assert_eq!(status, 200, "{body}");
    wait_until(&app.address, &manager, id, |j| {
        j.state == ImportState::Running
    })
    .await;
    let (status, body) = app
        .call(&manager, "imports/cancel", &[("id", &id.to_string())])
        .await;
    assert_eq!(status, 200, "{body}");
    let ended = wait_until(&app.address, &manager, id, |j| !j.state.is_active()).await;
    assert_eq!(ended.state, ImportState::Cancelled, "{ended:?}");
    assert!(ended.inserted < 8_000, "stopped early: {ended:?}");
    // Whole batches only, in both stores.
    assert_eq!(stored(&app).await, (ended.inserted, ended.inserted));
    assert_eq!(
        ended.inserted % import::DEFAULT_BATCH as u64,
        0,
        "{ended:?}"
    );
}

#[tokio::test]
async fn an_import_whose_instance_died_is_resumed_and_writes_nothing_twice() {
    let app = spawn_app().await;
    let worker = app
        .user_with_role("imp.resume", Role::TechnicalWorker)
        .await;
    let content = file_of(95, 2000);
    // As a dead instance left it: two batches written, the job running under a lease
    // that ran out, its progress recorded.
    let now = chrono::Utc::now();
    let sales: Vec<_> = content
        .lines()
        .map(|l| import::parse_line(l, now).unwrap())
        .collect();
    let writer = dual_write::writer(app.mysql.clone(), app.mongo.clone());
    for batch in sales[..1000].chunks(500) {
        writer.import_batch(batch).await.unwrap();
    }
    let id = sqlx::query(
        "INSERT INTO import_jobs (file_name, file_size, state, valid, new_sales, present, rejected, rejections, \
         processed, inserted, runs, lease_owner, lease_until, created_at, started_at, updated_at) \
         VALUES ('sales.json', ?, 'running', 2000, 2000, 0, 0, '[]', 1000, 1000, 1, 'dead-instance', \
         UTC_TIMESTAMP(6) - INTERVAL 1 SECOND, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))",
    )
    .bind(content.len() as u64)
    .execute(&app.mysql)
    .await
    .unwrap()
    .last_insert_id();
    sqlx::query("INSERT INTO import_files (job_id, content) VALUES (?, ?)")
        .bind(id)
        .bind(content.as_bytes())
        .execute(&app.mysql)
        .await
        .unwrap();

    let done = wait_until(&app.address, &worker, id, |j| j.state == ImportState::Done).await;
    assert_eq!(
        (done.inserted, done.skipped, done.processed),
        (2000, 0, 2000),
        "{done:?}"
    );
    assert_eq!(stored(&app).await, (2000, 2000));
}

/// The server binary as another process on the test's databases, running imports, with
/// leases that run out in 3 s: what a SIGKILL leaves behind is soon another's to settle.
async fn importing_process(app: &TestApp) -> tokio::process::Child {
    let port = free_port();
    let base = mysql_base_url();
    let (server, _) = base.rsplit_once('/').expect("MYSQL_URL names a database");
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_server"))
        .env("MYSQL_URL", format!("{server}/{}", app.db_name))
        .env("MONGODB_URI", mongodb_uri())
        .env("MONGODB_DATABASE", &app.db_name)
        .env("LEASE_SECS", "3")
        .env("WRITE_BUDGET_SECS", "1")
        .env("RECOVERY_INTERVAL_SECS", "1")
        .env("SYNC_INTERVAL_SECS", "0")
        .env("PUBLIC_URL", &app.address)
        .env("COOKIE_SECURE", "false")
        .env("SMTP_URL", format!("smtp://127.0.0.1:{}", smtp_port()))
        .env("LEPTOS_SITE_ADDR", format!("127.0.0.1:{port}"))
        .env("LOG_LEVEL", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("server starts");
    wait_for_port(port, "importing instance").await;
    child
}

#[tokio::test]
async fn an_import_whose_instance_is_killed_mid_run_is_finished_by_another() {
    // This instance serves the API but runs no imports: the other process does.
    let mut options = TestOptions::default();
    options.serve.run_imports = false;
    let app = spawn_app_with(options).await;
    let worker = app
        .user_with_role("imp.killed", Role::TechnicalWorker)
        .await;
    let mut runner = importing_process(&app).await;

    let (status, body) = upload(
        &app.address,
        &worker,
        "big.json",
        "application/json",
        file_of(96, 8_000).into_bytes(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let id = serde_json::from_value::<ImportJob>(body).unwrap().id;
    let (status, body) = app
        .call(&worker, "imports/start", &[("id", &id.to_string())])
        .await;
    assert_eq!(status, 200, "{body}");
    let running = wait_until(&app.address, &worker, id, |j| j.processed > 0).await;
    assert_eq!(running.state, ImportState::Running);
    runner.start_kill().expect("kill");
    runner.wait().await.expect("killed");

    // Another instance that runs imports takes the job over once its lease runs out,
    // and finishes it: every sale once, in both stores, no batch half-written. (Its
    // recovery runs every second, to settle the killed process's batches in flight
    // sooner: until then, the resumed run finds those sales held and tries again.)
    let mut serve = TestOptions::default().serve;
    serve.recovery_interval_secs = 1;
    app.spawn_instance(&serve).await;
    let done = wait_within(Duration::from_secs(300), &app.address, &worker, id, |j| {
        j.state == ImportState::Done
    })
    .await;
    assert_eq!(
        (done.inserted, done.skipped, done.processed),
        (8_000, 0, 8_000),
        "{done:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    // Recovery settles what the killed process had in flight; then the stores agree.
    loop {
        let (mongo, mysql) = stored(&app).await;
        if mongo == 8_000 && mysql == 8_000 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "stores disagree: {mongo} in MongoDB, {mysql} in MySQL"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
