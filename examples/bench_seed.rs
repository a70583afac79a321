//! Seeds a running Roster for the benchmark and prints shell variables for `bench/run.sh`.
//!
//!   bench_seed BASE_URL PLATFORM_TOKEN BIG_MEMBERS SMALL_TENANTS SMALL_MEMBERS
//!   bench_seed grow BASE_URL PLATFORM_TOKEN FROM TO MEMBERS [IN_FLIGHT]
//!
//! Creates one tenant with BIG_MEMBERS members and SMALL_TENANTS tenants with SMALL_MEMBERS
//! members each, over HTTP with 64 requests in flight, then prints `KEY=value` lines (the big
//! tenant's, and the first small tenant's as `SMALL_*`). Also times argon2id hashing with
//! Roster's own parameters.
//!
//! `grow` (the scale mode of `bench/run.sh`) adds tenants number FROM to TO - 1 with MEMBERS
//! members each, IN_FLIGHT tenants (8) at a time: each is created with a generated owner
//! password (a digest, no argon2), its owner signs in, and its members come in through the CSV
//! import (10,000 rows a request, one transaction each). Everything goes through the API, so
//! the rows, search columns, counters and list versions are the ones the app writes. Names run
//! on through the same lists across tenants (not restarting in each), so a search term matches
//! about the same share of the whole database as of the big tenant. Prints `GROW_SECS`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

/// The server's allocator, so the argon2 timing below matches the server's hashing (argon2
/// allocates 19 MiB per hash: the system allocator maps and faults it in afresh each time).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use serde_json::{Value, json};

const FIRST: [&str; 40] = [
    "Anna", "Ben", "Carla", "David", "Elena", "Felix", "Greta", "Hugo", "Ines", "Jonas", "Karin", "Lars", "Maria",
    "Nils", "Olga", "Paul", "Rosa", "Simon", "Tanja", "Ulrich", "Vera", "Walter", "Yusuf", "Zoe", "Amir", "Bea",
    "Chen", "Dana", "Emil", "Fatima", "Gustav", "Hanna", "Igor", "Julia", "Kofi", "Lena", "Mateo", "Nora", "Omar",
    "Pia",
];
const LAST: [&str; 60] = [
    "Smith",
    "Garcia",
    "Jensen",
    "Larsen",
    "Nguyen",
    "Kowalski",
    "Müller",
    "Schmidt",
    "Rossi",
    "Silva",
    "Novak",
    "Ivanova",
    "Hansen",
    "Johansson",
    "Dubois",
    "Moreau",
    "Fischer",
    "Weber",
    "Costa",
    "Santos",
    "Tanaka",
    "Kim",
    "Patel",
    "Singh",
    "Khan",
    "Ali",
    "Cohen",
    "Levi",
    "Olsen",
    "Berg",
    "Lindqvist",
    "Nielsen",
    "Horvat",
    "Popescu",
    "Yilmaz",
    "Demir",
    "Brown",
    "Wilson",
    "Taylor",
    "Clark",
    "Lewis",
    "Walker",
    "Young",
    "King",
    "Wright",
    "Scott",
    "Green",
    "Baker",
    "Adams",
    "Nelson",
    "Carter",
    "Mitchell",
    "Roberts",
    "Turner",
    "Phillips",
    "Campbell",
    "Parker",
    "Evans",
    "Edwards",
    "Collins",
];

async fn create_members(
    client: &reqwest::Client,
    base: &str,
    tenant: &str,
    token: &str,
    prefix: &str,
    n: usize,
) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    let url = format!("{base}/api/v1/tenants/{tenant}/users");
    let mut next = 0;
    while next < n {
        let batch: Vec<_> = (next..(next + 64).min(n))
            .map(|i| {
                let client = client.clone();
                let url = url.clone();
                let token = token.to_string();
                let body = json!({
                    "email": format!("{prefix}{i}@bench.example"),
                    "full_name": full_name(i),
                    "role": if i % 10 == 0 { "operator" } else { "viewer" },
                    "department": format!("Dept {}", i % 20),
                });
                tokio::spawn(async move {
                    let res = client.post(url).bearer_auth(token).json(&body).send().await.expect("create");
                    assert_eq!(res.status(), 201, "create member: {}", res.text().await.unwrap_or_default());
                    res.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string()
                })
            })
            .collect();
        for t in batch {
            ids.push(t.await.unwrap());
        }
        next += 64;
    }
    ids
}

async fn new_tenant(
    client: &reqwest::Client,
    base: &str,
    platform: &str,
    name: &str,
    email: &str,
    password: &str,
) -> (String, String) {
    let res = client
        .post(format!("{base}/api/v1/tenants"))
        .bearer_auth(platform)
        .json(&json!({"name": name, "owner_email": email, "owner_password": password, "plan": "enterprise"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "create tenant");
    let created: Value = res.json().await.unwrap();
    let tenant = created["tenant_id"].as_str().unwrap().to_string();
    let login: Value = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"email": email, "password": password, "tenant_id": tenant}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (tenant, login["access_token"].as_str().unwrap().to_string())
}

/// A member's full name, the `n`th of the 2,400 first and last name pairs (repeating).
fn full_name(n: usize) -> String {
    format!("{} {}", FIRST[n % FIRST.len()], LAST[(n / FIRST.len()) % LAST.len()])
}

/// Signs in with a password and no tenant (the identity has one membership): the access token.
async fn login(client: &reqwest::Client, base: &str, email: &str, password: &str) -> String {
    let res = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "login {email}: {}", res.text().await.unwrap_or_default());
    let body: Value = res.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_string()
}

