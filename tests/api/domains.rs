//! Verified domains against a real DNS server (tools/dns_server.py): add, the TXT record to
//! publish, verify (and what a failed check says), one tenant per domain (also when two verify
//! at once), public and malformed domains, isolation, roles, audit.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::dns_harness::{DnsServer, add_domain, check_domain, verify_domain};
use crate::helpers::{TestApp, assert_problem, spawn_app_with};

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}.test", &uuid::Uuid::now_v7().simple().to_string()[20..])
}

async fn app_with_dns() -> (TestApp, DnsServer) {
    let dns = DnsServer::start();
    let app = spawn_app_with(|c| dns.configure(c)).await;
    (app, dns)
}

async fn added(res: reqwest::Response) -> Value {
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

#[tokio::test]
async fn a_domain_is_verified_by_its_txt_record() {
    let (app, dns) = app_with_dns().await;
    let owner = app.new_owner("plus").await;
    let domain = unique("acme");
    let res = add_domain(&app, &owner, &format!(" {}. ", domain.to_uppercase())).await;
    assert!(res.headers().get("location").is_some());
    let body = added(res).await;
    assert_eq!(body["domain"], domain.as_str(), "lower case, no trailing dot");
    assert_eq!(body["status"], "pending");
    assert_eq!(body["verified_at"], Value::Null);
    assert_eq!(body["verification"]["type"], "TXT");
    assert_eq!(body["verification"]["name"], format!("_roster-challenge.{domain}"));
    let value = body["verification"]["value"].as_str().unwrap().to_string();
    let token = value.strip_prefix("roster-verification=").expect("value prefix");
    assert!(token.len() >= 32, "at least 128 bits: {token}");
    let id = body["id"].as_str().unwrap().to_string();

    // Another domain's token is different.
    let other = added(add_domain(&app, &owner, &unique("other")).await).await;
    assert_ne!(other["verification"]["value"], body["verification"]["value"]);

    // Published among other records (and split in two strings by the server when long): verified.
    dns.set_txt(&format!("_roster-challenge.{domain}"), &["v=spf1 -all", &value]);
    let res = check_domain(&app, &owner, &id).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers().get("etag").is_some());
    let verified: Value = res.json().await.unwrap();
    assert_eq!(verified["status"], "verified");
    assert!(verified["verified_at"].as_str().unwrap().ends_with('Z'));
    assert!(verified["last_checked_at"].as_str().is_some());
    assert_eq!(verified["last_check_error"], Value::Null);

    // Read back, listed.
    let one: Value =
        app.get(&format!("/api/v1/tenants/{}/domains/{id}", owner.tenant_id), &owner.token).await.json().await.unwrap();
    assert_eq!(one["status"], "verified");
    let list: Value =
        app.get(&format!("/api/v1/tenants/{}/domains", owner.tenant_id), &owner.token).await.json().await.unwrap();
    assert_eq!(list["total"], 2);
    assert_eq!(list["items"].as_array().unwrap().len(), 2);

    // Checking again when the record is gone: 422 saying so, and the domain stays verified.
    dns.remove(&format!("_roster-challenge.{domain}"));
    let problem = assert_problem(check_domain(&app, &owner, &id).await, 422).await;
    assert!(problem["detail"].as_str().unwrap().contains("does not exist"), "{problem}");
    let one: Value =
        app.get(&format!("/api/v1/tenants/{}/domains/{id}", owner.tenant_id), &owner.token).await.json().await.unwrap();
    assert_eq!(one["status"], "verified");
    assert!(one["last_check_error"].as_str().unwrap().contains("does not exist"));

    // The same domain again in the same tenant: 409.
    let problem = assert_problem(add_domain(&app, &owner, &domain).await, 409).await;
    assert_eq!(problem["type"], "urn:roster:problem:domain-exists");
}

