//! The `roster` command: serve (default), migrate, bootstrap, openapi.

use clap::{Parser, Subcommand};

/// mimalloc: the request path allocates many small, short-lived objects on many threads
/// (workers, the blocking pool), where it measured faster than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use roster::config::Config;
use roster::domain::Plan;

#[derive(Parser)]
#[command(name = "roster", version, about = "Multi-tenant user and role management service")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Create a tenant and its first owner; prints one JSON object.
    Bootstrap {
        #[arg(long)]
        tenant_name: String,
        #[arg(long)]
        owner_email: String,
        #[arg(long)]
        owner_name: Option<String>,
        /// free, plus or enterprise
        #[arg(long, default_value = "free")]
        plan: String,
    },
    /// Print the OpenAPI document.
    Openapi,
}

fn fail(msg: impl std::fmt::Display) -> ! {
    eprintln!("roster: {msg}");
    std::process::exit(1)
}

#[actix_web::main]
async fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Serve);
    if let Command::Openapi = command {
        match serde_json::to_string_pretty(&roster::api::openapi_document()) {
            Ok(doc) => println!("{doc}"),
            Err(e) => fail(e),
        }
        return;
    }
    let mut config = Config::from_env().unwrap_or_else(|e| fail(e));
    match command {
        Command::Serve => {
            let app = roster::Application::build(config).await.unwrap_or_else(|e| fail(e));
            log::info!("listening on port {}", app.port());
            if let Err(e) = app.run().await {
                fail(e);
            }
        }
        Command::Migrate => {
            let pool = roster::db::build_pool(&config.database_url, 1).unwrap_or_else(|e| fail(e));
            let mut conn = pool.get().unwrap_or_else(|e| fail(e));
            let applied = roster::db::run_migrations(&mut conn).unwrap_or_else(|e| fail(e));
            println!("applied {} migration(s)", applied.len());
        }
        Command::Bootstrap { tenant_name, owner_email, owner_name, plan } => {
            let plan = Plan::parse(&plan).unwrap_or_else(|| fail("--plan must be free, plus or enterprise"));
            config.demo = false;
            let state = actix_web::web::block(move || roster::state::AppState::init(config))
                .await
                .unwrap_or_else(|e| fail(e))
                .unwrap_or_else(|e| fail(e));
            let created = roster::api::tenants::create_tenant_with_owner(
                &state,
                roster::api::tenants::CreateTenantRequest {
                    name: tenant_name,
                    owner_email,
                    owner_full_name: owner_name,
                    owner_password: None,
                    plan: Some(plan),
                },
                roster::auth::RequestMeta::default(),
            )
            .await
            .unwrap_or_else(|e| fail(e));
            match serde_json::to_string(&created) {
                Ok(json) => println!("{json}"),
                Err(e) => fail(e),
            }
        }
        Command::Openapi => {}
    }
}
