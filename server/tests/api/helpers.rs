use server::config::{Databases, ServeConfig};
use server::startup::Application;
use sqlx::mysql::MySqlConnectOptions;
use sqlx::{ConnectOptions, Connection};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::net::{TcpListener, TcpStream};

/// Where the local services listen unless the environment says otherwise
/// (the same defaults as scripts/lib.sh and .env.example).
pub fn mysql_base_url() -> String {
    std::env::var("MYSQL_URL")
        .unwrap_or_else(|_| "mysql://portal:portal@127.0.0.1:3307/portal".into())
}

pub fn mongodb_uri() -> String {
    std::env::var("MONGODB_URI").unwrap_or_else(|_| "mongodb://127.0.0.1:27018".into())
}

pub fn unique_name(prefix: &str) -> String {
    use rand::Rng;
    let suffix: u64 = rand::thread_rng().r#gen();
    format!("{prefix}_{suffix:016x}")
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub db_name: String,
    pub mysql: sqlx::MySqlPool,
    pub mongo: mongodb::Database,
}

#[derive(Clone)]
pub struct TestOptions {
    /// Route the app's MySQL traffic through this address instead of the real server.
    pub mysql_addr: Option<SocketAddr>,
    /// Route the app's MongoDB traffic through this address instead of the real server.
    pub mongo_addr: Option<SocketAddr>,
    pub serve: ServeConfig,
}

impl Default for TestOptions {
    fn default() -> Self {
        Self {
            mysql_addr: None,
            mongo_addr: None,
            serve: ServeConfig {
                site_addr: "127.0.0.1:0".parse().expect("valid address"),
                cookie_secure: false,
                session_idle_timeout_secs: 30 * 60,
                session_absolute_timeout_secs: 8 * 60 * 60,
                seed_demo: false,
            },
        }
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(TestOptions::default()).await
}

pub async fn spawn_app_with(options: TestOptions) -> TestApp {
    if std::env::var_os("TEST_LOG").is_some() {
        server::telemetry::init("debug");
    }
    let db_name = unique_name("test");
    let base: MySqlConnectOptions = mysql_base_url().parse().expect("MYSQL_URL parses");
    let mut admin = base
        .clone()
        .connect()
        .await
        .expect("the test MySQL server is reachable (scripts/services.sh start)");
    sqlx::query(&format!("CREATE DATABASE `{db_name}`"))
        .execute(&mut admin)
        .await
        .expect("create test database");
    admin.close().await.ok();

    let mut app_mysql = base.clone().database(&db_name);
    if let Some(addr) = options.mysql_addr {
        app_mysql = app_mysql.host(&addr.ip().to_string()).port(addr.port());
    }
    let app_mongodb_uri = match options.mongo_addr {
        Some(addr) => format!("mongodb://{addr}/?directConnection=true"),
        None => mongodb_uri(),
    };
    let databases = Databases {
        mysql: app_mysql,
        mongodb_uri: app_mongodb_uri,
        mongodb_database: db_name.clone(),
        mysql_max_connections: 5,
    };
    let leptos_options = server::leptos_options(options.serve.site_addr);
    let app = Application::build(&databases, &options.serve, leptos_options)
        .await
        .expect("application builds");
    let port = app.port();
    tokio::spawn(app.run_until_stopped());

    let mysql = sqlx::MySqlPool::connect_with(base.database(&db_name))
        .await
        .expect("test pool");
    let mongo = mongodb::Client::with_uri_str(mongodb_uri())
        .await
        .expect("mongo client")
        .database(&db_name);
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        client: reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("http client"),
        db_name,
        mysql,
        mongo,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }
}

impl Drop for TestApp {
    /// Drops the test's databases so repeated runs do not pile them up. Runs on its
    /// own thread and runtime because the test's runtime is shutting down.
    fn drop(&mut self) {
        let db_name = self.db_name.clone();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(base) = mysql_base_url().parse::<MySqlConnectOptions>()
                    && let Ok(mut conn) = base.connect().await
                {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS `{db_name}`"))
                        .execute(&mut conn)
                        .await;
                }
                // A client of this runtime's own: the test's client is tied to the runtime
                // that is blocked waiting for this thread.
                if let Ok(client) = mongodb::Client::with_uri_str(mongodb_uri()).await {
                    let _ = client.database(&db_name).drop().await;
                }
            });
        })
        .join();
    }
}

/// A TCP proxy in front of a real store, which a test can cut off and restore to
/// simulate an outage without touching the shared database server.
pub struct Proxy {
    pub addr: SocketAddr,
    open: Arc<AtomicBool>,
    generation: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let open = Arc::new(AtomicBool::new(true));
        let (generation, _) = tokio::sync::watch::channel(0u64);
        let generation = Arc::new(generation);
        let (accept_open, accept_gen) = (open.clone(), generation.clone());
        tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    break;
                };
                if !accept_open.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let mut cut = accept_gen.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    let mut inbound = inbound;
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Proxy {
            addr,
            open,
            generation,
        }
    }

    /// Refuses new connections and severs the existing ones.
    pub fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    pub fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

pub fn mysql_target() -> SocketAddr {
    let opts: MySqlConnectOptions = mysql_base_url().parse().expect("MYSQL_URL parses");
    let host = if opts.get_host() == "localhost" {
        "127.0.0.1"
    } else {
        opts.get_host()
    };
    format!("{host}:{}", opts.get_port())
        .parse()
        .expect("MySQL host is an IP address")
}

pub fn mongo_target() -> SocketAddr {
    let uri = mongodb_uri();
    let hostport = uri
        .trim_start_matches("mongodb://")
        .split(['/', '?'])
        .next()
        .unwrap_or("127.0.0.1:27017")
        .rsplit('@')
        .next()
        .unwrap_or("127.0.0.1:27017")
        .replace("localhost", "127.0.0.1");
    hostport.parse().expect("MongoDB host is an IP address")
}
