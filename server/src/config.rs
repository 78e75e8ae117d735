//! Configuration, read from the environment (and an optional `.env`) through clap.

use clap::Args;
use sqlx::mysql::MySqlConnectOptions;
use std::net::SocketAddr;
use std::time::Duration;

/// Settings shared by every command that talks to the databases.
#[derive(Debug, Clone, Args)]
pub struct DbConfig {
    /// MySQL (or MariaDB) URL of the accounts and backup database,
    /// e.g. mysql://portal:portal@127.0.0.1:3307/portal
    #[arg(long, env = "MYSQL_URL", global = true, hide_env_values = true)]
    pub mysql_url: Option<String>,

    /// MongoDB URI of the sales store, e.g. mongodb://127.0.0.1:27018
    #[arg(long, env = "MONGODB_URI", global = true, hide_env_values = true)]
    pub mongodb_uri: Option<String>,

    /// Name of the MongoDB database holding the `sales` collection.
    #[arg(
        long,
        env = "MONGODB_DATABASE",
        default_value = "sales_portal",
        global = true
    )]
    pub mongodb_database: String,

    /// Upper bound on pooled MySQL connections.
    #[arg(
        long,
        env = "MYSQL_MAX_CONNECTIONS",
        default_value_t = 10,
        global = true
    )]
    pub mysql_max_connections: u32,

    /// Seconds a writer holds a sale it is editing before anyone else may take it over
    /// (renewed while it works). Every process writing sales must get this right:
    /// docs/dual-write.md explains the timing.
    #[arg(long, env = "LEASE_SECS", default_value_t = 30, global = true)]
    pub lease_secs: u64,

    /// Seconds one MongoDB write may take before the writer gives up on it and reads
    /// the outcome back; less than half of LEASE_SECS.
    #[arg(long, env = "WRITE_BUDGET_SECS", default_value_t = 10, global = true)]
    pub write_budget_secs: u64,
}