#[tokio::test]
async fn a_failed_check_says_what_dns_answered() {
    let (app, dns) = app_with_dns().await;
    let owner = app.new_owner("plus").await;
    let domain = unique("wrong");
    let body = added(add_domain(&app, &owner, &domain).await).await;
    let id = body["id"].as_str().unwrap();
    let name = format!("_roster-challenge.{domain}");
    let expected = body["verification"]["value"].as_str().unwrap();

    // No such name.
    let p = assert_problem(check_domain(&app, &owner, id).await, 422).await;
    let detail = p["detail"].as_str().unwrap();
    assert!(detail.contains(&name) && detail.contains("does not exist") && detail.contains(expected), "{detail}");
    assert_eq!(p["errors"][0]["field"], "domain");

    // The name exists without a TXT record.
    dns.set_txt(&name, &[]);
    let p = assert_problem(check_domain(&app, &owner, id).await, 422).await;
    assert!(p["detail"].as_str().unwrap().contains("no TXT record"), "{p}");

    // Wrong values: each listed, with the one expected.
    dns.set_txt(&name, &["roster-verification=stale", "google-site-verification=x"]);
    let p = assert_problem(check_domain(&app, &owner, id).await, 422).await;
    let detail = p["detail"].as_str().unwrap();
    assert!(detail.contains("\"roster-verification=stale\""), "{detail}");
    assert!(detail.contains("\"google-site-verification=x\""), "{detail}");
    assert!(detail.contains(expected), "{detail}");
    let one: Value =
        app.get(&format!("/api/v1/tenants/{}/domains/{id}", owner.tenant_id), &owner.token).await.json().await.unwrap();
    assert_eq!(one["status"], "pending");
    assert_eq!(one["last_check_error"], p["errors"][0]["message"]);

    // The resolver failing.
    dns.set_servfail(&name);
    let p = assert_problem(check_domain(&app, &owner, id).await, 422).await;
    assert!(p["detail"].as_str().unwrap().contains("failed"), "{p}");

    // Audited, each failure.
    let failures = app.audit_events(&owner, "domain.verification_failed").await;
    assert_eq!(failures.len(), 4, "{failures:#?}");
}

#[tokio::test]
async fn an_unreachable_resolver_is_a_clear_422() {
    // Nothing listens on this port: the resolver gets refused (or no answer in time).
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    drop(socket);
    let app = spawn_app_with(|c| c.dns_resolver = Some(addr.to_string())).await;
    let owner = app.new_owner("plus").await;
    let body = added(add_domain(&app, &owner, &unique("nodns")).await).await;
    let p = assert_problem(check_domain(&app, &owner, body["id"].as_str().unwrap()).await, 422).await;
    let detail = p["detail"].as_str().unwrap();
    assert!(detail.contains(&addr.to_string()), "names the server it asked: {detail}");
}

#[tokio::test]
async fn a_domain_belongs_to_one_tenant() {
    let (app, dns) = app_with_dns().await;
    let a = app.new_owner("plus").await;
    let b = app.new_owner("plus").await;
    let domain = unique("shared");

    // B adds it while it is free, A verifies it first.
    let b_added = added(add_domain(&app, &b, &domain).await).await;
    verify_domain(&app, &dns, &a, &domain).await;

    // B publishing its own record does not help: 409 domain-claimed, and B's stays pending.
    let rec = &b_added["verification"];
    dns.set_txt(rec["name"].as_str().unwrap(), &[rec["value"].as_str().unwrap()]);
    let p = assert_problem(check_domain(&app, &b, b_added["id"].as_str().unwrap()).await, 409).await;
    assert_eq!(p["type"], "urn:roster:problem:domain-claimed");
    let one: Value = app
        .get(&format!("/api/v1/tenants/{}/domains/{}", b.tenant_id, b_added["id"].as_str().unwrap()), &b.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(one["status"], "pending");

    // A third tenant cannot even add it.
    let c = app.new_owner("plus").await;
    let p = assert_problem(add_domain(&app, &c, &domain).await, 409).await;
    assert_eq!(p["type"], "urn:roster:problem:domain-claimed");

    // A removes it: the claim goes with it and B can verify.
    let a_list: Value =
        app.get(&format!("/api/v1/tenants/{}/domains", a.tenant_id), &a.token).await.json().await.unwrap();
    let a_id = a_list["items"][0]["id"].as_str().unwrap().to_string();
    let res = app
        .request(Method::DELETE, &format!("/api/v1/tenants/{}/domains/{a_id}", a.tenant_id), Some(&a.token))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.get(&format!("/api/v1/tenants/{}/domains/{a_id}", a.tenant_id), &a.token).await.status(), 404);
    let res = check_domain(&app, &b, b_added["id"].as_str().unwrap()).await;
    assert_eq!(res.status(), StatusCode::OK);

    // Audit: added, verified, removed.
    assert_eq!(app.audit_events(&a, "domain.added").await.len(), 1);
    assert_eq!(app.audit_events(&a, "domain.verified").await.len(), 1);
    let removed = app.audit_events(&a, "domain.removed").await;
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0]["target_id"], a_id.as_str());
    assert_eq!(app.audit_events(&b, "domain.verified").await.len(), 1);
}

