//! `spawn_app()`: the real application on a free port over a fresh database (a SQLite file in a
//! temp dir, or a fresh PostgreSQL database when `TEST_DATABASE_URL` is set), plus personas.

use diesel::Connection;
use diesel::connection::SimpleConnection;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use roster::config::Config;
use serde_json::{Value, json};

pub const PLATFORM_TOKEN: &str = "test-platform-token-0123456789";

/// The database behind one test; dropped with it.
pub struct TestDb {
    pub url: String,
    admin_url: Option<String>,
    name: String,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    /// A fresh database to share between instances.
    pub fn shared() -> std::sync::Arc<Self> {
        std::sync::Arc::new(Self::new())
    }

    fn new() -> Self {
        match std::env::var("TEST_DATABASE_URL").ok().filter(|v| !v.is_empty()) {
            Some(admin_url) => {
                let name = format!("roster_test_{}", uuid::Uuid::now_v7().simple());
                let mut conn =
                    diesel::PgConnection::establish(&admin_url).expect("TEST_DATABASE_URL must be reachable");
                conn.batch_execute(&format!("CREATE DATABASE {name}")).expect("create test database");
                let base = admin_url.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin_url);
                // Local test server: no TLS, so libpq never starts OpenSSL (whose exit-time
                // cleanup can race with pool threads still reconnecting to a dropped database).
                let url = format!("{base}/{name}?sslmode=disable");
                if partitioned() {
                    partition_by_tenant(&url);
                }
                Self { url, admin_url: Some(admin_url), name, _dir: None }
            }
            None => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = dir.path().join("roster.db").to_string_lossy().into_owned();
                Self { url, admin_url: None, name: String::new(), _dir: Some(dir) }
            }
        }
    }
}

/// `ROSTER_TEST_PARTITIONED=1` (with `TEST_DATABASE_URL`): each test database is migrated and
/// its tenant-owned tables hash-partitioned by `tenant_id` (`tools/partition.sql`) before the
/// application starts, so the suite runs on the keys a database sharded by tenant accepts.
pub fn partitioned() -> bool {
    std::env::var("ROSTER_TEST_PARTITIONED").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// How many partitions each tenant-owned table gets in the partitioned variant.
const PARTITIONS: u32 = 4;

fn partition_by_tenant(url: &str) {
    let mut conn = roster::db::AnyConnection::Postgresql(
        diesel::PgConnection::establish(url).expect("the fresh test database is reachable"),
    );
    roster::db::run_migrations(&mut conn).expect("migrations apply");
    let globals = crate::schema_keys::GLOBAL_TABLES.iter().map(|t| format!("'{t}'")).collect::<Vec<_>>().join(", ");
    conn.batch_execute(&format!(
        "BEGIN; {} SELECT pg_temp.partition_by_tenant(ARRAY[{globals}]::text[], {PARTITIONS}); COMMIT;",
        include_str!("../../tools/partition.sql")
    ))
    .expect("tenant-owned tables hash-partitioned by tenant_id (tools/partition.sql)");
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(admin) = &self.admin_url
            && let Ok(mut conn) = diesel::PgConnection::establish(admin)
        {
            let _ = conn.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
        }
    }
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub db: std::sync::Arc<TestDb>,
    /// This instance's data directory (the file email transport writes under `outbox/`).
    pub data: std::sync::Arc<tempfile::TempDir>,
}

/// The master key every test instance shares (32 bytes, base64).
pub const TEST_MASTER_KEY: &str = "dGVzdC1tYXN0ZXIta2V5LTAxMjM0NTY3ODlhYmNkZWY=";

pub fn config(db_url: &str) -> Config {
    Config {
        database_url: db_url.to_string(),
        bind: "127.0.0.1:0".into(),
        data_dir: std::env::temp_dir(),
        public_url: "http://roster.test".into(),
        platform_token: Some(secrecy::SecretString::from(PLATFORM_TOKEN)),
        demo: false,
        access_token_ttl_secs: 900,
        pool_size: 8,
        workers: 2,
        hash_concurrency: 2,
        list_cache_bytes: 32 * 1024 * 1024,
        smtp_url: None,
        mail_from: "Roster <roster@roster.test>".into(),
        app_url: "http://app.roster.test".into(),
        rate_login_per_minute: 100_000,
        rate_reset_per_hour: 100_000,
        rate_emails_per_recipient_per_hour: 100_000,
        session_days: 30,
        session_idle_days: 7,
        lockout_threshold: 5,
        lockout_secs: 60,
        rate_invite_per_hour: 100_000,
        rate_tenant_emails_per_hour: 100_000,
        rate_api_key_per_minute: 100_000,
        master_key: Some(secrecy::SecretString::from(TEST_MASTER_KEY)),
        cors_origins: Vec::new(),
        webhook_allowed_hosts: vec!["127.0.0.1".into()],
        webhook_retry_secs: vec![1, 1, 1],
        event_retention_days: 30,
        dns_resolver: None,
        sso_insecure_hosts: Vec::new(),
        trusted_proxies: Default::default(),
    }
}