/// Settings of the HTTP server.
#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// Address the site listens on. cargo-leptos sets LEPTOS_SITE_ADDR itself.
    #[arg(
        long,
        env = "LEPTOS_SITE_ADDR",
        default_value = "127.0.0.1:3000",
        global = true
    )]
    pub site_addr: SocketAddr,

    /// Cookies are `Secure` with the `__Host-` prefix, and responses carry HSTS: the
    /// site is served over HTTPS. `false` (plain HTTP) is accepted only when the site
    /// listens on loopback, unless ALLOW_INSECURE_COOKIES says otherwise.
    #[arg(long, env = "COOKIE_SECURE", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub cookie_secure: bool,

    /// Allows COOKIE_SECURE=false on an address other than loopback (a network where
    /// plain HTTP is deliberate). Session cookies then travel in clear text.
    #[arg(long, env = "ALLOW_INSECURE_COOKIES", default_value_t = false, action = clap::ArgAction::Set, global = true)]
    pub allow_insecure_cookies: bool,

    /// Where users reach the site, for the links in mail (e.g. https://portal.example.com).
    /// Defaults to http:// and the listen address.
    #[arg(long, env = "PUBLIC_URL", global = true)]
    pub public_url: Option<String>,

    /// The SMTP server mail is sent through: smtp://host:port (plain),
    /// smtp://host:port?tls=required (STARTTLS) or smtps://host:port, with
    /// user:password@ if it wants a login.
    #[arg(
        long,
        env = "SMTP_URL",
        default_value = "smtp://127.0.0.1:1025",
        global = true,
        hide_env_values = true
    )]
    pub smtp_url: String,

    /// The sender of the portal's mail.
    #[arg(
        long,
        env = "MAIL_FROM",
        default_value = "Supply Co. sales portal <portal@localhost>",
        global = true
    )]
    pub mail_from: String,

    /// Seconds of inactivity after which a session ends.
    #[arg(long, env = "SESSION_IDLE_TIMEOUT_SECS", default_value_t = 30 * 60, global = true)]
    pub session_idle_timeout_secs: u64,

    /// Seconds after login after which a session ends, however active.
    #[arg(long, env = "SESSION_ABSOLUTE_TIMEOUT_SECS", default_value_t = 8 * 60 * 60, global = true)]
    pub session_absolute_timeout_secs: u64,

    /// Failed logins (per account, and per client address) inside 15 minutes before
    /// further attempts must wait.
    #[arg(
        long,
        env = "LOGIN_THROTTLE_MAX_FAILURES",
        default_value_t = 5,
        global = true
    )]
    pub login_throttle_max_failures: u32,

    /// The first wait once throttled, in seconds; it doubles with each further failure.
    #[arg(
        long,
        env = "LOGIN_THROTTLE_BASE_DELAY_SECS",
        default_value_t = 30,
        global = true
    )]
    pub login_throttle_base_delay_secs: u64,

    /// Failed logins from one client address (browsers that never logged in to the
    /// account they try) inside 15 minutes before that address must wait. High, so one
    /// office or NAT is not locked out by one person's mistakes.
    #[arg(
        long,
        env = "LOGIN_THROTTLE_CLIENT_MAX_FAILURES",
        default_value_t = 50,
        global = true
    )]
    pub login_throttle_client_max_failures: u32,

    /// Login requests per client address and minute, failed or not (each costs a
    /// password hash).
    #[arg(
        long,
        env = "LOGIN_RATE_PER_MINUTE",
        default_value_t = 60,
        global = true
    )]
    pub login_rate_per_minute: u32,

    /// Reverse proxies whose `X-Forwarded-For` names the client, comma-separated
    /// addresses or networks (e.g. 127.0.0.1,10.0.0.0/8). Login throttling and the
    /// audit log then see the real client instead of the proxy. Empty: the header is
    /// ignored, since any client can write it.
    #[arg(long, env = "TRUSTED_PROXIES", value_delimiter = ',', global = true)]
    pub trusted_proxies: Vec<app::server::client_ip::ProxyNet>,

    /// The keys that seal second-factor secrets at rest: comma-separated
    /// `<id>:<64 hex digits>`, newest first (`openssl rand -hex 32` makes one). Required
    /// outside loopback; on loopback a published development key stands in.
    #[arg(long, env = "TOTP_KEYS", global = true, hide_env_values = true)]
    pub totp_keys: Option<String>,

    /// Seed the demo accounts and demo sales when they are missing.
    #[arg(long, env = "PORTAL_SEED_DEMO", default_value_t = false, global = true)]
    pub seed_demo: bool,

    /// Seconds between reconciliation runs (MongoDB → MySQL backup); 0 turns the
    /// periodic job off. The first run comes one interval after start.
    #[arg(long, env = "SYNC_INTERVAL_SECS", default_value_t = 15 * 60, global = true)]
    pub sync_interval_secs: u64,

    /// Whether this instance runs imports confirmed in the portal (every instance does
    /// by default; one that only serves pages may leave them to the others).
    #[arg(
        long,
        env = "RUN_IMPORTS",
        default_value_t = true,
        action = clap::ArgAction::Set,
        global = true
    )]
    pub run_imports: bool,

    /// Seconds between recovery passes, which roll back edits whose writer died or
    /// stalled past its lease.
    #[arg(
        long,
        env = "RECOVERY_INTERVAL_SECS",
        default_value_t = 10,
        global = true
    )]
    pub recovery_interval_secs: u64,

    /// Milliseconds between the live feed's reads of MySQL (one loop per instance):
    /// how late, at most, an edit made on another instance reaches this one's pages.
    #[arg(long, env = "LIVE_POLL_MS", default_value_t = 150, global = true)]
    pub live_poll_ms: u64,

    /// Seconds a live stream may carry no change before it is closed; the browser
    /// reconnects at once, and is authenticated again.
    #[arg(long, env = "LIVE_IDLE_SECS", default_value_t = 300, global = true)]
    pub live_idle_secs: u64,
}

/// A setting that is required for the command at hand but missing or invalid.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(pub String);

/// The validated database settings.
#[derive(Debug, Clone)]
pub struct Databases {
    pub mysql: MySqlConnectOptions,
    pub mongodb_uri: String,
    pub mongodb_database: String,
    pub mysql_max_connections: u32,
    pub lease: app::server::sales::dual_write::LeasePolicy,
}

