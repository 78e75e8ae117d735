//! The portal as several processes on the same stores, behind HAProxy, under chaos:
//! editors on every instance, double submits, an import running beside, one instance
//! killed with SIGKILL and restarted, one stopped with SIGSTOP past its leases and
//! resumed. `SOAK_SECS` sets how long the editors run (default 20).

use crate::helpers::{mongodb_uri, mysql_base_url, unique_name};
use crate::outage::{free_port, wait_for_port};
use app::model::report::{SaleForEdit, SalesPage};
use app::model::{AppError, Sale, SaleDraft, SaleId, SaleInput};
use app::server::auth::second_factor::{code_at, current_step};
use app::server::sales::{backup, generate, primary};
use rand::{Rng, SeedableRng};
use sqlx::ConnectOptions;
use sqlx::mysql::MySqlConnectOptions;
use std::collections::{BTreeMap, HashMap};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

const INSTANCES: usize = 3;
const LEASE_SECS: u64 = 3;
const HOT_SALES: usize = 15;
const EDITORS: usize = 6;

struct Cluster {
    db: String,
    mysql_url: String,
    ports: Vec<u16>,
    children: Vec<Option<Child>>,
    proxy_port: u16,
    proxy: Child,
    dir: std::path::PathBuf,
}

impl Cluster {
    fn instance_env(&self, cmd: &mut Command) {
        cmd.env("MYSQL_URL", &self.mysql_url)
            .env("MONGODB_URI", mongodb_uri())
            .env("MONGODB_DATABASE", &self.db)
            .env("LEASE_SECS", LEASE_SECS.to_string())
            .env("WRITE_BUDGET_SECS", "1")
            .env("RECOVERY_INTERVAL_SECS", "1")
            .env("SYNC_INTERVAL_SECS", "4")
            .env("TRUSTED_PROXIES", "127.0.0.1")
            .env(
                "PUBLIC_URL",
                format!("http://127.0.0.1:{}", self.proxy_port),
            )
            .env("COOKIE_SECURE", "false")
            .env(
                "SMTP_URL",
                format!("smtp://127.0.0.1:{}", crate::helpers::smtp_port()),
            )
            // What the journal alone cannot tell about a failure: recoveries and repairs.
            .env("LOG_LEVEL", "warn,app::server::sales=info");
    }