async fn start(db: std::sync::Arc<TestDb>) -> TestApp {
    start_with(db, |_| {}).await
}

/// An instance over `db`, configured as the tests' and then by `adjust`.
pub async fn start_on(db: std::sync::Arc<TestDb>, adjust: impl FnOnce(&mut Config)) -> TestApp {
    start_with(db, adjust).await
}

async fn start_with(db: std::sync::Arc<TestDb>, adjust: impl FnOnce(&mut Config)) -> TestApp {
    let data = tempfile::tempdir().expect("data dir");
    let mut config = config(&db.url);
    config.data_dir = data.path().to_path_buf();
    adjust(&mut config);
    let app = roster::Application::build(config).await.expect("application builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run());
    TestApp { address, client: reqwest::Client::new(), db, data: std::sync::Arc::new(data) }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// [`spawn_app`] with the configuration adjusted.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    let _ = env_logger::builder().is_test(true).try_init();
    start_with(std::sync::Arc::new(TestDb::new()), adjust).await
}

/// A signed-in member of one tenant.
#[derive(Clone, Debug)]
pub struct Persona {
    pub tenant_id: String,
    pub user_id: String,
    pub email: String,
    pub password: String,
    pub token: String,
}

impl TestApp {
    /// Runs SQL on this instance's database directly (to set up what no route may, such as
    /// an expired token).
    /// Returns the number of rows changed.
    pub fn execute_sql(&self, sql: &str) -> usize {
        use diesel::RunQueryDsl;
        let changed = if self.db.url.starts_with("postgres") {
            diesel::sql_query(sql).execute(&mut diesel::PgConnection::establish(&self.db.url).expect("connect"))
        } else {
            diesel::sql_query(sql).execute(&mut diesel::SqliteConnection::establish(&self.db.url).expect("connect"))
        };
        changed.expect("sql")
    }

    /// A second server instance on the same database.
    pub async fn second_instance(&self) -> TestApp {
        start(self.db.clone()).await
    }

    /// A second server instance on the same database, configured differently.
    pub async fn second_instance_with(&self, adjust: impl FnOnce(&mut Config)) -> TestApp {
        start_with(self.db.clone(), adjust).await
    }

    pub fn request(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let mut rb = self.client.request(method, format!("{}{}", self.address, path));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        rb
    }

    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.request(Method::GET, path, Some(token)).send().await.expect("request")
    }

    pub async fn send_json(&self, method: Method, path: &str, token: &str, body: Value) -> Response {
        self.request(method, path, Some(token)).json(&body).send().await.expect("request")
    }

    pub async fn create_tenant(&self, name: &str, owner_email: &str, plan: &str) -> Value {
        let res = self
            .request(Method::POST, "/api/v1/tenants", Some(PLATFORM_TOKEN))
            .json(&json!({"name": name, "owner_email": owner_email, "plan": plan}))
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), StatusCode::CREATED, "create tenant");
        res.json().await.expect("json")
    }

    pub async fn login(&self, body: Value) -> Response {
        self.request(Method::POST, "/api/v1/auth/login", None).json(&body).send().await.expect("request")
    }

    /// Logs in and returns the answer, asserting 200.
    pub async fn login_ok(&self, email: &str, password: &str, tenant_id: Option<&str>) -> Value {
        let mut body = json!({"email": email, "password": password});
        if let Some(t) = tenant_id {
            body["tenant_id"] = json!(t);
        }
        let res = self.login(body).await;
        assert_eq!(res.status(), StatusCode::OK, "login {email}");
        res.json().await.expect("json")
    }

    /// A new tenant (plan `plus` unless given) and its signed-in owner.
    pub async fn new_owner(&self, plan: &str) -> Persona {
        let email = format!("owner-{}@example.test", uuid::Uuid::now_v7().simple());
        let created = self.create_tenant("Tenant", &email, plan).await;
        let password = created["password"].as_str().expect("generated password").to_string();
        let tenant_id = created["tenant_id"].as_str().expect("tenant id").to_string();
        let login = self.login_ok(&email, &password, None).await;
        Persona {
            tenant_id,
            user_id: created["user_id"].as_str().expect("user id").to_string(),
            email,
            password,
            token: login["access_token"].as_str().expect("token").to_string(),
        }
    }

    /// Every page of a list, following `next_cursor` from `url` (which has a query string).
    pub async fn all_pages(&self, url: &str, token: &str) -> Vec<Value> {
        let mut pages = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page_url = match &cursor {
                Some(c) => format!("{url}&cursor={c}"),
                None => url.to_string(),
            };
            let res = self.get(&page_url, token).await;
            assert_eq!(res.status(), StatusCode::OK, "{page_url}");
            let page: Value = res.json().await.expect("json");
            cursor = page["next_cursor"].as_str().map(str::to_string);
            pages.push(page);
            if cursor.is_none() {
                return pages;
            }
        }
    }

    /// `POST .../users` as `by` with `body`.
    pub async fn post_member(&self, by: &Persona, body: Value) -> Response {
        self.send_json(Method::POST, &format!("/api/v1/tenants/{}/users", by.tenant_id), &by.token, body).await
    }

    /// Creates a member as `by` from `body` and returns its id (asserting 201).
    pub async fn add_member(&self, by: &Persona, body: Value) -> String {
        let res = self.post_member(by, body).await;
        assert_eq!(res.status(), StatusCode::CREATED, "create member");
        let created: Value = res.json().await.expect("json");
        created["id"].as_str().expect("id").to_string()
    }

    /// Creates a member as `by` and returns the created JSON (asserting 201).
    pub async fn create_member(&self, by: &Persona, role: &str, regions: &[&str]) -> Value {
        let email = format!("{role}-{}@example.test", uuid::Uuid::now_v7().simple());
        let res = self
            .send_json(
                Method::POST,
                &format!("/api/v1/tenants/{}/users", by.tenant_id),
                &by.token,
                json!({"email": email, "full_name": format!("Test {role}"), "role": role, "regions": regions}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED, "create {role}");
        res.json().await.expect("json")
    }

    /// Creates a member, signs them in with the temporary password and sets their own.
    pub async fn new_member(&self, by: &Persona, role: &str, regions: &[&str]) -> Persona {
        let created = self.create_member(by, role, regions).await;
        let email = created["email"].as_str().expect("email").to_string();
        let temp = created["temporary_password"].as_str().expect("temp").to_string();
        let login = self.login_ok(&email, &temp, Some(&by.tenant_id)).await;
        assert_eq!(login["must_change_password"], true);
        let password = format!("a long passphrase {}", uuid::Uuid::now_v7().simple());
        let res = self
            .send_json(
                Method::POST,
                "/api/v1/auth/password",
                login["access_token"].as_str().expect("token"),
                json!({"current_password": temp, "new_password": password}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK, "change password");
        let body: Value = res.json().await.expect("json");
        Persona {
            tenant_id: by.tenant_id.clone(),
            user_id: created["id"].as_str().expect("id").to_string(),
            email,
            password,
            token: body["access_token"].as_str().expect("token").to_string(),
        }
    }

    pub async fn create_region(&self, owner: &Persona, name: &str, parent: Option<&str>) -> String {
        let res = self
            .send_json(
                Method::POST,
                &format!("/api/v1/tenants/{}/regions", owner.tenant_id),
                &owner.token,
                json!({"name": name, "parent_id": parent}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED, "create region");
        let body: Value = res.json().await.expect("json");
        body["id"].as_str().expect("id").to_string()
    }

    pub async fn set_status(&self, by: &Persona, user_id: &str, status: &str) -> Response {
        self.send_json(
            Method::PUT,
            &format!("/api/v1/tenants/{}/users/{}/status", by.tenant_id, user_id),
            &by.token,
            json!({"status": status}),
        )
        .await
    }

    pub async fn member_count(&self, owner: &Persona) -> i64 {
        let res =
            self.get(&format!("/api/v1/tenants/{}/users?status=all&limit=1", owner.tenant_id), &owner.token).await;
        let body: Value = res.json().await.expect("json");
        body["total"].as_i64().expect("total")
    }

    /// The newest audit events (up to 50) whose action matches `action` (`section.*` and the
    /// like), as `owner` reads them.
    pub async fn audit_events(&self, owner: &Persona, action: &str) -> Vec<Value> {
        let path = format!("/api/v1/tenants/{}/audit-events?action={action}", owner.tenant_id);
        let body: Value = self.get(&path, &owner.token).await.json().await.expect("json");
        body["items"].as_array().expect("items").clone()
    }

    pub async fn audit_count(&self, owner: &Persona) -> i64 {
        let res = self.get(&format!("/api/v1/tenants/{}/audit-events?limit=1", owner.tenant_id), &owner.token).await;
        let body: Value = res.json().await.expect("json");
        body["total"].as_i64().expect("total")
    }
}

/// Asserts a problem+json answer with this status; returns the body.
pub async fn assert_problem(res: Response, status: u16) -> Value {
    assert_eq!(res.status().as_u16(), status, "status");
    let ct = res.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    assert!(ct.starts_with("application/problem+json"), "content type {ct}");
    let body: Value = res.json().await.expect("problem json");
    assert_eq!(body["status"], status);
    assert!(body["type"].as_str().is_some_and(|t| t.starts_with("urn:roster:problem:")), "{body}");
    assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()), "{body}");
    body
}

