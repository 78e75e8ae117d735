use server::config::{Databases, ServeConfig};
use server::startup::Application;
use sqlx::mysql::MySqlConnectOptions;
use sqlx::{ConnectOptions, Connection};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
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

pub fn smtp_port() -> String {
    std::env::var("PORTAL_SMTP_PORT").unwrap_or_else(|_| "1025".into())
}

/// The TOTP secret test accounts' second factors use (base32, 160 bits).
pub const TOTP_SECRET: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";

/// A browser-like client of the site at `origin`: its own cookie jar, no redirects
/// followed, and the `Origin` header browsers send on every POST.
pub fn browser(origin: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::ORIGIN,
        origin.parse().expect("an origin is a header value"),
    );
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(headers)
        // A request that hangs fails its test instead of stalling the whole suite.
        .timeout(Duration::from_secs(120))
        .build()
        .expect("http client")
}

/// One message as Mailpit caught it.
#[derive(Debug, Clone)]
pub struct CaughtMail {
    pub subject: String,
    pub text: String,
}

impl CaughtMail {
    /// The token of the first link in the message to `path` (`/verify-email`…).
    pub fn token_for(&self, path: &str) -> String {
        let marker = format!("{path}?token=");
        let start = self
            .text
            .find(&marker)
            .unwrap_or_else(|| panic!("no {path} link in: {}", self.text))
            + marker.len();
        self.text[start..]
            .chars()
            .take_while(char::is_ascii_hexdigit)
            .collect()
    }
}

fn mailpit_url() -> String {
    let port = std::env::var("PORTAL_MAILPIT_PORT").unwrap_or_else(|_| "8025".into());
    format!("http://127.0.0.1:{port}")
}