#[tokio::test]
async fn two_tenants_verifying_one_domain_at_once_one_wins() {
    let (app, dns) = app_with_dns().await;
    let domain = unique("race");
    let name = format!("_roster-challenge.{domain}");
    let mut owners = Vec::new();
    let mut ids = Vec::new();
    let mut values = Vec::new();
    for _ in 0..6 {
        let owner = app.new_owner("plus").await;
        let body = added(add_domain(&app, &owner, &domain).await).await;
        ids.push(body["id"].as_str().unwrap().to_string());
        values.push(body["verification"]["value"].as_str().unwrap().to_string());
        owners.push(owner);
    }
    // Every tenant's record is published (as if each had control of the zone for a moment).
    let refs: Vec<&str> = values.iter().map(String::as_str).collect();
    dns.set_txt(&name, &refs);
    let mut tasks = Vec::new();
    for (owner, id) in owners.iter().zip(&ids) {
        let (app_address, token, tenant, id) =
            (app.address.clone(), owner.token.clone(), owner.tenant_id.clone(), id.clone());
        tasks.push(tokio::spawn(async move {
            reqwest::Client::new()
                .post(format!("{app_address}/api/v1/tenants/{tenant}/domains/{id}/verify"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap().as_u16());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 5, "{statuses:?}");
    let verified: Vec<bool> = {
        let mut v = Vec::new();
        for (owner, id) in owners.iter().zip(&ids) {
            let one: Value = app
                .get(&format!("/api/v1/tenants/{}/domains/{id}", owner.tenant_id), &owner.token)
                .await
                .json()
                .await
                .unwrap();
            v.push(one["status"] == "verified");
        }
        v
    };
    assert_eq!(verified.iter().filter(|v| **v).count(), 1, "{verified:?}");
}

#[tokio::test]
async fn public_and_malformed_domains_are_refused() {
    let (app, _dns) = app_with_dns().await;
    let owner = app.new_owner("plus").await;
    for public in
        ["gmail.com", "Outlook.com", "yahoo.co.uk", "gmx.de", "mail.ru", "qq.com", "proton.me", "eu.hotmail.com"]
    {
        let p = assert_problem(add_domain(&app, &owner, public).await, 422).await;
        assert_eq!(p["errors"][0]["field"], "domain", "{public}: {p}");
        assert!(p["detail"].as_str().unwrap().contains("public mail domain"), "{public}: {p}");
    }
    for bad in [
        "localhost",
        "acme..test",
        "-acme.test",
        "acme_1.test",
        "10.0.0.1",
        "[::1]",
        "ann@acme.test",
        "https://acme.test",
        "",
        "a.b/c",
    ] {
        let p = assert_problem(add_domain(&app, &owner, bad).await, 422).await;
        assert_eq!(p["errors"][0]["field"], "domain", "{bad}: {p}");
    }
    let long = format!("{}.test", "a".repeat(64));
    assert_problem(add_domain(&app, &owner, &long).await, 422).await;
    // An internationalised name is stored in its ASCII form.
    let body = added(add_domain(&app, &owner, "Bücher-Beispiel.test").await).await;
    assert_eq!(body["domain"], "xn--bcher-beispiel-gsb.test");
    assert_eq!(body["verification"]["name"], "_roster-challenge.xn--bcher-beispiel-gsb.test");
    // Unknown fields and wrong types.
    let res = app
        .send_json(
            Method::POST,
            &format!("/api/v1/tenants/{}/domains", owner.tenant_id),
            &owner.token,
            json!({"domain": "a.test", "x": 1}),
        )
        .await;
    assert!(res.status().is_client_error());
    assert_eq!(app.audit_events(&owner, "domain.added").await.len(), 1);
}

#[tokio::test]
async fn only_owners_of_the_tenant_reach_its_domains() {
    let (app, dns) = app_with_dns().await;
    let owner = app.new_owner("plus").await;
    let other = app.new_owner("plus").await;
    let domain = unique("iso");
    let id = verify_domain(&app, &dns, &owner, &domain).await;
    let base = format!("/api/v1/tenants/{}/domains", owner.tenant_id);

    // Another tenant's owner, with its own token, on this tenant's paths: 404 for everything.
    for (method, path) in [
        (Method::GET, base.clone()),
        (Method::GET, format!("{base}/{id}")),
        (Method::POST, format!("{base}/{id}/verify")),
        (Method::DELETE, format!("{base}/{id}")),
    ] {
        let res = app.request(method.clone(), &path, Some(&other.token)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{method} {path}");
    }
    // ... and its own tenant's path with this domain's id: 404 too.
    let res = app.get(&format!("/api/v1/tenants/{}/domains/{id}", other.tenant_id), &other.token).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = check_domain(&app, &other, &id).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);

    // Admins, operators and viewers of the tenant: 403.
    for role in ["admin", "operator", "viewer"] {
        let member = app.new_member(&owner, role, &[]).await;
        for (method, path) in [
            (Method::GET, base.clone()),
            (Method::GET, format!("{base}/{id}")),
            (Method::POST, format!("{base}/{id}/verify")),
            (Method::DELETE, format!("{base}/{id}")),
        ] {
            let res = app.request(method.clone(), &path, Some(&member.token)).send().await.unwrap();
            assert_eq!(res.status(), StatusCode::FORBIDDEN, "{role} {method} {path}");
        }
        let res = app.send_json(Method::POST, &base, &member.token, json!({"domain": unique("x")})).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{role} add");
    }
    // Still there and verified.
    let one: Value = app.get(&format!("{base}/{id}"), &owner.token).await.json().await.unwrap();
    assert_eq!(one["status"], "verified");
    // Without a token: 401.
    let res = app.request(Method::GET, &base, None).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn domains_page_and_delete_honours_if_match() {
    let (app, _dns) = app_with_dns().await;
    let owner = app.new_owner("plus").await;
    for i in 0..3 {
        added(add_domain(&app, &owner, &unique(&format!("page{i}"))).await).await;
    }
    let pages = app.all_pages(&format!("/api/v1/tenants/{}/domains?limit=2", owner.tenant_id), &owner.token).await;
    assert_eq!(pages.len(), 2);
    assert_eq!(pages[0]["total"], 3);
    let first = pages[0]["items"][0].clone();
    let id = first["id"].as_str().unwrap();
    let res = app
        .request(Method::DELETE, &format!("/api/v1/tenants/{}/domains/{id}", owner.tenant_id), Some(&owner.token))
        .header("If-Match", "\"7\"")
        .send()
        .await
        .unwrap();
    assert_problem(res, 412).await;
    let res = app
        .request(Method::DELETE, &format!("/api/v1/tenants/{}/domains/{id}", owner.tenant_id), Some(&owner.token))
        .header("If-Match", format!("\"{}\"", first["version"]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn a_check_without_an_answer_gives_up_in_bounded_time() {
    let (app, dns) = app_with_dns().await;
    let owner = app.new_owner("plus").await;
    let domain = unique("slow");
    let body = added(add_domain(&app, &owner, &domain).await).await;
    dns.set_slow(&format!("_roster-challenge.{domain}"));
    let started = std::time::Instant::now();
    let p = assert_problem(check_domain(&app, &owner, body["id"].as_str().unwrap()).await, 422).await;
    let waited = started.elapsed();
    assert!(waited < std::time::Duration::from_secs(12), "gave up after {waited:?}");
    let detail = p["detail"].as_str().unwrap();
    assert!(detail.contains("no answer") && detail.contains(&dns.addr), "{detail}");
}