/// Signs claims with the service's own key, read from the database and opened with the
/// test master key (to test expiry).
pub fn sign_with_service_key(app: &TestApp, claims: Value) -> String {
    use base64::Engine;
    use diesel::prelude::*;
    let pool = roster::db::build_pool(&app.db.url, 1).expect("pool");
    let mut conn = pool.get().expect("conn");
    let (kid, seed): (String, String) = roster::db::schema::signing_keys::table
        .select((roster::db::schema::signing_keys::kid, roster::db::schema::signing_keys::private_key))
        .first(&mut *conn)
        .expect("signing key");
    let master: [u8; 32] =
        base64::engine::general_purpose::STANDARD.decode(TEST_MASTER_KEY).expect("key").try_into().expect("32 bytes");
    let seed = roster::auth::master_key::MasterKey::from_bytes(master, "test").open(&seed, &kid).expect("seed");
    let mut der = vec![0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];
    der.extend_from_slice(&seed);
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some(kid);
    jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_ed_der(&der)).expect("sign")
}

/// A `roster serve` process (the real binary), for tests that kill it or read what it logs.
pub struct ServeProcess {
    child: std::process::Child,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
}

impl ServeProcess {
    /// Starts `roster serve` over `db_url`, keeping files in `data_dir`, on `port`, with the
    /// tests' platform token and master key (and `env` on top); waits until it answers.
    pub async fn start(
        db_url: &str,
        data_dir: &std::path::Path,
        port: u16,
        env: &[(&str, &str)],
        stderr: std::process::Stdio,
    ) -> Self {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_roster"));
        command
            .arg("serve")
            .env("DATABASE_URL", db_url)
            .env("ROSTER_DATA_DIR", data_dir)
            .env("ROSTER_BIND", format!("127.0.0.1:{port}"))
            .env("ROSTER_PUBLIC_URL", "http://roster.test")
            .env("ROSTER_DEMO", "false")
            .env("ROSTER_PLATFORM_TOKEN", PLATFORM_TOKEN)
            .env("ROSTER_MASTER_KEY", TEST_MASTER_KEY)
            .env("RUST_LOG", "warn");
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command.stdout(std::process::Stdio::null()).stderr(stderr).spawn().expect("roster serve");
        let server = Self { child, base: format!("http://127.0.0.1:{port}") };
        let client = reqwest::Client::new();
        for _ in 0..200 {
            if client.get(format!("{}/healthz", server.base)).send().await.is_ok() {
                return server;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("roster serve did not start");
    }

    /// `kill -9`, and waits for the process to be gone.
    pub fn kill(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A new tenant on `base` (through the platform token) and its owner's access token.
pub async fn tenant_on(base: &str, owner_email: &str, plan: &str) -> (String, String, String) {
    let client = reqwest::Client::new();
    let created: Value = client
        .post(format!("{base}/api/v1/tenants"))
        .bearer_auth(PLATFORM_TOKEN)
        .json(&json!({"name": "Process", "owner_email": owner_email, "plan": plan}))
        .send()
        .await
        .expect("create tenant")
        .json()
        .await
        .expect("json");
    let password = created["password"].as_str().expect("password").to_string();
    let token = sign_in_on(base, owner_email, &password).await;
    (created["tenant_id"].as_str().expect("tenant id").to_string(), password, token)
}

/// Signs in on `base` and returns the access token.
pub async fn sign_in_on(base: &str, email: &str, password: &str) -> String {
    let login: Value = reqwest::Client::new()
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("json");
    login["access_token"].as_str().expect("token").to_string()
}