/// Every message Mailpit holds for `address`, oldest first.
pub async fn mail_to(address: &str) -> Vec<CaughtMail> {
    let client = reqwest::Client::new();
    let found: serde_json::Value = client
        .get(format!("{}/api/v1/search", mailpit_url()))
        .query(&[("query", format!("to:\"{address}\""))])
        .send()
        .await
        .expect("Mailpit answers (scripts/services.sh start)")
        .json()
        .await
        .expect("Mailpit search JSON");
    let mut mails = Vec::new();
    for m in found["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .rev()
    {
        let id = m["ID"].as_str().expect("message id");
        let full: serde_json::Value = client
            .get(format!("{}/api/v1/message/{id}", mailpit_url()))
            .send()
            .await
            .expect("Mailpit message")
            .json()
            .await
            .expect("Mailpit message JSON");
        mails.push(CaughtMail {
            subject: full["Subject"].as_str().unwrap_or_default().to_string(),
            text: full["Text"].as_str().unwrap_or_default().to_string(),
        });
    }
    mails
}

/// Waits (up to 15 s) for a message to `address` whose subject contains `subject`.
pub async fn wait_for_mail(address: &str, subject: &str) -> CaughtMail {
    for _ in 0..150 {
        if let Some(m) = mail_to(address)
            .await
            .into_iter()
            .rev()
            .find(|m| m.subject.contains(subject))
        {
            return m;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("no mail \"{subject}\" reached {address}");
}

/// The code mailed to `address` when its account began setting up a second factor.
pub async fn mailed_setup_code(address: &str) -> String {
    let mail = wait_for_mail(address, "Your code to set up two-factor authentication").await;
    mail.text
        .split_whitespace()
        .find(|w| w.len() == 8 && w.chars().all(|c| c.is_ascii_digit()))
        .unwrap_or_else(|| panic!("no 8-digit code in: {}", mail.text))
        .to_string()
}

/// A client whose requests arrive from `address`, as a trusted proxy forwards them.
pub fn from_address(app: &TestApp, address: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("x-forwarded-for", address.parse().expect("an address"));
    headers.insert(
        reqwest::header::ORIGIN,
        app.address.parse().expect("an origin"),
    );
    reqwest::Client::builder()
        .cookie_store(true)
        .default_headers(headers)
        .timeout(Duration::from_secs(60))
        .build()
        .expect("a client")
}

pub fn unique_name(prefix: &str) -> String {
    use rand::Rng;
    let suffix: u64 = rand::thread_rng().r#gen();
    format!("{prefix}_{suffix:016x}")
}

pub struct TestApp {
    pub databases: Databases,
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
                smtp_url: format!("smtp://127.0.0.1:{}", smtp_port()),
                mail_from: "Supply Co. tests <portal@localhost>".into(),
                // Tests log in far more often from one address than a person would.
                login_rate_per_minute: 100_000,
                ..ServeConfig::loopback()
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
        lease: app::server::sales::dual_write::LeasePolicy::default(),
    };
    let port = serve(&databases, &options.serve).await;

    // Sessions set up like the app's: the tests' own writers run on this pool.
    let mysql = app::server::db::mysql_pool(
        base.database(&db_name),
        10,
        std::time::Duration::from_secs(5),
    );
    let mongo = mongodb::Client::with_uri_str(mongodb_uri())
        .await
        .expect("mongo client")
        .database(&db_name);
    let address = format!("http://127.0.0.1:{port}");
    TestApp {
        databases,
        client: browser(&address),
        address,
        db_name,
        mysql,
        mongo,
    }
}

/// Builds and starts an app instance on port 0; returns its port.
async fn serve(databases: &Databases, serve: &ServeConfig) -> u16 {
    let leptos_options = server::leptos_options(serve.site_addr);
    let app = Application::build(databases, serve, leptos_options)
        .await
        .expect("application builds");
    let port = app.port();
    tokio::spawn(app.run_until_stopped());
    port
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// Another instance of the app on the same databases, as a second process behind
    /// a load balancer would be; returns its address.
    /// Another instance on the same databases. Like instances behind one load
    /// balancer, it answers for the first instance's public address.
    pub async fn spawn_instance(&self, config: &ServeConfig) -> String {
        let mut config = config.clone();
        config
            .public_url
            .get_or_insert_with(|| self.address.clone());
        format!("http://127.0.0.1:{}", serve(&self.databases, &config).await)
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
            // The app's tasks live on the test's runtime, which is blocked on this thread:
            // a transaction they left open holds a metadata lock that DROP DATABASE would
            // wait for forever (MariaDB's default lock_wait_timeout is a year). So the drop
            // waits a few seconds at most and otherwise leaves the database behind (its
            // name is random, so it harms no later run).
            let cleanup = async move {
                if let Ok(base) = mysql_base_url().parse::<MySqlConnectOptions>()
                    && let Ok(mut conn) = base.connect().await
                {
                    let _ = sqlx::query("SET SESSION lock_wait_timeout = 5")
                        .execute(&mut conn)
                        .await;
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS `{db_name}`"))
                        .execute(&mut conn)
                        .await;
                }
                // A client of this runtime's own: the test's client is tied to the runtime
                // that is blocked waiting for this thread.
                if let Ok(client) = mongodb::Client::with_uri_str(mongodb_uri()).await {
                    let _ = client.database(&db_name).drop().await;
                }
            };
            rt.block_on(async move {
                let _ = tokio::time::timeout(Duration::from_secs(20), cleanup).await;
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

pub const PASSWORD: &str = "Quiet-Marble-Orchard-58";

impl TestApp {
    /// A separate browser-like client with its own cookie jar.
    pub fn new_client(&self) -> reqwest::Client {
        browser(&self.address)
    }

    /// A unique address for a user of this test (Mailpit keeps every test's mail).
    pub fn email_for(&self, username: &str) -> String {
        format!("{}.{}@example.com", username.to_lowercase(), self.db_name)
    }

    /// Presses "Run sync" as `client` and polls the replication panel until the run is
    /// over: the run as it started, and the panel after it.
    pub async fn run_sync_from_panel(
        &self,
        client: &reqwest::Client,
    ) -> (app::model::SyncReport, app::model::ReplicationStatus) {
        let (status, body) = self
            .call(client, "replication/sync", &[("dry_run", "false")])
            .await;
        assert_eq!(status, 200, "{body}");
        let started = serde_json::from_value(body).expect("a sync report");
        for _ in 0..200 {
            let (status, body) = self.call(client, "replication/status", &[]).await;
            assert_eq!(status, 200, "{body}");
            let panel: app::model::ReplicationStatus =
                serde_json::from_value(body).expect("the panel's status");
            if panel.running.is_none() {
                return (started, panel);
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("the sync did not finish in 10 s");
    }

    /// Calls a server function with form fields, as the browser's ActionForm does.
    pub async fn call(
        &self,
        client: &reqwest::Client,
        endpoint: &str,
        form: &[(&str, &str)],
    ) -> (u16, serde_json::Value) {
        let res = client
            .post(self.url(&format!("/api/{endpoint}")))
            .form(form)
            .send()
            .await
            .expect("request");
        let status = res.status().as_u16();
        let text = res.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        )
    }

    /// Calls a server function that takes a JSON body.
    pub async fn call_json(
        &self,
        client: &reqwest::Client,
        endpoint: &str,
        body: &serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let res = client
            .post(self.url(&format!("/api/{endpoint}")))
            .json(body)
            .send()
            .await
            .expect("request");
        let status = res.status().as_u16();
        let text = res.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        )
    }

    pub async fn register(
        &self,
        client: &reqwest::Client,
        username: &str,
        role: &str,
    ) -> (u16, serde_json::Value) {
        self.register_with_email(client, username, &self.email_for(username), role)
            .await
    }

    /// Registers `username` with any address (someone else's, say), as the form does.
    pub async fn register_with_email(
        &self,
        client: &reqwest::Client,
        username: &str,
        email: &str,
        role: &str,
    ) -> (u16, serde_json::Value) {
        self.call(
            client,
            "register",
            &[
                ("username", username),
                ("email", email),
                ("password", PASSWORD),
                ("confirm_password", PASSWORD),
                ("role", role),
            ],
        )
        .await
    }

    /// Logs in with the password only: a login with a second factor then waits for
    /// its second step.
    pub async fn password_login(
        &self,
        client: &reqwest::Client,
        username: &str,
        password: &str,
    ) -> (u16, serde_json::Value) {
        self.call(
            client,
            "login",
            &[("username", username), ("password", password)],
        )
        .await
    }

    /// Logs in, with the second step when the account has a second factor (the code
    /// computed from its stored secret, as the user's app would).
    pub async fn login(
        &self,
        client: &reqwest::Client,
        username: &str,
        password: &str,
    ) -> (u16, serde_json::Value) {
        let (status, body) = self.password_login(client, username, password).await;
        if status == 200 && body["second_factor"] == "Pending" {
            let id = body["id"].as_u64().expect("a user id");
            let code = self.next_code(id).await;
            return self
                .call(client, "login/second-step", &[("code", &code)])
                .await;
        }
        (status, body)
    }

    /// A code for the user's second factor that has not been used yet: codes are
    /// accepted once each, for the current 30 s step and its neighbours. Waits for the
    /// next step when those are used up.
    pub async fn next_code(&self, user_id: u64) -> String {
        use app::server::auth::second_factor::{code_at, current_step};
        #[derive(sqlx::FromRow)]
        struct Factor {
            secret: String,
            last_step: Option<u64>,
        }
        let factor: Factor =
            sqlx::query_as("SELECT secret, last_step FROM second_factors WHERE user_id = ?")
                .bind(user_id)
                .fetch_one(&self.mysql)
                .await
                .expect("the user has a second factor");
        // Sealed at rest with the loopback development key the test instances use.
        let secret = app::server::auth::secret_keys::SecretKeys::development()
            .open(user_id, &factor.secret)
            .expect("the secret opens");
        // Never the previous step: a code computed at the end of a step and checked
        // just after the next one began would be two steps old, and refused.
        let step = factor.last_step.map_or(0, |s| s + 1).max(current_step());
        while current_step() + 1 < step {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
        code_at(&secret, step).expect("a code")
    }

    /// Gives the user a confirmed second factor, as if they had set it up.
    pub async fn enrol_second_factor(&self, user_id: u64) {
        sqlx::query(
            "INSERT INTO second_factors (user_id, secret, confirmed_at, created_at) \
             VALUES (?, ?, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))",
        )
        .bind(user_id)
        .bind(
            app::server::auth::secret_keys::SecretKeys::development()
                .seal(user_id, TOTP_SECRET)
                .expect("sealed"),
        )
        .execute(&self.mysql)
        .await
        .expect("store a second factor");
    }

    /// Creates an active user the way `server user create` does (staff with a second
    /// factor set up), and logs in a client as them.
    pub async fn user_with_role(&self, username: &str, role: app::model::Role) -> reqwest::Client {
        self.user_with_email(username, &self.email_for(username), role)
            .await
    }

    /// An active, confirmed account with this address, logged in.
    pub async fn user_with_email(
        &self,
        username: &str,
        email: &str,
        role: app::model::Role,
    ) -> reqwest::Client {
        let input = app::model::RegistrationInput {
            username: username.into(),
            email: email.into(),
            password: PASSWORD.into(),
            confirm_password: PASSWORD.into(),
            role: role.as_str().into(),
        };
        let account = input.parse().expect("valid test account");
        // The tests of this binary share one process, and so one bound on hashing: a
        // fixture told "busy" waits and asks again, as a client honouring Retry-After does.
        let mut tries = 0;
        let id = loop {
            match app::server::auth::accounts::create_active_user(&self.mysql, &account, "test")
                .await
            {
                Err(app::model::AppError::Busy(_)) if tries < 30 => tries += 1,
                other => break other.expect("create user"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        };
        // Staff need a second factor for their pages.
        if role.needs_second_factor() {
            self.enrol_second_factor(id).await;
        }
        let client = self.new_client();
        let mut tries = 0;
        loop {
            let (status, body) = self.login(&client, username, PASSWORD).await;
            if status == 503 && tries < 30 {
                tries += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            assert_eq!(status, 200, "login of {username}: {body}");
            break;
        }
        client
    }

    pub async fn me(&self, client: &reqwest::Client) -> serde_json::Value {
        let (status, body) = self.call(client, "me", &[]).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    pub async fn user_id(&self, username: &str) -> u64 {
        sqlx::query_scalar("SELECT id FROM users WHERE username_key = ?")
            .bind(username.to_lowercase())
            .fetch_one(&self.mysql)
            .await
            .expect("user exists")
    }
}

/// The session cookie a response sets, if any.
pub fn session_cookie(res: &reqwest::Response) -> Option<String> {
    res.headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.contains("portal_session="))
        .map(str::to_string)
}

/// `n` generated sales at version 1, with the ids an import would give them.
pub fn generated_sales(seed: u64, n: usize) -> Vec<app::model::Sale> {
    app::server::sales::generate::sales(seed)
        .take(n)
        .map(|draft| app::model::Sale {
            id: app::server::sales::import::derived_id(&draft),
            version: 1,
            updated_at: chrono::Utc::now(),
            draft,
        })
        .collect()
}
