//! The `roster` command: bootstrap prints one JSON object that signs in; openapi prints the
//! committed document; a bad DATABASE_URL is reported as it is.

use std::process::Command;

use serde_json::Value;

fn roster(db: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_roster"))
        .args(args)
        .env("DATABASE_URL", db)
        .env("ROSTER_DEMO", "false")
        .env("RUST_LOG", "warn")
        .output()
        .expect("roster runs")
}

#[tokio::test]
async fn bootstrap_prints_credentials_that_sign_in() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cli.db").to_string_lossy().into_owned();
    let out = roster(&db, &["migrate"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out =
        roster(&db, &["bootstrap", "--tenant-name", "Acme", "--owner-email", "Boss@Acme.Example", "--plan", "plus"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(printed["email"], "boss@acme.example");
    for key in ["tenant_id", "user_id", "password"] {
        assert!(printed[key].is_string(), "{key} in {printed}");
    }
    // The printed password signs in on a server over the same database.
    let mut config = roster::config::Config::from_env().unwrap();
    config.database_url = db.clone();
    config.bind = "127.0.0.1:0".into();
    config.demo = false;
    let app = roster::Application::build(config).await.unwrap();
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run());
    let res = reqwest::Client::new()
        .post(format!("{address}/api/v1/auth/login"))
        .json(&serde_json::json!({"email": "boss@acme.example", "password": printed["password"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let login: Value = res.json().await.unwrap();
    assert_eq!(login["tenant_id"], printed["tenant_id"]);
    // Bad input is a clear error, not a panic.
    let out = roster(&db, &["bootstrap", "--tenant-name", "X", "--owner-email", "nope"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("owner_email"));
}

#[test]
fn openapi_command_prints_the_committed_document() {
    let out = roster("unused.db", &["openapi"]);
    assert!(out.status.success());
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let committed: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(printed, committed);
}

#[test]
fn unreachable_postgres_is_reported_not_guessed() {
    let out = roster("postgres://nobody:secret@127.0.0.1:1/none", &["migrate"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("127.0.0.1") && !err.contains("secret"), "{err}");
    let out = roster("mysql://x@127.0.0.1/db", &["migrate"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("DATABASE_URL"));
}

/// Access logs show request lines, but never an invitation token (it is in the path).
#[tokio::test]
async fn access_logs_leave_invitation_tokens_out() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("logs.db").to_string_lossy().into_owned();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let log = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
    let server = crate::helpers::ServeProcess::start(&db, dir.path(), port, &[("RUST_LOG", "info")], log.into()).await;
    let client = reqwest::Client::new();
    let base = server.base.clone();
    let status =
        client.get(format!("{base}/api/v1/invitations/SeCrEtInViTaTiOnToKeN")).send().await.ok().map(|r| r.status());
    let accepted = client
        .post(format!("{base}/api/v1/invitations/SeCrEtInViTaTiOnToKeN/accept?x=1"))
        .json(&serde_json::json!({"password": "whatever it is"}))
        .send()
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    server.kill();
    assert_eq!(status, Some(reqwest::StatusCode::NOT_FOUND));
    // An unknown query parameter is refused before the token is looked at.
    assert_eq!(accepted.unwrap().status(), reqwest::StatusCode::UNPROCESSABLE_ENTITY);
    let logged = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap();
    assert!(logged.contains("\"GET /api/v1/invitations/[token] HTTP/1.1\" 404"), "{logged}");
    assert!(logged.contains("\"POST /api/v1/invitations/[token]/accept?x=1 HTTP/1.1\" 422"), "{logged}");
    assert!(!logged.contains("SeCrEtInViTaTiOnToKeN"), "{logged}");
}