impl DbConfig {
    pub fn databases(&self) -> Result<Databases, ConfigError> {
        let mysql_url = self
            .mysql_url
            .as_deref()
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| {
                ConfigError(
                    "MYSQL_URL is not set (e.g. mysql://portal:portal@127.0.0.1:3307/portal)"
                        .into(),
                )
            })?;
        if !(mysql_url.starts_with("mysql://") || mysql_url.starts_with("mariadb://")) {
            return Err(ConfigError("MYSQL_URL is not a valid MySQL URL (expected mysql://user:password@host:port/database)".into()));
        }
        let mysql: MySqlConnectOptions = mysql_url
            .parse()
            .map_err(|_| ConfigError("MYSQL_URL is not a valid MySQL URL (expected mysql://user:password@host:port/database)".into()))?;
        if mysql.get_database().is_none() {
            return Err(ConfigError(
                "MYSQL_URL names no database (add /database at the end)".into(),
            ));
        }
        let mongodb_uri = self
            .mongodb_uri
            .clone()
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| {
                ConfigError("MONGODB_URI is not set (e.g. mongodb://127.0.0.1:27018)".into())
            })?;
        if !(mongodb_uri.starts_with("mongodb://") || mongodb_uri.starts_with("mongodb+srv://")) {
            return Err(ConfigError(
                "MONGODB_URI must start with mongodb:// or mongodb+srv://".into(),
            ));
        }
        if self.mongodb_database.is_empty()
            || self
                .mongodb_database
                .contains(['/', '\\', '.', ' ', '"', '$'])
        {
            return Err(ConfigError(
                "MONGODB_DATABASE is not a valid database name".into(),
            ));
        }
        if self.mysql_max_connections == 0 {
            return Err(ConfigError(
                "MYSQL_MAX_CONNECTIONS must be at least 1".into(),
            ));
        }
        let lease = app::server::sales::dual_write::LeasePolicy::new(
            Duration::from_secs(self.lease_secs),
            Duration::from_secs(self.write_budget_secs),
        )
        .map_err(|e| ConfigError(format!("LEASE_SECS and WRITE_BUDGET_SECS: {e}")))?;
        Ok(Databases {
            mysql,
            mongodb_uri,
            mongodb_database: self.mongodb_database.clone(),
            mysql_max_connections: self.mysql_max_connections,
            lease,
        })
    }
}

impl ServeConfig {
    /// The defaults of `server serve`, except: a port the system picks, plain HTTP on
    /// loopback, and no periodic sync (a test or benchmark starts one when it means to).
    /// The starting point of the black-box tests and the benchmarks, which change only
    /// what they are about.
    pub fn loopback() -> Self {
        Self {
            site_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            cookie_secure: false,
            allow_insecure_cookies: false,
            public_url: None,
            smtp_url: "smtp://127.0.0.1:1025".into(),
            mail_from: "Supply Co. sales portal <portal@localhost>".into(),
            session_idle_timeout_secs: 30 * 60,
            session_absolute_timeout_secs: 8 * 60 * 60,
            login_throttle_max_failures: 5,
            login_throttle_base_delay_secs: 30,
            login_throttle_client_max_failures: 50,
            login_rate_per_minute: 60,
            trusted_proxies: Vec::new(),
            totp_keys: None,
            seed_demo: false,
            sync_interval_secs: 0,
            run_imports: true,
            recovery_interval_secs: 10,
            live_poll_ms: 150,
            live_idle_secs: 300,
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.session_idle_timeout_secs == 0 || self.session_absolute_timeout_secs == 0 {
            return Err(ConfigError(
                "session timeouts must be at least 1 second".into(),
            ));
        }
        if self.session_idle_timeout_secs > self.session_absolute_timeout_secs {
            return Err(ConfigError(
                "SESSION_IDLE_TIMEOUT_SECS may not exceed SESSION_ABSOLUTE_TIMEOUT_SECS".into(),
            ));
        }
        if self.login_throttle_max_failures == 0 {
            return Err(ConfigError(
                "LOGIN_THROTTLE_MAX_FAILURES must be at least 1".into(),
            ));
        }
        let loopback = self.site_addr.ip().is_loopback();
        if !self.cookie_secure && !loopback && !self.allow_insecure_cookies {
            return Err(ConfigError(format!(
                "COOKIE_SECURE=false on {}: plain-HTTP cookies are allowed only on loopback (serve HTTPS, or set ALLOW_INSECURE_COOKIES=true deliberately)",
                self.site_addr
            )));
        }
        if self.totp_keys.is_none() && !loopback {
            return Err(ConfigError(
                "TOTP_KEYS is required outside loopback: it seals second-factor secrets at rest (see docs/operations.md)".into(),
            ));
        }
        if let Some(keys) = &self.totp_keys {
            app::server::auth::secret_keys::SecretKeys::parse(keys).map_err(ConfigError)?;
        }
        if self.seed_demo && !loopback {
            return Err(ConfigError(
                "PORTAL_SEED_DEMO creates accounts with published passwords: only on a loopback address".into(),
            ));
        }
        if self.login_throttle_client_max_failures < self.login_throttle_max_failures {
            return Err(ConfigError(
                "LOGIN_THROTTLE_CLIENT_MAX_FAILURES must be at least LOGIN_THROTTLE_MAX_FAILURES"
                    .into(),
            ));
        }
        for (name, secs) in [
            ("SESSION_IDLE_TIMEOUT_SECS", self.session_idle_timeout_secs),
            (
                "SESSION_ABSOLUTE_TIMEOUT_SECS",
                self.session_absolute_timeout_secs,
            ),
        ] {
            if secs > 30 * 24 * 3600 {
                return Err(ConfigError(format!("{name} may be at most 30 days")));
            }
        }
        if let Some(url) = &self.public_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err(ConfigError(
                "PUBLIC_URL must start with https:// or http://".into(),
            ));
        }
        if !(10..=10_000).contains(&self.live_poll_ms) {
            return Err(ConfigError(
                "LIVE_POLL_MS must be between 10 and 10000".into(),
            ));
        }
        if self.live_idle_secs == 0 {
            return Err(ConfigError("LIVE_IDLE_SECS must be at least 1".into()));
        }
        if self.recovery_interval_secs == 0 {
            return Err(ConfigError(
                "RECOVERY_INTERVAL_SECS must be at least 1".into(),
            ));
        }
        Ok(())
    }

