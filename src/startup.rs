//! Builds the application: configuration -> state (pool, migrations, signing key) -> demo seed
//! -> HTTP server with its middleware, error handlers and background work. `main` and the
//! tests both go through `Application::build`.

use std::net::TcpListener;

use actix_web::ResponseError;
use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::{Logger, Next, from_fn};
use actix_web::{App, HttpMessage, HttpRequest, HttpResponse, HttpServer, web};
use utoipa::OpenApi;
use utoipa_actix_web::AppExt;
use utoipa_swagger_ui::SwaggerUi;

use crate::api::{self, ApiDoc};
use crate::auth::RequestMeta;
use crate::auth::guard::RequestId;
use crate::config::{Config, JSON_LIMIT};
use crate::db;
use crate::error::{ApiError, FieldError};
use crate::state::AppState;

pub struct Application {
    port: u16,
    server: Server,
    /// The outbox worker and housekeeping; run as long as the server does.
    mail: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
}

/// The demo tenant's owner, printed once on first start.
pub struct DemoOwner {
    pub email: String,
    pub password: String,
    pub tenant_id: String,
}

/// Seeds a demo tenant on an empty database.
pub async fn seed_demo(state: &AppState) -> Result<Option<DemoOwner>, ApiError> {
    let empty = db::run(&state.pool, crate::store::tenants::is_empty).await?;
    if !empty {
        return Ok(None);
    }
    let created = api::tenants::create_tenant_with_owner(
        state,
        api::tenants::CreateTenantRequest {
            name: "Demo".into(),
            owner_email: "owner@demo.example".into(),
            owner_full_name: Some("Demo Owner".into()),
            owner_password: None,
            plan: Some(crate::domain::Plan::Plus),
        },
        RequestMeta::default(),
    )
    .await?;
    Ok(Some(DemoOwner {
        email: created.email,
        password: created.password.unwrap_or_default(),
        tenant_id: created.tenant_id.to_string(),
    }))
}

impl Application {
    /// Binds the listener (port 0 picks a free one) and builds the server; call `run`.
    pub async fn build(config: Config) -> Result<Self, String> {
        let listener = TcpListener::bind(&config.bind).map_err(|e| format!("cannot listen on {}: {e}", config.bind))?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let demo = config.demo;
        let workers = config.workers;
        let public_url = config.public_url.clone();
        let state = web::block(move || AppState::init(config)).await.map_err(|e| e.to_string())??;
        let state = web::Data::new(state);
        let transport = crate::mail::Transport::from_config(&state.config)?;
        let keep = crate::store::housekeeping::Retention {
            sessions: state.config.session_limits(),
            event_days: state.config.event_retention_days,
        };
        let outbound = std::sync::Arc::new(crate::outbound::Outbound::new(crate::outbound::OutboundPolicy::new(
            &state.config.webhook_allowed_hosts,
        ))?);
        let (worker, hooks, db) = (state.clone(), state.clone(), state.pool.clone());
        let mail = Box::pin(async move {
            tokio::join!(
                crate::mail::run_worker(worker, transport),
                crate::webhooks::run_worker(hooks, outbound),
                crate::store::housekeeping::run(db, keep, std::time::Duration::from_secs(600)),
            );
        });
        if demo {
            match seed_demo(&state).await {
                Ok(Some(owner)) => {
                    println!("\nRoster demo tenant created on an empty database (shown once):");
                    println!("  tenant id: {}", owner.tenant_id);
                    println!("  email:     {}", owner.email);
                    println!("  password:  {}", owner.password);
                    println!("  Swagger UI: {public_url}/swagger-ui/\n");
                }
                Ok(None) => {}
                Err(e) => return Err(format!("seeding the demo tenant: {e}")),
            }
        }
        let doc = api::served_document(&public_url);
        let metrics = web::Data::new(api::metrics::Metrics::default());
        let cors_origins = state.config.cors_origins.clone();
        let trusted_proxies = web::Data::new(state.config.trusted_proxies.clone());
        let server = HttpServer::new(move || {
            let (app, _) =
                App::new().into_utoipa_app().openapi(ApiDoc::openapi()).configure(api::configure).split_for_parts();
            app.app_data(state.clone())
                // What the guards read (`auth::guard`), apart from the rest of the state.
                .app_data(web::Data::from(state.keys.clone()))
                .app_data(web::Data::from(state.limits.api_key.clone()))
                .app_data(trusted_proxies.clone())
                .app_data(web::Data::new(state.pool.clone()))
                .app_data(metrics.clone())
                .app_data(json_config())
                .app_data(web::PayloadConfig::new(JSON_LIMIT))
                .app_data(web::PathConfig::default().error_handler(|err, _| {
                    ApiError::bad_request("invalid-path", format!("the URL path is invalid: {err}")).into()
                }))
                .app_data(web::QueryConfig::default().error_handler(|err, _| {
                    ApiError::bad_request("invalid-query", format!("the query string is invalid: {err}")).into()
                }))
                .service(api::scim::scope())
                .service(SwaggerUi::new("/swagger-ui/{_:.*}").url("/api-docs/openapi.json", doc.clone()))
                .service(web::resource("/swagger-ui").to(|| async { redirect("/swagger-ui/") }))
                .service(web::resource("/").to(|| async { redirect("/swagger-ui/") }))
                .default_service(web::to(unknown_route))
                .wrap(from_fn(api::contract::check_request))
                .wrap(actix_web::middleware::Condition::new(!cors_origins.is_empty(), cors(&cors_origins)))
                .wrap(from_fn(refused_preflight_as_problem))
                .wrap(from_fn(api::metrics::record))
                .wrap(from_fn(request_id))
                .wrap(
                    Logger::new("%a \"%{request_line}xi\" %s %b %Dms rid=%{x-request-id}o")
                        .custom_request_replace("request_line", redacted_request_line),
                )
        })
        .workers(workers)
        .listen(listener)
        .map_err(|e| e.to_string())?
        .run();
        Ok(Self { port, server, mail })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub async fn run(self) -> std::io::Result<()> {
        tokio::select! {
            served = self.server => served,
            () = self.mail => Ok(()),
        }
    }
}

/// Browsers on the configured origins may call the API: preflights are answered with the
/// methods and headers it uses, and the headers a frontend reads are exposed. No origin is
/// allowed unless configured.
fn cors(origins: &[String]) -> actix_cors::Cors {
    use actix_web::http::header;
    let mut cors = actix_cors::Cors::default()
        .allowed_methods(["GET", "POST", "PUT", "PATCH", "DELETE"])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_MATCH,
            header::ACCEPT,
            HeaderName::from_static("idempotency-key"),
            HeaderName::from_static("x-request-id"),
        ])
        .expose_headers([
            header::ETAG,
            header::LOCATION,
            header::RETRY_AFTER,
            header::WWW_AUTHENTICATE,
            HeaderName::from_static("x-request-id"),
            HeaderName::from_static("idempotent-replayed"),
        ])
        .max_age(3600);
    for origin in origins {
        cors = cors.allowed_origin(origin);
    }
    cors
}

