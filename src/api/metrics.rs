//! `GET /metrics`: Prometheus text exposition of request counts and latencies per route
//! template, and the database pools' state. Recorded by the `record` middleware.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, get, web};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::state::AppState;

/// Latency buckets, seconds.
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

#[derive(Default)]
struct Series {
    count: u64,
    sum: f64,
    buckets: [u64; BUCKETS.len()],
}

#[derive(Default)]
pub struct Metrics {
    series: Mutex<BTreeMap<(String, String, u16), Series>>,
}

impl Metrics {
    fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let mut map = self.series.lock().unwrap_or_else(|p| p.into_inner());
        let s = map.entry((method.to_string(), route.to_string(), status)).or_default();
        s.count += 1;
        s.sum += seconds;
        for (i, le) in BUCKETS.iter().enumerate() {
            if seconds <= *le {
                s.buckets[i] += 1;
            }
        }
    }

    fn render(&self, out: &mut String) {
        use std::fmt::Write;
        let map = self.series.lock().unwrap_or_else(|p| p.into_inner());
        out.push_str("# HELP roster_http_requests_total HTTP requests by method, route template and status.\n");
        out.push_str("# TYPE roster_http_requests_total counter\n");
        for ((m, r, s), v) in map.iter() {
            let _ =
                writeln!(out, "roster_http_requests_total{{method=\"{m}\",route=\"{r}\",status=\"{s}\"}} {}", v.count);
        }
        out.push_str("# HELP roster_http_request_duration_seconds Time to answer, by method and route template.\n");
        out.push_str("# TYPE roster_http_request_duration_seconds histogram\n");
        let mut by_route: BTreeMap<(&str, &str), Series> = BTreeMap::new();
        for ((m, r, _), v) in map.iter() {
            let agg = by_route.entry((m.as_str(), r.as_str())).or_default();
            agg.count += v.count;
            agg.sum += v.sum;
            for i in 0..BUCKETS.len() {
                agg.buckets[i] += v.buckets[i];
            }
        }
        for ((m, r), v) in by_route {
            for (i, le) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "roster_http_request_duration_seconds_bucket{{method=\"{m}\",route=\"{r}\",le=\"{le}\"}} {}",
                    v.buckets[i]
                );
            }
            let _ = writeln!(
                out,
                "roster_http_request_duration_seconds_bucket{{method=\"{m}\",route=\"{r}\",le=\"+Inf\"}} {}",
                v.count
            );
            let _ = writeln!(out, "roster_http_request_duration_seconds_sum{{method=\"{m}\",route=\"{r}\"}} {}", v.sum);
            let _ =
                writeln!(out, "roster_http_request_duration_seconds_count{{method=\"{m}\",route=\"{r}\"}} {}", v.count);
        }
    }
}

/// Middleware: times every request and records it under its route template (never the raw
/// path, so ids do not explode the series).
pub async fn record(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let registry = req.app_data::<web::Data<Metrics>>().cloned();
    let method = req.method().to_string();
    let res = next.call(req).await?;
    if let Some(registry) = registry {
        let route = res.request().match_pattern().unwrap_or_else(|| "unmatched".to_string());
        registry.observe(&method, &route, res.status().as_u16(), started.elapsed().as_secs_f64());
    }
    Ok(res)
}

/// Prometheus metrics: request counts and latency histograms per route, database pool state.
///
/// Prometheus text format: request counts and latency histograms per route template, and the
/// database pool's state.
#[utoipa::path(tag = "health", security(()), responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
#[get("/metrics")]
pub async fn metrics(state: web::Data<AppState>, registry: web::Data<Metrics>) -> HttpResponse {
    use std::fmt::Write;
    let mut out = String::new();
    registry.render(&mut out);
    let (read, write) = state.pool.pool_states();
    out.push_str("# HELP roster_db_connections Database pool connections by pool and state.\n");
    out.push_str("# TYPE roster_db_connections gauge\n");
    for (pool, s) in [("read", read), ("write", write)] {
        let _ = writeln!(out, "roster_db_connections{{pool=\"{pool}\",state=\"open\"}} {}", s.connections);
        let _ = writeln!(out, "roster_db_connections{{pool=\"{pool}\",state=\"idle\"}} {}", s.idle_connections);
    }
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(out)
}

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(metrics);
}