    pub fn live_settings(&self) -> app::server::live::LiveSettings {
        app::server::live::LiveSettings {
            poll: std::time::Duration::from_millis(self.live_poll_ms),
            idle: std::time::Duration::from_secs(self.live_idle_secs),
        }
    }

    /// Where users reach the site: PUBLIC_URL, or http:// and the listen address.
    pub fn public_url(&self) -> String {
        self.public_url.clone().unwrap_or_else(|| {
            let addr = self.site_addr;
            let host = if addr.ip().is_unspecified() {
                "127.0.0.1".to_string()
            } else {
                addr.ip().to_string()
            };
            format!("http://{host}:{}", addr.port())
        })
    }

    pub fn mailer(&self) -> Result<app::server::mail::Mailer, ConfigError> {
        app::server::mail::Mailer::new(&self.smtp_url, &self.mail_from, &self.public_url())
            .map_err(ConfigError)
    }

    /// The keys from `TOTP_KEYS`, or the published development key on loopback.
    pub fn secret_keys(&self) -> anyhow::Result<app::server::auth::secret_keys::SecretKeys> {
        use app::server::auth::secret_keys::SecretKeys;
        match &self.totp_keys {
            Some(spec) => SecretKeys::parse(spec).map_err(|e| anyhow::anyhow!(e)),
            None => Ok(SecretKeys::development()),
        }
    }