/// A preflight the CORS rules refuse (another origin, method or header) answers a problem like
/// every other refusal, not the CORS middleware's plain text.
async fn refused_preflight_as_problem(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<actix_web::body::EitherBody<impl MessageBody>>, actix_web::Error> {
    let preflight = req.method() == actix_web::http::Method::OPTIONS
        && req.headers().contains_key(actix_web::http::header::ACCESS_CONTROL_REQUEST_METHOD);
    let res = next.call(req).await?;
    let is_problem = res
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if preflight && res.status() == actix_web::http::StatusCode::BAD_REQUEST && !is_problem {
        let problem = ApiError::bad_request(
            "cors-refused",
            "this origin, method or header may not call the API from a browser (see ROSTER_CORS_ORIGINS)",
        );
        let (req, _) = res.into_parts();
        return Ok(ServiceResponse::new(req, problem.error_response()).map_into_right_body());
    }
    Ok(res.map_into_left_body())
}

fn redirect(to: &'static str) -> HttpResponse {
    HttpResponse::Found().insert_header(("Location", to)).finish()
}

/// No route took the request: 405 with `Allow` when the document serves the path with other
/// methods, 404 otherwise.
async fn unknown_route(req: HttpRequest) -> HttpResponse {
    let allowed = api::contract::Contract::get().methods_for_path(req.path());
    if !allowed.is_empty() {
        return api::contract::method_not_allowed(req.method().as_str(), req.path(), allowed).error_response();
    }
    ApiError::not_found(format!(
        "no route {} {}; the API is described at /api-docs/openapi.json and /swagger-ui/",
        req.method(),
        req.path()
    ))
    .error_response()
}

fn json_config() -> web::JsonConfig {
    web::JsonConfig::default().limit(JSON_LIMIT).error_handler(|err, _| json_error(err).into())
}

/// actix's JSON rejections as problems: size, content type, syntax, and field errors.
pub fn json_error(err: actix_web::error::JsonPayloadError) -> ApiError {
    use actix_web::error::JsonPayloadError as E;
    match err {
        E::OverflowKnownLength { length, limit } => {
            ApiError::PayloadTooLarge(format!("the body is {length} bytes; the limit is {limit}"))
        }
        E::Overflow { limit } => {
            ApiError::PayloadTooLarge(format!("the body is larger than the limit of {limit} bytes"))
        }
        E::ContentType => ApiError::UnsupportedMediaType("send the body as application/json".into()),
        E::Deserialize(e) if e.is_data() => {
            let msg = e.to_string();
            let field = msg.split('`').nth(1).filter(|_| msg.contains("field")).unwrap_or("body").to_string();
            let message = msg.split(" at line").next().unwrap_or(&msg).to_string();
            ApiError::Validation(vec![FieldError::new(field, message)])
        }
        E::Deserialize(e) => ApiError::bad_request("malformed-json", format!("the JSON body is malformed: {e}")),
        other => ApiError::bad_request("malformed-json", format!("the JSON body could not be read: {other}")),
    }
}

/// Takes `X-Request-Id` from the request (when sane) or makes one, and echoes it back.
async fn request_id(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let given = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.chars().all(|c| c.is_ascii_graphic()))
        .map(str::to_string);
    let id = given.unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    let mut res = next.call(req).await?;
    if let Ok(value) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(HeaderName::from_static("x-request-id"), value);
    }
    Ok(res)
}

/// The request line as access logs show it, with invitation tokens (which are in the path)
/// left out.
fn redacted_request_line(req: &actix_web::dev::ServiceRequest) -> String {
    const SECRET_IN_PATH: &str = "/api/v1/invitations/";
    let path = req.path();
    let shown = match path.strip_prefix(SECRET_IN_PATH) {
        Some(rest) => {
            let tail = rest.find('/').map(|i| &rest[i..]).unwrap_or("");
            format!("{SECRET_IN_PATH}[token]{tail}")
        }
        None => path.to_string(),
    };
    let query = if req.query_string().is_empty() { String::new() } else { format!("?{}", req.query_string()) };
    format!("{} {shown}{query} {:?}", req.method(), req.version())
}