/// Tenant number `t` of the scale mode, with `members` members imported from CSV.
async fn grow_tenant(client: &reqwest::Client, base: &str, platform: &str, t: usize, members: usize) {
    let email = format!("owner{t}@scale.bench.example");
    let res = client
        .post(format!("{base}/api/v1/tenants"))
        .bearer_auth(platform)
        .json(&json!({"name": format!("Scale {t}"), "owner_email": email, "plan": "enterprise"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "create tenant {t}: {}", res.text().await.unwrap_or_default());
    let created: Value = res.json().await.unwrap();
    let tenant = created["tenant_id"].as_str().unwrap().to_string();
    let token = login(client, base, &email, created["password"].as_str().unwrap()).await;
    let url = format!("{base}/api/v1/tenants/{tenant}/users/import");
    let mut next = 0;
    while next < members {
        let end = (next + 10_000).min(members);
        let mut csv = String::from("email,full_name,role,department\n");
        for i in next..end {
            let role = if i % 10 == 0 { "operator" } else { "viewer" };
            csv.push_str(&format!(
                "t{t}-{i}@scale.bench.example,{},{role},Dept {}\n",
                full_name(t * members + i),
                i % 20
            ));
        }
        let res = client
            .post(&url)
            .bearer_auth(&token)
            .header("Content-Type", "text/csv")
            .header("Accept", "text/csv")
            .body(csv)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201, "import into tenant {t}: {}", res.text().await.unwrap_or_default());
        next = end;
    }
}

/// The scale mode: tenants `from..to` with `members` members each, `in_flight` at a time.
async fn grow(args: &[String]) {
    let (base, platform) = (&args[2], &args[3]);
    let from: usize = args[4].parse().unwrap();
    let to: usize = args[5].parse().unwrap();
    let members: usize = args[6].parse().unwrap();
    let in_flight: usize = args.get(7).map_or(8, |n| n.parse().unwrap()).max(1);
    let client = reqwest::Client::builder().pool_max_idle_per_host(in_flight).build().unwrap();
    let started = Instant::now();
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(from));
    let workers: Vec<_> = (0..in_flight)
        .map(|_| {
            let (client, base, platform, next) = (client.clone(), base.clone(), platform.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let t = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if t >= to {
                        break;
                    }
                    grow_tenant(&client, &base, &platform, t, members).await;
                    let done = t + 1 - from;
                    if done.is_multiple_of(500) {
                        let secs = started.elapsed().as_secs_f64();
                        eprintln!("  {done} of {} tenants in {secs:.0}s", to - from);
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    println!("GROW_SECS={:.1}", started.elapsed().as_secs_f64());
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("grow") {
        return grow(&args).await;
    }
    let base = &args[1];
    let platform = &args[2];
    let big: usize = args[3].parse().unwrap();
    let small_tenants: usize = args[4].parse().unwrap();
    let small_members: usize = args[5].parse().unwrap();
    let client = reqwest::Client::builder().pool_max_idle_per_host(64).build().unwrap();

    // argon2id with the service's parameters, on this machine.
    roster::auth::passwords::hash_typed_sync("warm-up").unwrap();
    let started = Instant::now();
    let rounds = 10;
    for _ in 0..rounds {
        roster::auth::passwords::hash_typed_sync("benchmark password 123").unwrap();
    }
    let hash_ms = started.elapsed().as_secs_f64() * 1000.0 / rounds as f64;
    println!("HASH_MS={hash_ms:.2}");
    // The same, on every core at once: hashing is memory-bound, so cores sharing caches and
    // memory bandwidth (or SMT siblings) hash slower each than one alone.
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let started = Instant::now();
    let threads: Vec<_> = (0..cores)
        .map(|_| {
            std::thread::spawn(move || {
                for _ in 0..rounds {
                    roster::auth::passwords::hash_typed_sync("benchmark password 123").unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let parallel_ms = started.elapsed().as_secs_f64() * 1000.0 / rounds as f64;
    println!("HASH_PARALLEL_MS={parallel_ms:.2}");

    let password = "benchmark owner passphrase";
    let (tenant, token) = new_tenant(&client, base, platform, "Big", "owner@big.bench.example", password).await;
    let started = Instant::now();
    let ids = create_members(&client, base, &tenant, &token, "big", big).await;
    let secs = started.elapsed().as_secs_f64();
    eprintln!("seeded {big} members in {secs:.1}s ({:.0}/s)", big as f64 / secs);
    println!("SEED_BIG_SECS={secs:.1}");
    let mut first_small = None;
    for t in 0..small_tenants {
        let (st, stoken) = new_tenant(
            &client,
            base,
            platform,
            &format!("Small {t}"),
            &format!("owner{t}@small.bench.example"),
            password,
        )
        .await;
        let sids = create_members(&client, base, &st, &stoken, &format!("s{t}-"), small_members).await;
        if t == 0 {
            first_small = Some((st, stoken, sids.get(sids.len() / 2).cloned().unwrap_or_default()));
        }
    }
    eprintln!("seeded {small_tenants} tenants with {small_members} members");
    println!("TENANT={tenant}");
    println!("TOKEN={token}");
    println!("MEMBER={}", ids[ids.len() / 2]);
    println!("OWNER_EMAIL=owner@big.bench.example");
    println!("OWNER_PASSWORD='{password}'");
    if let Some((st, stoken, member)) = first_small {
        println!("SMALL_TENANT={st}");
        println!("SMALL_TOKEN={stoken}");
        println!("SMALL_MEMBER={member}");
        println!("SMALL_OWNER_EMAIL=owner0@small.bench.example");
    }
}
