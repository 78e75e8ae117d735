//! Real outages: a private MariaDB or FerretDB process, killed with SIGKILL in the
//! middle of a stream of edits and started again on the same data. The shared test
//! servers are never touched, so the other tests keep running.

use crate::helpers::{mongodb_uri, mysql_base_url, unique_name};
use app::model::{AppError, Sale, SaleDraft, SaleId};
use app::server::sales::dual_write::{Writer, writer_with};
use app::server::sales::{backup, generate, primary};
use sqlx::ConnectOptions;
use sqlx::mysql::MySqlConnectOptions;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

/// What an edit tried to write when it was not a delete: the version and the draft.
type Attempt = Option<(u64, SaleDraft)>;

/// A writer whose leases run out in seconds, so recovery can settle the outage's
/// unfinished edits while the test waits.
fn short_leases(mysql: sqlx::MySqlPool, mongo: mongodb::Database) -> Writer {
    writer_with(mysql, mongo, crate::ports::test_policy())
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique_name(name));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

pub async fn wait_for_port(port: u16, what: &str) {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} did not start on port {port}");
}

/// A server process of our own, on its own port and data directory.
struct Service {
    name: &'static str,
    program: String,
    args: Vec<String>,
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Service {
    async fn start(&mut self) {
        let log = std::fs::File::create(self.dir.join(format!("{}.log", self.name))).unwrap();
        self.child = Some(
            Command::new(&self.program)
                .args(&self.args)
                .stdout(Stdio::null())
                .stderr(log)
                .kill_on_drop(true)
                .spawn()
                .unwrap_or_else(|e| panic!("{} starts: {e}", self.program)),
        );
        wait_for_port(self.port, self.name).await;
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().and_then(Child::id).expect("running")
    }

    /// Collects the process after it was killed.
    async fn reap(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.wait().await;
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn which(candidates: &[&str]) -> String {
    candidates
        .iter()
        .find(|c| std::path::Path::new(c).exists())
        .map(|c| c.to_string())
        .unwrap_or_else(|| {
            candidates[candidates.len() - 1]
                .rsplit('/')
                .next()
                .unwrap()
                .into()
        })
}

async fn private_mariadb() -> Service {
    let dir = scratch_dir("outage_mariadb");
    let data = dir.join("data");
    let status = Command::new("mariadb-install-db")
        .arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .args([
            "--auth-root-authentication-method=normal",
            "--user=root",
            "--skip-test-db",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .expect("mariadb-install-db runs");
    assert!(status.success(), "mariadb-install-db");
    let port = free_port();
    let mut service = Service {
        name: "mariadb",
        program: which(&["/usr/sbin/mariadbd", "/usr/bin/mariadbd"]),
        args: vec![
            "--no-defaults".into(),
            format!("--datadir={}", data.display()),
            format!("--socket={}", dir.join("sock").display()),
            format!("--pid-file={}", dir.join("pid").display()),
            format!("--port={port}"),
            "--bind-address=127.0.0.1".into(),
            "--user=root".into(),
            // A throwaway server: no accounts to set up.
            "--skip-grant-tables".into(),
            "--innodb-buffer-pool-size=64M".into(),
            "--character-set-server=utf8mb4".into(),
            "--collation-server=utf8mb4_unicode_ci".into(),
        ],
        port,
        dir,
        child: None,
    };
    service.start().await;
    service
}

async fn private_ferretdb() -> Service {
    let dir = scratch_dir("outage_ferretdb");
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::create_dir_all(dir.join("state")).unwrap();
    let port = free_port();
    let home = std::env::var("HOME").unwrap_or_default();
    let mut service = Service {
        name: "ferretdb",
        program: which(&[&format!("{home}/go/bin/ferretdb"), "ferretdb"]),
        args: vec![
            "--handler=sqlite".into(),
            format!("--sqlite-url=file:{}/", dir.join("data").display()),
            format!("--listen-addr=127.0.0.1:{port}"),
            format!("--state-dir={}", dir.join("state").display()),
            "--debug-addr=-".into(),
            "--telemetry=disable".into(),
            "--log-level=error".into(),
        ],
        port,
        dir,
        child: None,
    };
    service.start().await;
    service
}

async fn mysql_pool(options: MySqlConnectOptions, db: &str) -> sqlx::MySqlPool {
    let mut admin = options.clone().connect().await.expect("MySQL reachable");
    sqlx::query(&format!("CREATE DATABASE IF NOT EXISTS `{db}`"))
        .execute(&mut admin)
        .await
        .unwrap();
    let pool = app::server::db::mysql_pool(
        options.database(db),
        5,
        crate::ports::test_policy().lock_wait(),
    );
    app::server::db::migrate(&pool).await.expect("migrations");
    pool
}

async fn mongo(uri: &str, db: &str) -> mongodb::Database {
    app::server::db::mongo_database(uri, db).await.unwrap()
}

/// What the stream of edits knows about one sale.
#[derive(Debug, Clone)]
struct Tracked {
    /// The last acknowledged state (None: never created, or deleted).
    acked: Option<(u64, SaleDraft)>,
    /// An edit that returned an error: it must be fully applied or fully absent.
    /// Unacknowledged sales get no further edits, so the outcome stays checkable.
    unacked: Option<Option<(u64, SaleDraft)>>,
}

struct Stream {
    writer: Writer,
    sales: BTreeMap<SaleId, Tracked>,
    drafts: Box<dyn Iterator<Item = SaleDraft> + Send>,
    step: u64,
    acked: u64,
    failed: u64,
}

impl Stream {
    fn new(writer: Writer, seed: u64) -> Self {
        Self {
            writer,
            sales: BTreeMap::new(),
            drafts: Box::new(generate::sales(seed)),
            step: 0,
            acked: 0,
            failed: 0,
        }
    }

    /// One edit: create, update or delete, in turn, on sales whose state is known.
    async fn edit(&mut self) {
        self.step += 1;
        let known: Vec<(SaleId, (u64, SaleDraft))> = self
            .sales
            .iter()
            .filter(|(_, t)| t.unacked.is_none())
            .filter_map(|(id, t)| t.acked.clone().map(|a| (id.clone(), a)))
            .collect();
        let draft = self.drafts.next().unwrap();
        let pick = known
            .get((self.step as usize * 7) % known.len().max(1))
            .cloned();
        let (id, attempt, outcome): (SaleId, Attempt, Result<Option<Sale>, AppError>) =
            match (self.step % 5, pick) {
                (0, Some((id, (v, _)))) => {
                    let r = self.writer.delete(None, &id, v).await.map(|()| None);
                    (id, None, r)
                }
                (1 | 2, Some((id, (v, _)))) => {
                    let r = self
                        .writer
                        .update(None, &id, v, draft.clone())
                        .await
                        .map(Some);
                    (id, Some((v + 1, draft)), r)
                }
                _ => {
                    let id = SaleId::parse(&bson::oid::ObjectId::new().to_hex()).unwrap();
                    let r = self
                        .writer
                        .create_with_id(None, id.clone(), draft.clone())
                        .await
                        .map(Some);
                    (id, Some((1, draft)), r)
                }
            };
        let entry = self.sales.entry(id).or_insert(Tracked {
            acked: None,
            unacked: None,
        });
        match outcome {
            Ok(sale) => {
                self.acked += 1;
                entry.acked = sale.map(|s| (s.version, s.draft));
            }
            Err(AppError::Conflict(m)) => panic!("no conflicts in a single stream: {m}"),
            Err(_) => {
                self.failed += 1;
                entry.unacked = Some(attempt);
            }
        }
    }

    async fn edits(&mut self, n: usize) {
        for _ in 0..n {
            self.edit().await;
        }
    }

    /// Resolves every unfinished intent (retrying while a store is still waking up),
    /// then checks every sale the stream touched in both stores.
    async fn settle_and_check(&self, mysql: &sqlx::MySqlPool, mongo: &mongodb::Database) {
        for _ in 0..60 {
            let _ = self.writer.recover().await;
            let open: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM sale_intents WHERE state IN ('pending', 'needs_repair')",
            )
            .fetch_one(mysql)
            .await
            .unwrap();
            if open == 0 {
                break;
            }
            // Backoff after failed attempts: make them due now (their leases still run out).
            sqlx::query("UPDATE sale_intents SET next_attempt_at = NULL")
                .execute(mysql)
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let open: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sale_intents WHERE state IN ('pending', 'needs_repair')",
        )
        .fetch_one(mysql)
        .await
        .unwrap();
        assert_eq!(open, 0, "recovery resolved every intent");

        let ids: Vec<SaleId> = self.sales.keys().cloned().collect();
        let in_mongo: BTreeMap<SaleId, (u64, SaleDraft)> = primary::find_by_ids(mongo, &ids)
            .await
            .unwrap()
            .into_iter()
            .map(|s| (s.id, (s.version, s.draft)))
            .collect();
        let mut conn = mysql.acquire().await.unwrap();
        let in_mysql: BTreeMap<SaleId, (u64, SaleDraft)> = backup::load(&mut conn, &ids)
            .await
            .unwrap()
            .into_iter()
            .map(|s| (s.id, (s.version, s.draft)))
            .collect();
        let mut unacked_applied = 0;
        for (id, t) in &self.sales {
            let now = in_mongo.get(id).cloned();
            assert_eq!(now, in_mysql.get(id).cloned(), "{id}: MySQL equals MongoDB");
            // A rolled-back edit leaves the earlier content at a new version.
            let content = |s: &Option<(u64, SaleDraft)>| s.as_ref().map(|(_, d)| d.clone());
            match &t.unacked {
                None => assert_eq!(now, t.acked, "{id}: the acknowledged edit stands"),
                Some(attempt) => {
                    if now == *attempt && now != t.acked {
                        unacked_applied += 1;
                    } else {
                        assert_eq!(
                            content(&now),
                            content(&t.acked),
                            "{id}: an unacknowledged edit is fully applied or fully absent"
                        );
                    }
                }
            }
        }
        let all: BTreeSet<&SaleId> = in_mysql.keys().collect();
        assert!(
            all.iter().all(|id| self.sales.contains_key(*id)),
            "no stray rows"
        );
        eprintln!(
            "outage stream: {} edits, {} acknowledged, {} failed ({} of them applied in full)",
            self.step, self.acked, self.failed, unacked_applied
        );
    }
}

/// Edits while the service is killed (SIGKILL, from another task, so it lands in the
/// middle of whatever round trip is under way) and then started again on its data.
async fn edit_through_an_outage(stream: &mut Stream, service: &mut Service) {
    stream.edits(30).await;
    let pid = service.pid();
    let killer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(25)).await;
        Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .await
            .expect("kill runs")
    });
    while !killer.is_finished() {
        stream.edit().await;
    }
    assert!(killer.await.unwrap().success());
    service.reap().await;
    // Edits while it is down fail (and must change nothing).
    stream.edits(2).await;
    service.start().await;
    stream.edits(30).await;
}

#[tokio::test]
async fn killing_the_real_mariadb_mid_stream_loses_no_acknowledged_edit() {
    let mut mariadb = private_mariadb().await;
    let options: MySqlConnectOptions = format!("mysql://root@127.0.0.1:{}/", mariadb.port)
        .parse()
        .unwrap();
    let db = unique_name("outage");
    let mysql = mysql_pool(options, &db).await;
    let mongo = mongo(&mongodb_uri(), &db).await;
    let mut stream = Stream::new(short_leases(mysql.clone(), mongo.clone()), 41);

    edit_through_an_outage(&mut stream, &mut mariadb).await;
    assert!(stream.failed > 0, "the outage was felt");
    stream.settle_and_check(&mysql, &mongo).await;
    let _ = mongo.drop().await;
}

#[tokio::test]
async fn killing_the_real_ferretdb_mid_stream_loses_no_acknowledged_edit() {
    let mut ferretdb = private_ferretdb().await;
    let db = unique_name("outage");
    let options: MySqlConnectOptions = mysql_base_url().parse().unwrap();
    let mysql = mysql_pool(options.clone(), &db).await;
    let uri = format!(
        "mongodb://127.0.0.1:{}/?directConnection=true",
        ferretdb.port
    );
    let mongo = mongo(&uri, &db).await;
    let mut stream = Stream::new(short_leases(mysql.clone(), mongo.clone()), 42);

    edit_through_an_outage(&mut stream, &mut ferretdb).await;
    assert!(stream.failed > 0, "the outage was felt");
    stream.settle_and_check(&mysql, &mongo).await;
    let mut admin = options.connect().await.unwrap();
    let _ = sqlx::query(&format!("DROP DATABASE `{db}`"))
        .execute(&mut admin)
        .await;
}

/// Instances starting together on a new database: one applies the migrations while the
/// others wait, instead of all applying them at once (MariaDB answers sqlx's own lock,
/// `GET_LOCK(…, -1)`, at once without taking it when another session holds it).
#[tokio::test]
async fn instances_starting_together_on_a_new_database_migrate_once() {
    let base: MySqlConnectOptions = mysql_base_url().parse().expect("MYSQL_URL parses");
    let db = unique_name("migrate");
    let mut admin = base.connect().await.expect("MySQL");
    sqlx::query(&format!("CREATE DATABASE `{db}`"))
        .execute(&mut admin)
        .await
        .expect("create database");
    let pools: Vec<sqlx::MySqlPool> = (0..3)
        .map(|_| app::server::db::mysql_pool(base.clone().database(&db), 3, Duration::from_secs(5)))
        .collect();
    let results = futures::future::join_all(pools.iter().map(app::server::db::migrate)).await;
    for r in &results {
        assert!(r.is_ok(), "{r:?}");
    }
    let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&pools[0])
        .await
        .unwrap();
    assert_eq!(applied as usize, app::server::db::MIGRATOR.iter().count());
    sqlx::query(&format!("DROP DATABASE `{db}`"))
        .execute(&mut admin)
        .await
        .ok();
}