    async fn start_instance(&mut self, i: usize) {
        // Appended to, so that a restarted instance keeps its predecessor's log.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("instance-{i}.log")))
            .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_server"));
        self.instance_env(&mut cmd);
        cmd.env("LEPTOS_SITE_ADDR", format!("127.0.0.1:{}", self.ports[i]))
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true);
        self.children[i] = Some(cmd.spawn().expect("server starts"));
        wait_for_port(self.ports[i], "instance").await;
    }

    fn pid(&self, i: usize) -> String {
        self.children[i]
            .as_ref()
            .and_then(Child::id)
            .expect("running")
            .to_string()
    }

    async fn signal(&self, i: usize, signal: &str) {
        let ok = Command::new("kill")
            .args([signal, &self.pid(i)])
            .status()
            .await
            .unwrap()
            .success();
        assert!(ok, "kill {signal}");
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.proxy_port)
    }

    fn direct(&self, i: usize, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.ports[i])
    }

    /// `server ARGS` against the cluster's stores, as an operator would run it.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_server"));
        self.instance_env(&mut cmd);
        cmd.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    async fn cli(&self, args: &[&str], stdin: Option<&str>) -> std::process::Output {
        use tokio::io::AsyncWriteExt;
        let mut child = self.command(args).spawn().expect("server command starts");
        if let Some(text) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .await
                .unwrap();
        }
        child.wait_with_output().await.unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.proxy.start_kill();
        for child in self.children.iter_mut().flatten() {
            let _ = std::process::Command::new("kill")
                .args(["-CONT", &child.id().unwrap_or(0).to_string()])
                .status();
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn start_cluster() -> Cluster {
    let haproxy = ["/usr/sbin/haproxy", "/usr/bin/haproxy"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("haproxy is installed (scripts/install.sh)");
    let db = unique_name("cluster");
    let base: MySqlConnectOptions = mysql_base_url().parse().unwrap();
    let mut admin = base.clone().connect().await.unwrap();
    sqlx::query(&format!("CREATE DATABASE `{db}`"))
        .execute(&mut admin)
        .await
        .unwrap();
    let mysql_url = format!("{}/{db}", mysql_base_url().rsplit_once('/').unwrap().0);
    let dir = std::env::temp_dir().join(&db);
    std::fs::create_dir_all(&dir).unwrap();
    let ports: Vec<u16> = (0..INSTANCES).map(|_| free_port()).collect();
    let proxy_port = free_port();
    let servers: String = ports
        .iter()
        .enumerate()
        .map(|(i, p)| format!("    server i{i} 127.0.0.1:{p} check inter 500ms fall 2 rise 1\n"))
        .collect();
    let config = format!(
        "defaults\n    mode http\n    timeout connect 1s\n    timeout client 30s\n    timeout server 30s\n    option forwardfor\n    option redispatch\n    retries 2\n\
         frontend portal\n    bind 127.0.0.1:{proxy_port}\n    default_backend instances\n\
         backend instances\n    balance roundrobin\n    option httpchk GET /healthz\n    http-check expect rstatus ^(200|503)$\n{servers}"
    );
    std::fs::write(dir.join("haproxy.cfg"), config).unwrap();
    let proxy = Command::new(haproxy)
        .args(["-f", dir.join("haproxy.cfg").to_str().unwrap(), "-db"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("haproxy starts");
    let mut cluster = Cluster {
        db,
        mysql_url,
        ports,
        children: (0..INSTANCES).map(|_| None).collect(),
        proxy_port,
        proxy,
        dir,
    };
    // Migrations once, before the instances start.
    let out = cluster.cli(&["migrate"], None).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for i in 0..INSTANCES {
        cluster.start_instance(i).await;
    }
    wait_for_port(proxy_port, "haproxy").await;
    cluster
}

/// What one editor's request came to.
#[derive(Debug, Clone)]
enum Outcome {
    Saved(Sale),
    Deleted,
    Refused(AppError),
    /// No answer (the instance was killed or stopped): applied or not, unknown.
    Lost,
}

#[derive(Default)]
struct History {
    /// Every attempt per sale: the draft it tried to write (None: delete) and its outcome.
    attempts: HashMap<SaleId, Vec<(Option<SaleDraft>, Outcome)>>,
    /// The highest version any read saw, per sale, and whether a read ever saw less.
    seen: HashMap<SaleId, u64>,
    backwards: Vec<String>,
    double_submits: Vec<(Outcome, Outcome)>,
}

/// A server function's body: JSON, or form fields for the functions that take them.
enum Body {
    Json(serde_json::Value),
    Form(Vec<(&'static str, String)>),
}

async fn post<T: serde::de::DeserializeOwned>(
    client: &reqwest::Client,
    url: String,
    body: Body,
) -> Result<T, Option<AppError>> {
    let request = match &body {
        Body::Json(json) => client.post(url).json(json),
        Body::Form(fields) => client.post(url).form(fields),
    };
    let res = request.send().await.map_err(|_| None)?;
    let status = res.status();
    let text = res.text().await.map_err(|_| None)?;
    if status.is_success() {
        serde_json::from_str(&text).map_err(|_| None)
    } else {
        // A proxy's own error page (instance gone) is no answer from the app.
        Err(serde_json::from_str::<AppError>(&text).ok())
    }
}

fn outcome(result: Result<Option<Sale>, Option<AppError>>) -> Outcome {
    match result {
        Ok(Some(sale)) => Outcome::Saved(sale),
        Ok(None) => Outcome::Deleted,
        Err(Some(e)) => Outcome::Refused(e),
        Err(None) => Outcome::Lost,
    }
}

async fn editor(
    cluster_url: Arc<dyn Fn(&str) -> String + Send + Sync>,
    client: reqwest::Client,
    ids: Arc<Mutex<Vec<SaleId>>>,
    history: Arc<Mutex<History>>,
    seed: u64,
    until: Instant,
) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut drafts = generate::sales(1000 + seed);
    while Instant::now() < until {
        let roll: u32 = rng.gen_range(0..100);
        let id = {
            let ids = ids.lock().unwrap();
            ids[rng.gen_range(0..ids.len())].clone()
        };
        if roll < 15 {
            let _: Result<SalesPage, _> = post(
                &client,
                cluster_url("/api/sales/list"),
                Body::Json(serde_json::json!({ "query": { "sort": "total_desc" } })),
            )
            .await;
            continue;
        }
        if roll < 25 {
            let draft = drafts.next().unwrap();
            let result: Result<Sale, _> = post(
                &client,
                cluster_url("/api/sales/create"),
                Body::Json(serde_json::json!({ "token": "", "input": SaleInput::from(&draft) })),
            )
            .await;
            if let Ok(sale) = &result {
                ids.lock().unwrap().push(sale.id.clone());
                history
                    .lock()
                    .unwrap()
                    .attempts
                    .entry(sale.id.clone())
                    .or_default()
                    .push((Some(draft), Outcome::Saved(sale.clone())));
            }
            continue;
        }
        let loaded: Result<SaleForEdit, _> = post(
            &client,
            cluster_url("/api/sales/get"),
            Body::Form(vec![("id", id.to_string())]),
        )
        .await;
        let Ok(loaded) = loaded else { continue };
        {
            let mut h = history.lock().unwrap();
            let seen = h.seen.get(&id).copied().unwrap_or(0);
            if loaded.sale.version < seen {
                let note = format!("{id}: read version {} after {seen}", loaded.sale.version);
                h.backwards.push(note);
            }
            h.seen.insert(id.clone(), seen.max(loaded.sale.version));
        }
        let version = loaded.sale.version;
        let delete = roll < 30;
        let draft = (!delete).then(|| drafts.next().unwrap());
        let body = || match &draft {
            Some(d) => Body::Json(
                serde_json::json!({ "token": loaded.token, "id": id, "version": version, "input": SaleInput::from(d) }),
            ),
            None => Body::Form(vec![
                ("token", loaded.token.clone()),
                ("id", id.to_string()),
                ("version", version.to_string()),
            ]),
        };
        let endpoint = if delete {
            "/api/sales/delete"
        } else {
            "/api/sales/update"
        };
        let send = || {
            let (client, url, body) = (client.clone(), cluster_url(endpoint), body());
            async move {
                if delete {
                    post::<()>(&client, url, body).await.map(|()| None)
                } else {
                    post::<Sale>(&client, url, body).await.map(Some)
                }
            }
        };
        if rng.gen_range(0..100) < 5 {
            // A double submit: the same form, twice at once (the proxy sends them to
            // two instances).
            let (first, second) = tokio::join!(send(), send());
            let (first, second) = (outcome(first), outcome(second));
            let mut h = history.lock().unwrap();
            h.attempts
                .entry(id.clone())
                .or_default()
                .push((draft.clone(), first.clone()));
            h.attempts
                .entry(id.clone())
                .or_default()
                .push((draft, second.clone()));
            h.double_submits.push((first, second));
        } else {
            let result = outcome(send().await);
            history
                .lock()
                .unwrap()
                .attempts
                .entry(id.clone())
                .or_default()
                .push((draft, result));
        }
    }
}

/// Active technical workers with a second factor, one per login of the soak (a TOTP
/// code is accepted once, and each login needs one). Written straight into the
/// database: the accounts' creation is not what this test is about.
async fn soak_workers(mysql: &sqlx::MySqlPool, n: usize) -> Vec<String> {
    let hash = app::server::auth::password::hash(crate::helpers::PASSWORD.into())
        .await
        .unwrap();
    let mut names = Vec::new();
    for i in 0..n {
        let name = format!("soak.worker{i}");
        let id = sqlx::query(
            "INSERT INTO users (username, username_key, email, email_verified_at, password_hash, role, status, created_at) \
             VALUES (?, ?, ?, UTC_TIMESTAMP(6), ?, 'technical_worker', 'active', UTC_TIMESTAMP(6))",
        )
        .bind(&name)
        .bind(&name)
        .bind(format!("{name}@example.com"))
        .bind(&hash)
        .execute(mysql)
        .await
        .unwrap()
        .last_insert_id();
        sqlx::query(
            "INSERT INTO second_factors (user_id, secret, confirmed_at, created_at) \
             VALUES (?, ?, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))",
        )
        .bind(id)
        .bind(crate::helpers::TOTP_SECRET)
        .execute(mysql)
        .await
        .unwrap();
        names.push(name);
    }
    names
}

#[tokio::test]
async fn a_cluster_under_chaos_loses_no_acknowledged_edit() {
    let soak = Duration::from_secs(
        std::env::var("SOAK_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(20),
    );
    let mut cluster = start_cluster().await;
    let mysql = app::server::db::mysql_pool(
        cluster.mysql_url.parse().unwrap(),
        4,
        Duration::from_secs(5),
    );
    let workers = soak_workers(&mysql, EDITORS + 2).await;
    // Browsers send the site's public origin, whichever instance answers.
    let origin = cluster.url("");
    let login = |url: String, username: String| {
        let origin = origin.clone();
        async move {
            let client = reqwest::Client::builder()
                .cookie_store(true)
                .timeout(Duration::from_secs(15))
                .default_headers(reqwest::header::HeaderMap::from_iter([(
                    reqwest::header::ORIGIN,
                    origin.parse().unwrap(),
                )]))
                .build()
                .unwrap();
            // A login told "busy" (503) waits and asks again, as a browser's user would.
            let mut tries = 0;
            let res = loop {
                let res = client
                    .post(&url)
                    .form(&[
                        ("username", username.as_str()),
                        ("password", crate::helpers::PASSWORD),
                    ])
                    .send()
                    .await
                    .unwrap();
                if res.status() == 503 && tries < 30 {
                    tries += 1;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                break res;
            };
            assert_eq!(res.status(), 200, "login");
            let code = code_at(crate::helpers::TOTP_SECRET, current_step()).unwrap();
            let res = client
                .post(url.replace("/api/login", "/api/login/second-step"))
                .form(&[("code", code)])
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200, "second step");
            client
        }
    };
    let proxy_url = {
        let port = cluster.proxy_port;
        Arc::new(move |path: &str| format!("http://127.0.0.1:{port}{path}"))
            as Arc<dyn Fn(&str) -> String + Send + Sync>
    };

    // The hot sales, created through the proxy.
    let seeder = login(cluster.url("/api/login"), workers[0].clone()).await;
    let mut ids = Vec::new();
    for draft in generate::sales(90).take(HOT_SALES) {
        let sale: Sale = post(
            &seeder,
            cluster.url("/api/sales/create"),
            Body::Json(serde_json::json!({ "token": "", "input": SaleInput::from(&draft) })),
        )
        .await
        .expect("seed sale");
        ids.push(sale.id);
    }
    let ids = Arc::new(Mutex::new(ids));
    let history = Arc::new(Mutex::new(History::default()));

    // An import of 300 new sales, from a file, beside the serving instances.
    let file = cluster.dir.join("import.json");
    let lines: String = generate::sales(91)
        .take(300)
        .map(|d| generate::to_extended_json(&d) + "\n")
        .collect();
    std::fs::write(&file, lines).unwrap();

    let until = Instant::now() + soak;
    let mut editors = Vec::new();
    for e in 0..EDITORS {
        let client = login(cluster.url("/api/login"), workers[e + 1].clone()).await;
        editors.push(tokio::spawn(editor(
            proxy_url.clone(),
            client,
            ids.clone(),
            history.clone(),
            e as u64,
            until,
        )));
    }
    let import = {
        let mut command = cluster.command(&["import", file.to_str().unwrap()]);
        async move {
            tokio::time::sleep(soak / 6).await;
            command.output().await.expect("server import runs")
        }
    };
    let chaos = async {
        tokio::time::sleep(soak / 4).await;
        cluster.signal(1, "-KILL").await;
        if let Some(mut child) = cluster.children[1].take() {
            let _ = child.wait().await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        cluster.start_instance(1).await;
        tokio::time::sleep(soak / 4).await;
        // Stopped for two leases: its leases run out and are taken over meanwhile.
        cluster.signal(2, "-STOP").await;
        tokio::time::sleep(Duration::from_secs(2 * LEASE_SECS + 1)).await;
        cluster.signal(2, "-CONT").await;
    };
    let (mut import_out, ()) = tokio::join!(import, chaos);
    for e in editors {
        e.await.unwrap();
    }
    // Under the chaos a batch's MongoDB write may outlast its budget: the import then
    // stops and says so, and an operator runs it again. What it wrote must converge.
    if !import_out.status.success() {
        eprintln!(
            "the import stopped under the chaos; running it again: {}",
            String::from_utf8_lossy(&import_out.stderr).trim()
        );
        import_out = cluster
            .command(&["import", file.to_str().unwrap()])
            .output()
            .await
            .expect("server import runs");
    }
    assert!(
        import_out.status.success(),
        "the import beside the cluster: {}\n{}",
        String::from_utf8_lossy(&import_out.stdout),
        String::from_utf8_lossy(&import_out.stderr)
    );

    // Quiesce: leases run out, recovery (every second, on every instance) settles them.
    let mongo = app::server::db::mongo_database(&mongodb_uri(), &cluster.db)
        .await
        .unwrap();
    let mut open = -1;
    for _ in 0..60 {
        open = sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM sale_intents WHERE state IN ('pending', 'needs_repair')",
        )
        .fetch_one(&mysql)
        .await
        .unwrap();
        if open == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(open, 0, "no intent left open");

    // No divergence, and no sync during the soak repaired any (it would have hidden one).
    let out = cluster.cli(&["sync", "--dry-run"], None).await;
    let report = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{report}");
    assert!(
        report.contains("missing 0, differing 0, extra 0"),
        "{report}"
    );
    let repaired: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(created + updated + deleted), 0) AS SIGNED) FROM sync_runs WHERE dry_run = FALSE",
    )
    .fetch_one(&mysql)
    .await
    .unwrap();
    let repairs = if repaired > 0 {
        repaired_sales_story(&mysql, &cluster.dir).await
    } else {
        String::new()
    };
    // Asserted last, so that a failure also says whether an acknowledged edit was lost.
    // (A run on the stopped instance may have gone on after its lease was taken over:
    // it was fenced off and failed. Completed runs never overlap.)
    let overlapping: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM sync_runs a JOIN sync_runs b ON a.id < b.id \
         WHERE b.started_at < a.finished_at AND a.status = 'completed' AND b.status = 'completed'",
    )
    .fetch_one(&mysql)
    .await
    .unwrap();
    assert_eq!(overlapping, 0, "sync runs never overlap");

    // No acknowledged edit lost: per sale, acknowledged versions are distinct, and both
    // stores hold the last acknowledged edit, or a later one whose answer was lost.
    // Every editor has finished: the record is read out whole, not borrowed across awaits.
    let history = std::mem::take(&mut *history.lock().unwrap());
    assert!(
        history.backwards.is_empty(),
        "versions went backwards: {:?}",
        history.backwards
    );
    let all_ids: Vec<SaleId> = history.attempts.keys().cloned().collect();
    let in_mongo: BTreeMap<SaleId, Sale> = primary::find_by_ids(&mongo, &all_ids)
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.id.clone(), s))
        .collect();
    let mut conn = mysql.acquire().await.unwrap();
    let in_mysql: BTreeMap<SaleId, Sale> = backup::load(&mut conn, &all_ids)
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.id.clone(), s))
        .collect();
    let (mut acked_total, mut refused, mut lost) = (0, 0, 0);
    for (id, attempts) in &history.attempts {
        let strip = |s: Option<&Sale>| s.map(|s| (s.version, s.draft.clone()));
        assert_eq!(
            strip(in_mongo.get(id)),
            strip(in_mysql.get(id)),
            "{id}: the stores agree"
        );
        let mut versions: Vec<u64> = attempts
            .iter()
            .filter_map(|(_, o)| match o {
                Outcome::Saved(s) => Some(s.version),
                _ => None,
            })
            .collect();
        let acked = versions.len();
        versions.sort_unstable();
        versions.dedup();
        // A double submit acknowledges one save twice, with the same answer.
        let doubled = history
            .double_submits
            .iter()
            .filter(|(a, b)| matches!((a, b), (Outcome::Saved(x), Outcome::Saved(y)) if x.id == *id && x == y))
            .count();
        assert_eq!(
            versions.len() + doubled,
            acked,
            "{id}: one acknowledgement per version: {attempts:?}"
        );
        acked_total += acked;
        refused += attempts
            .iter()
            .filter(|(_, o)| matches!(o, Outcome::Refused(_)))
            .count();
        lost += attempts
            .iter()
            .filter(|(_, o)| matches!(o, Outcome::Lost))
            .count();
        let last_saved = attempts
            .iter()
            .filter_map(|(_, o)| match o {
                Outcome::Saved(s) => Some(s),
                _ => None,
            })
            .max_by_key(|s| s.version);
        let acked_delete = attempts.iter().any(|(_, o)| matches!(o, Outcome::Deleted));
        let unanswered: Vec<&Option<SaleDraft>> = attempts
            .iter()
            .filter(|(_, o)| !matches!(o, Outcome::Saved(_) | Outcome::Deleted))
            .map(|(d, _)| d)
            .collect();
        match (in_mongo.get(id), last_saved) {
            (Some(now), Some(last)) => {
                assert!(
                    now.version >= last.version,
                    "{id}: behind the last acknowledged edit"
                );
                assert!(
                    now.draft == last.draft
                        || unanswered.iter().any(|d| d.as_ref() == Some(&now.draft)),
                    "{id}: holds neither the last acknowledged edit nor an unanswered one"
                );
            }
            (None, _) => assert!(
                acked_delete || unanswered.iter().any(|d| d.is_none()),
                "{id}: gone without a delete"
            ),
            (Some(_), None) => {}
        }
    }
    for (a, b) in &history.double_submits {
        let same = match (a, b) {
            (Outcome::Saved(x), Outcome::Saved(y)) => x == y,
            (Outcome::Deleted, Outcome::Deleted) => true,
            (Outcome::Refused(x), Outcome::Refused(y)) => x == y,
            // One instance died or stopped under one of them.
            (Outcome::Lost, _) | (_, Outcome::Lost) => true,
            _ => false,
        };
        let still_saving = |o: &Outcome| matches!(o, Outcome::Refused(AppError::Conflict(m)) if m == app::server::sales::dual_write::STILL_SAVING);
        assert!(
            same || still_saving(a) || still_saving(b),
            "a double submit got two answers: {a:?} / {b:?}"
        );
    }
    eprintln!(
        "cluster soak: {} sales, {acked_total} acknowledged edits, {refused} refused (conflicts, busy), {lost} unanswered, {} double submits",
        history.attempts.len(),
        history.double_submits.len()
    );
    assert!(acked_total > 50, "the editors made progress: {acked_total}");

    // The rollups equal a fresh recompute.
    let off: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM ( \
           SELECT day, store_location, purchase_method, coupon_used, sales, revenue FROM sales_daily \
           UNION ALL \
           SELECT DATE(sale_date), store_location, purchase_method, coupon_used, -COUNT(*), -SUM(total) FROM sales \
           GROUP BY DATE(sale_date), store_location, purchase_method, coupon_used \
         ) AS d GROUP BY day, store_location, purchase_method, coupon_used \
         HAVING SUM(sales) <> 0 OR SUM(revenue) <> 0",
    )
    .fetch_optional(&mysql)
    .await
    .unwrap()
    .unwrap_or(0);
    assert_eq!(off, 0, "the rollups equal a fresh recompute");

    // Every instance counts a new sale at once.
    let client = login(
        cluster.direct(0, "/api/login"),
        workers[EDITORS + 1].clone(),
    )
    .await;
    let draft = generate::sales(92).next().unwrap();
    let _: Sale = post(
        &client,
        cluster.direct(0, "/api/sales/create"),
        Body::Json(serde_json::json!({ "token": "", "input": SaleInput::from(&draft) })),
    )
    .await
    .expect("a last sale");
    let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sales")
        .fetch_one(&mysql)
        .await
        .unwrap();
    for i in 0..INSTANCES {
        let page: SalesPage = post(
            &client,
            cluster.direct(i, "/api/sales/list"),
            Body::Json(serde_json::json!({ "query": {} })),
        )
        .await
        .expect("list");
        assert_eq!(
            page.matching, total as u64,
            "instance {i} counts every sale"
        );
    }
    let _ = mongo.drop().await;
    let mut admin = mysql_base_url()
        .parse::<MySqlConnectOptions>()
        .unwrap()
        .connect()
        .await
        .unwrap();
    let _ = sqlx::query(&format!("DROP DATABASE `{}`", cluster.db))
        .execute(&mut admin)
        .await;
    assert_eq!(repaired, 0, "no sync had to repair anything:\n{repairs}");
}