    pub fn auth_settings(&self) -> app::server::AuthSettings {
        app::server::AuthSettings {
            idle_timeout: Duration::from_secs(self.session_idle_timeout_secs),
            absolute_timeout: Duration::from_secs(self.session_absolute_timeout_secs),
            throttle: app::server::auth::throttle::ThrottlePolicy {
                max_failures: self.login_throttle_max_failures,
                client_max_failures: self.login_throttle_client_max_failures,
                requests_per_minute: self.login_rate_per_minute,
                window: Duration::from_secs(15 * 60),
                base_delay: Duration::from_secs(self.login_throttle_base_delay_secs),
            },
            cookie_secure: self.cookie_secure,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(mysql: Option<&str>, mongo: Option<&str>) -> DbConfig {
        DbConfig {
            mysql_url: mysql.map(str::to_string),
            mongodb_uri: mongo.map(str::to_string),
            mongodb_database: "sales_portal".into(),
            mysql_max_connections: 5,
            lease_secs: 30,
            write_budget_secs: 10,
        }
    }

    #[test]
    fn missing_urls_name_the_variable() {
        let e = db(None, Some("mongodb://x")).databases().unwrap_err();
        assert!(e.to_string().contains("MYSQL_URL is not set"), "{e}");
        let e = db(Some("mysql://u:p@h/db"), None).databases().unwrap_err();
        assert!(e.to_string().contains("MONGODB_URI is not set"), "{e}");
    }

    #[test]
    fn invalid_urls_are_rejected_in_one_line() {
        for (mysql, mongo, expect) in [
            ("postgres://h/db", "mongodb://x", "MYSQL_URL is not a valid"),
            ("mysql://u:p@h", "mongodb://x", "names no database"),
            ("mysql://u:p@h/db", "http://x", "MONGODB_URI must start"),
        ] {
            let e = db(Some(mysql), Some(mongo))
                .databases()
                .unwrap_err()
                .to_string();
            assert!(e.contains(expect), "{e}");
            assert!(!e.contains('\n'));
        }
    }

    #[test]
    fn the_lease_must_outlast_two_write_budgets() {
        let mut c = db(
            Some("mysql://u:p@127.0.0.1:3307/portal"),
            Some("mongodb://127.0.0.1:27018"),
        );
        c.lease_secs = 10;
        let e = c.databases().unwrap_err().to_string();
        assert!(e.contains("LEASE_SECS"), "{e}");
    }

    #[test]
    fn valid_settings_parse() {
        let d = db(
            Some("mysql://u:p@127.0.0.1:3307/portal"),
            Some("mongodb://127.0.0.1:27018"),
        )
        .databases()
        .unwrap();
        assert_eq!(d.mysql.get_database(), Some("portal"));
    }

    #[test]
    fn trusted_proxies_parse_from_a_comma_separated_list() {
        use clap::Parser;
        let cli = crate::cli::Cli::try_parse_from([
            "server",
            "--trusted-proxies",
            "127.0.0.1,10.0.0.0/8,fd00::/8",
        ])
        .unwrap();
        assert_eq!(cli.serve.trusted_proxies.len(), 3);
        let err = crate::cli::Cli::try_parse_from(["server", "--trusted-proxies", "10.0.0.0/40"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("prefix length must be 0 to 32"), "{err}");
    }

    #[test]
    fn idle_timeout_cannot_exceed_absolute() {
        let mut c = ServeConfig {
            session_idle_timeout_secs: 10,
            session_absolute_timeout_secs: 5,
            ..ServeConfig::loopback()
        };
        assert!(c.validate().is_err());
        c.session_absolute_timeout_secs = 10;
        assert!(c.validate().is_ok());
    }

    /// The serve settings of `server <args>`.
    fn parse(args: &[&str]) -> ServeConfig {
        use clap::Parser;
        let mut all = vec!["server"];
        all.extend_from_slice(args);
        crate::cli::Cli::try_parse_from(all).unwrap().serve
    }

    const KEY: &str = "1:0101010101010101010101010101010101010101010101010101010101010101";

    #[test]
    fn second_factor_keys_are_required_outside_loopback_and_checked() {
        let e = parse(&["--site-addr", "0.0.0.0:3000"])
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("TOTP_KEYS is required"), "{e}");
        assert!(
            parse(&[]).validate().is_ok(),
            "loopback has a development key"
        );
        let e = parse(&["--totp-keys", "1:abcd"])
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("64 hex digits"), "{e}");
    }

    #[test]
    fn plain_http_cookies_only_on_loopback_unless_allowed() {
        assert!(parse(&[]).cookie_secure, "secure by default");
        assert!(
            parse(&["--site-addr", "0.0.0.0:3000", "--totp-keys", KEY])
                .validate()
                .is_ok()
        );
        let insecure = parse(&[
            "--site-addr",
            "0.0.0.0:3000",
            "--totp-keys",
            KEY,
            "--cookie-secure",
            "false",
        ]);
        let e = insecure.validate().unwrap_err().to_string();
        assert!(e.contains("only on loopback"), "{e}");
        assert!(
            parse(&[
                "--site-addr",
                "0.0.0.0:3000",
                "--totp-keys",
                KEY,
                "--cookie-secure",
                "false",
                "--allow-insecure-cookies",
                "true"
            ])
            .validate()
            .is_ok()
        );
        assert!(
            parse(&["--cookie-secure", "false"]).validate().is_ok(),
            "loopback"
        );
        let seeded = parse(&["--site-addr", "10.0.0.5:3000", "--seed-demo"]);
        assert!(
            seeded.validate().is_err(),
            "no demo accounts on a network address"
        );
    }
}
