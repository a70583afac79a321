//! Seeds a running Roster for the benchmark and prints shell variables for `bench/run.sh`.
//!
//!   bench_seed BASE_URL PLATFORM_TOKEN BIG_MEMBERS SMALL_TENANTS SMALL_MEMBERS
//!
//! Creates one tenant with BIG_MEMBERS members and SMALL_TENANTS tenants with SMALL_MEMBERS
//! members each, over HTTP with 64 requests in flight, then prints `KEY=value` lines. Also
//! times argon2id hashing with Roster's own parameters.
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
                    "full_name": format!("{} {}", FIRST[i % FIRST.len()], LAST[(i / FIRST.len()) % LAST.len()]),
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

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
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
        create_members(&client, base, &st, &stoken, &format!("s{t}-"), small_members).await;
    }
    eprintln!("seeded {small_tenants} tenants with {small_members} members");
    println!("TENANT={tenant}");
    println!("TOKEN={token}");
    println!("MEMBER={}", ids[ids.len() / 2]);
    println!("OWNER_EMAIL=owner@big.bench.example");
    println!("OWNER_PASSWORD='{password}'");
}