/// For each sale a sync repaired: its journal, and what the instances logged about it.
async fn repaired_sales_story(mysql: &sqlx::MySqlPool, dir: &std::path::Path) -> String {
    #[derive(sqlx::FromRow)]
    struct Entry {
        id: u64,
        sale_id: String,
        op: String,
        state: String,
        lease_owner: Option<String>,
        error: Option<String>,
        before_version: Option<String>,
        after_version: Option<String>,
        created_at: chrono::NaiveDateTime,
        updated_at: chrono::NaiveDateTime,
    }
    let entries: Vec<Entry> = sqlx::query_as(
        "SELECT id, sale_id, CAST(op AS CHAR) AS op, CAST(state AS CHAR) AS state, lease_owner, error, \
         JSON_VALUE(before_image, '$.version') AS before_version, \
         JSON_VALUE(after_image, '$.version') AS after_version, created_at, updated_at \
         FROM sale_intents WHERE sale_id IN (SELECT sale_id FROM sale_intents WHERE op = 'repair') \
         ORDER BY sale_id, id",
    )
    .fetch_all(mysql)
    .await
    .unwrap_or_default();
    let logs: Vec<String> = (0..INSTANCES)
        .filter_map(|i| std::fs::read_to_string(dir.join(format!("instance-{i}.log"))).ok())
        .collect();
    let mut story = String::new();
    for e in &entries {
        story += &format!(
            "{} intent {} {} {} v{:?}->v{:?} owner {:?} {:?} {} .. {}\n",
            e.sale_id,
            e.id,
            e.op,
            e.state,
            e.before_version,
            e.after_version,
            e.lease_owner,
            e.error,
            e.created_at,
            e.updated_at
        );
    }
    let ids: std::collections::BTreeSet<&str> =
        entries.iter().map(|e| e.sale_id.as_str()).collect();
    for (i, log) in logs.iter().enumerate() {
        for line in log.lines().filter(|l| ids.iter().any(|id| l.contains(id))) {
            story += &format!("instance {i}: {line}\n");
        }
    }
    story
}
