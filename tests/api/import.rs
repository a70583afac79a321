//! CSV import: the happy path, dry runs, every kind of bad row, encodings and separators,
//! size limits, seats, multipart, and a process killed mid-import.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Persona, TestApp, assert_problem, spawn_app};

async fn import(app: &TestApp, by: &Persona, query: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
    app.request(Method::POST, &format!("/api/v1/tenants/{}/users/import{query}", by.tenant_id), Some(&by.token))
        .header("content-type", "text/csv")
        .body(body)
        .send()
        .await
        .unwrap()
}

/// The row errors of a refused import, as (row, field) pairs.
async fn row_errors(res: reqwest::Response) -> Vec<(i64, String)> {
    let problem = assert_problem(res, 422).await;
    problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["row"].as_i64().unwrap_or(0), e["field"].as_str().unwrap().to_string()))
        .collect()
}

#[tokio::test]
async fn a_file_imports_whole_after_a_dry_run() {
    let app = spawn_app().await;
    let owner = app.new_owner("enterprise").await;
    app.create_region(&owner, "North", None).await;
    let south = app.create_region(&owner, "South", None).await;
    let boss = app.new_member(&owner, "operator", &[]).await;
    // A byte-order mark, `;` between fields, columns in another order, a manager further down
    // and one already a member, quoted fields.
    let csv = format!(
        "\u{feff}Full Name;email;role;regions;department;section;manager_email;status;username\n\
         \"Larsen; Ann\";ann@import.test;operator;North|{south};Ops;Night;cy@import.test;;ann.l\n\
         Bo Berg;BO@import.test;viewer;;;;{};disabled;\n\
         \n\
         Cy Chen;cy@import.test;;north;Ops;;;active;\n",
        boss.email
    );
    let before = app.member_count(&owner).await;
    let res = import(&app, &owner, "?dry_run=true", csv.clone()).await;
    assert_eq!(res.status(), StatusCode::OK);
    let dry: Value = res.json().await.unwrap();
    assert_eq!((dry["dry_run"].as_bool(), dry["created"].as_i64()), (Some(true), Some(0)));
    assert_eq!(dry["members"].as_array().unwrap().len(), 3);
    assert!(dry["members"][0].get("temporary_password").is_none());
    assert_eq!(app.member_count(&owner).await, before, "a dry run writes nothing");

    let res = import(&app, &owner, "", csv.clone()).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let report: Value = res.json().await.unwrap();
    assert_eq!(report["created"], 3);
    let members = report["members"].as_array().unwrap();
    assert_eq!(members.iter().map(|m| m["line"].as_i64().unwrap()).collect::<Vec<_>>(), vec![2, 3, 5]);
    assert_eq!(app.member_count(&owner).await, before + 3);
    // Each signs in with their temporary password, once.
    let ann = &members[0];
    let login = app.login_ok("ann@import.test", ann["temporary_password"].as_str().unwrap(), None).await;
    assert_eq!(login["must_change_password"], true);
    let users = format!("/api/v1/tenants/{}/users", owner.tenant_id);
    let read: Value =
        app.get(&format!("{users}/{}", ann["user_id"].as_str().unwrap()), &owner.token).await.json().await.unwrap();
    assert_eq!(read["full_name"], "Larsen; Ann");
    assert_eq!(read["username"], "ann.l");
    assert_eq!(read["regions"].as_array().unwrap().len(), 2);
    assert_eq!((read["department"].as_str(), read["section"].as_str()), (Some("Ops"), Some("Night")));
    assert_eq!(read["manager_id"], members[2]["user_id"], "a manager further down the file");
    let bo: Value = app
        .get(&format!("{users}/{}", members[1]["user_id"].as_str().unwrap()), &owner.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!((bo["email"].as_str(), bo["status"].as_str()), (Some("bo@import.test"), Some("disabled")));
    assert_eq!(bo["manager_id"], boss.user_id);
    // Departments named in the file exist now; the import is audited per member and as a whole.
    let depts: Value =
        app.get(&format!("/api/v1/tenants/{}/departments", owner.tenant_id), &owner.token).await.json().await.unwrap();
    assert_eq!(depts["items"][0]["name"], "Ops");
    assert_eq!(depts["items"][0]["member_count"], 2);
    let audit: Value = app
        .get(&format!("/api/v1/tenants/{}/audit-events?action=members.imported", owner.tenant_id), &owner.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(audit["items"][0]["after"]["created"], 3);
    // The same file again: every row is now a member.
    let again = row_errors(import(&app, &owner, "", csv).await).await;
    let expect = [(2, "email"), (2, "username"), (3, "email"), (5, "email")];
    assert_eq!(again, expect.map(|(r, f)| (r, f.to_string())).to_vec());

    // As CSV, for handing out passwords; a comma-separated file.
    let res = app
        .request(Method::POST, &format!("/api/v1/tenants/{}/users/import", owner.tenant_id), Some(&owner.token))
        .header("content-type", "text/csv")
        .header("accept", "text/csv")
        .body("email,full_name\ndee@import.test,Dee Dunn\n")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let text = res.text().await.unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("line,user_id,email,full_name,temporary_password"));
    let fields: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(fields[2], "dee@import.test");
    app.login_ok("dee@import.test", fields[4], None).await;
}

#[tokio::test]
async fn every_bad_row_is_reported_and_nothing_is_created() {
    let app = spawn_app().await;
    let owner = app.new_owner("enterprise").await;
    let north = app.create_region(&owner, "North", None).await;
    app.create_region(&owner, "South", None).await;
    let member = app.new_member(&owner, "viewer", &[]).await;
    let elsewhere = app.new_owner("plus").await;
    let named = app
        .add_member(
            &owner,
            json!({"email": "named@import.test", "full_name": "N", "role": "viewer", "username": "taken.name"}),
        )
        .await;
    assert!(!named.is_empty());
    let csv = format!(
        "email,full_name,role,status,regions,username,department,section,manager_email\n\
         not-an-email,Bad Email,,,,,,,\n\
         ok1@import.test,,,,,,,,\n\
         ok2@import.test,Bad Role,boss,,,,,,\n\
         ok3@import.test,Bad Status,,sleeping,,,,,\n\
         ok4@import.test,No Region,,,Atlantis,,,,\n\
         dup@import.test,Dup One,,,,,,,\n\
         dup@import.test,Dup Two,,,,,,,\n\
         {},Already Member,,,,,,,\n\
         {},Has Account,,,,,,,\n\
         ok5@import.test,Taken Name,,,,taken.name,,,\n\
         ok6@import.test,Twin A,,,,twin,,,\n\
         ok7@import.test,Twin B,,,,twin,,,\n\
         ok8@import.test,Lone Section,,,,,,Night,\n\
         ok9@import.test,Unknown Boss,,,,,,,ghost@import.test\n\
         ok10@import.test,Own Boss,,,,,,,ok10@import.test\n\
         loop1@import.test,Loop One,,,,,,,loop2@import.test\n\
         loop2@import.test,Loop Two,,,,,,,loop1@import.test\n\
         short@import.test,Too Few\n\
         fine@import.test,Fine Row,viewer,,North,,,,\n",
        member.email, elsewhere.email
    );
    let before = app.member_count(&owner).await;
    let errors = row_errors(import(&app, &owner, "", csv.clone()).await).await;
    let expect: Vec<(i64, &str)> = vec![
        (2, "email"),
        (3, "full_name"),
        (4, "role"),
        (5, "status"),
        (6, "regions"),
        (8, "email"),
        (9, "email"),
        (10, "email"),
        (11, "username"),
        (13, "username"),
        (14, "section"),
        (15, "manager_email"),
        (16, "manager_email"),
        (17, "manager_email"),
        (18, "manager_email"),
        (19, "row"),
    ];
    let got: Vec<(i64, &str)> = errors.iter().map(|(r, f)| (*r, f.as_str())).collect();
    assert_eq!(got, expect);
    // The dry run says the same; nothing was created either way.
    assert_eq!(row_errors(import(&app, &owner, "?dry_run=true", csv).await).await, errors);
    assert_eq!(app.member_count(&owner).await, before);

    // Headers: unknown, repeated and missing columns.
    let errors = row_errors(import(&app, &owner, "", "email,name,email\nx@import.test,X,y\n").await).await;
    assert_eq!(errors, vec![(1, "name".to_string()), (1, "email".to_string()), (1, "full_name".to_string())]);

    // An admin imports only operators and viewers within its regions.
    let admin = app.new_member(&owner, "admin", &[&north]).await;
    let csv = "email,full_name,role,regions\na1@import.test,A,admin,North\na2@import.test,B,viewer,South\na3@import.test,C,viewer,\na4@import.test,D,viewer,North\n";
    let errors = row_errors(import(&app, &admin, "", csv).await).await;
    assert_eq!(errors, vec![(2, "role".to_string()), (3, "regions".to_string()), (4, "regions".to_string())]);
    let res = import(&app, &member, "", "email,full_name\nx@import.test,X\n").await;
    assert_problem(res, 403).await;
    assert_eq!(app.member_count(&owner).await, before + 1, "only the admin itself was added");
}

#[tokio::test]
async fn encodings_separators_and_limits_get_clear_answers() {
    let app = spawn_app().await;
    let owner = app.new_owner("enterprise").await;
    // Latin-1 is not UTF-8: the line is named.
    let latin1: Vec<u8> = b"email,full_name\nok@import.test,Ok\njose@import.test,Jos\xe9\n".to_vec();
    let problem = assert_problem(import(&app, &owner, "", latin1).await, 422).await;
    let detail = problem["errors"][0]["message"].as_str().unwrap();
    assert!(detail.contains("not UTF-8") && detail.contains("line 3"), "{detail}");
    let utf16: Vec<u8> = [0xFF, 0xFE, b'e', 0, b'm', 0].to_vec();
    let problem = assert_problem(import(&app, &owner, "", utf16).await, 422).await;
    assert!(problem["errors"][0]["message"].as_str().unwrap().contains("UTF-16"));
    // No field may hold the NUL character (PostgreSQL text cannot): refused, the line named.
    let problem = assert_problem(
        import(
            &app,
            &owner,
            "",
            "email,full_name
nul@import.test,A\0B\n",
        )
        .await,
        422,
    )
    .await;
    assert!(problem["errors"][0]["message"].as_str().unwrap().contains("line 2"), "{problem}");
    assert_problem(import(&app, &owner, "", "").await, 422).await;
    assert_problem(import(&app, &owner, "", "email,full_name\n").await, 422).await;
    // Tabs are not a separator: the one header column is unknown.
    let errors = row_errors(import(&app, &owner, "", "email\tfull_name\nx@import.test\tX\n").await).await;
    assert_eq!(errors[0], (1, "email\tfull_name".to_string()));
    // Too many rows; too many bytes.
    let mut big = String::from("email,full_name\n");
    for i in 0..10_001 {
        big.push_str(&format!("p{i}@import.test,P {i}\n"));
    }
    let problem = assert_problem(import(&app, &owner, "", big).await, 422).await;
    assert!(problem["errors"][0]["message"].as_str().unwrap().contains("10000"), "{problem}");
    let huge =
        format!("email,full_name,job_title\n{}", format!("x@import.test,X,{}\n", "y".repeat(190)).repeat(28_000));
    assert!(huge.len() > 5 * 1024 * 1024);
    let problem = assert_problem(import(&app, &owner, "", huge).await, 413).await;
    assert!(problem["detail"].as_str().unwrap().contains("5 MiB"));
    // Other content types; a bad `delivery`.
    let res = app
        .request(Method::POST, &format!("/api/v1/tenants/{}/users/import", owner.tenant_id), Some(&owner.token))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_problem(res, 415).await;
    assert_problem(import(&app, &owner, "?delivery=pigeon", "email,full_name\n").await, 422).await;
    assert_eq!(app.member_count(&owner).await, 1);

    // Multipart, as a browser form sends it.
    let form = reqwest::multipart::Form::new().text("note", "ignored").part(
        "file",
        reqwest::multipart::Part::bytes(b"email,full_name\nform@import.test,Form\n".to_vec()).file_name("people.csv"),
    );
    let res = app
        .request(Method::POST, &format!("/api/v1/tenants/{}/users/import", owner.tenant_id), Some(&owner.token))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(app.member_count(&owner).await, 2);
}

#[tokio::test]
async fn a_file_that_overflows_the_seats_creates_nobody() {
    let app = spawn_app().await;
    let owner = app.new_owner("free").await; // 6 seats, the owner holds one
    let mut csv = String::from("email,full_name,status\n");
    for i in 0..6 {
        csv.push_str(&format!("s{i}@import.test,S {i},active\n"));
    }
    let problem = assert_problem(import(&app, &owner, "", csv).await, 422).await;
    assert_eq!(problem["errors"][0]["field"], "file");
    assert!(problem["errors"][0]["message"].as_str().unwrap().contains("only 5 of the plan's 6 seats are free"));
    assert_eq!(app.member_count(&owner).await, 1);
    // Disabled members hold no seat.
    let mut csv = String::from("email,full_name,status\n");
    for i in 0..5 {
        csv.push_str(&format!("a{i}@import.test,A {i},active\n"));
    }
    csv.push_str("d@import.test,D,disabled\n");
    assert_eq!(import(&app, &owner, "", csv).await.status(), StatusCode::CREATED);
    assert_eq!(app.member_count(&owner).await, 7);
}

/// A `roster serve` process killed (`kill -9`) while importing leaves all of the file or none.
#[tokio::test]
async fn a_process_killed_mid_import_leaves_no_partial_import() {
    use crate::helpers::{ServeProcess, sign_in_on, tenant_on};
    let db = crate::helpers::TestDb::shared();
    let data = tempfile::tempdir().unwrap();
    let port = crate::email::free_port();
    let start = || ServeProcess::start(&db.url, data.path(), port, &[], std::process::Stdio::null());
    let server = start().await;
    let base = server.base.clone();
    let (tenant, password, token) = tenant_on(&base, "boss@import-kill.test", "enterprise").await;
    let mut csv = String::from("email,full_name,department\n");
    for i in 0..10_000 {
        csv.push_str(&format!("k{i}@import-kill.test,Killed {i},Dept {}\n", i % 7));
    }
    let upload = reqwest::Client::new()
        .post(format!("{base}/api/v1/tenants/{tenant}/users/import"))
        .bearer_auth(&token)
        .header("content-type", "text/csv")
        .body(csv)
        .send();
    let in_flight = tokio::spawn(upload);
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    server.kill();
    let _ = in_flight.await;
    let _restarted = start().await;
    let token = sign_in_on(&base, "boss@import-kill.test", &password).await;
    let page: Value = reqwest::Client::new()
        .get(format!("{base}/api/v1/tenants/{tenant}/users?limit=1"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let total = page["total"].as_i64().unwrap();
    assert!(total == 1 || total == 10_001, "all of the file or none of it, got {total} members");
}

async fn export(app: &TestApp, by: &Persona, query: &str) -> reqwest::Response {
    app.get(&format!("/api/v1/tenants/{}/users/export{query}", by.tenant_id), &by.token).await
}

#[tokio::test]
async fn exports_are_for_owners_on_paid_plans() {
    let app = spawn_app().await;
    let free = app.new_owner("free").await;
    let problem = assert_problem(export(&app, &free, "").await, 403).await;
    assert_eq!(problem["type"], "urn:roster:problem:plan-upgrade-required");
    assert!(problem["detail"].as_str().unwrap().contains("plus or enterprise"), "{problem}");
    let owner = app.new_owner("plus").await;
    let admin = app.new_member(&owner, "admin", &[]).await;
    let problem = assert_problem(export(&app, &admin, "").await, 403).await;
    assert!(problem["detail"].as_str().unwrap().contains("only owners"));
    assert_problem(export(&app, &owner, "?format=xml").await, 422).await;
    assert_problem(export(&app, &owner, "?role=boss").await, 422).await;
}

/// A large tenant streams out a thousand members per read; the file holds what the list
/// shows, in the same order, for the same filters.
#[tokio::test]
async fn an_export_streams_what_the_list_shows() {
    let app = spawn_app().await;
    let owner = app.new_owner("enterprise").await;
    let mut csv = String::from("email,full_name,role,department\n");
    for i in 0..2_500 {
        let role = if i % 3 == 0 { "operator" } else { "viewer" };
        csv.push_str(&format!("e{i:04}@export.test,\"Person, {i:04}\",{role},Dept {}\n", i % 4));
    }
    assert_eq!(import(&app, &owner, "", csv).await.status(), StatusCode::CREATED);

    let res = export(&app, &owner, "").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers().get("content-length").is_none(), "streamed, not sized up front");
    assert!(res.headers()["content-disposition"].to_str().unwrap().contains(".csv"));
    let text = res.text().await.unwrap();
    let mut reader = csv_reader(&text);
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(&header[..4], ["id", "email", "username", "full_name"]);
    let rows: Vec<Vec<String>> = reader.records().map(|r| r.unwrap().iter().map(String::from).collect()).collect();
    assert_eq!(rows.len(), 2_501);
    assert!(rows.iter().any(|r| r[3] == "Person, 0042"), "quoted fields survive");

    // The same filters and sort as the list give the same members in the same order.
    for query in ["role=operator&sort=-email", "department=Dept%201&q=person%2C%2000", "sort=created_at"] {
        let listed: Vec<String> = app
            .all_pages(&format!("/api/v1/tenants/{}/users?limit=200&{query}", owner.tenant_id), &owner.token)
            .await
            .iter()
            .flat_map(|p| {
                p["items"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_string()).collect::<Vec<_>>()
            })
            .collect();
        let res = export(&app, &owner, &format!("?format=json&{query}")).await;
        assert_eq!(res.status(), StatusCode::OK, "{query}");
        let exported: Value = res.json().await.unwrap();
        let ids: Vec<String> =
            exported.as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_string()).collect();
        assert_eq!(ids, listed, "{query}");
        assert!(!ids.is_empty(), "{query}");
    }
    let none: Value = export(&app, &owner, "?format=json&q=nobody-at-all").await.json().await.unwrap();
    assert_eq!(none, json!([]));
    let audit: Value = app
        .get(&format!("/api/v1/tenants/{}/audit-events?action=members.exported", owner.tenant_id), &owner.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(audit["total"], 5);
}

fn csv_reader(text: &str) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new().from_reader(text.as_bytes())
}

/// `delivery=email`: no passwords in the answer; each new member gets a link to choose one.
#[tokio::test]
async fn an_import_can_send_set_password_emails() {
    let app = spawn_app().await;
    let owner = app.new_owner("plus").await;
    let res =
        import(&app, &owner, "?delivery=email", "email,full_name\nm1@import.test,M One\nm2@import.test,M Two\n").await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let report: Value = res.json().await.unwrap();
    assert!(report["members"].as_array().unwrap().iter().all(|m| m.get("temporary_password").is_none()));
    let outbox = app.data.path().join("outbox");
    let files = crate::email::wait_for(2, || {
        std::fs::read_dir(&outbox)
            .map(|d| d.flatten().filter_map(|e| std::fs::read(e.path()).ok()).collect())
            .unwrap_or_default()
    })
    .await;
    let mut to: Vec<String> = files.iter().map(|f| crate::email::parse(f).to).collect();
    to.sort();
    assert!(to[0].contains("m1@import.test") && to[1].contains("m2@import.test"), "{to:?}");
    let mail = crate::email::parse(&files[0]);
    let token = crate::invitations::link_token(&mail, "set-password");
    let res = app
        .request(Method::POST, "/api/v1/auth/password-reset/confirm", None)
        .json(&json!({"token": token, "new_password": "a passphrase of my own"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}
