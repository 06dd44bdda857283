//! The HTTP surface: routing, authentication, JSON bodies and the mapping of
//! store outcomes to status codes.
//!
//! Routes (all JSON; `/api/v1/*` needs an admin by HTTP Basic):
//!
//! | path                          | methods                       |
//! |-------------------------------|-------------------------------|
//! | `/api/v1/{collection}`        | GET (list: `limit`, `offset`), POST |
//! | `/api/v1/{collection}/{id}`   | GET, PUT, PATCH, DELETE       |
//! | `/health`                     | GET: 200 database reachable, 503 not |
//! | `/metrics`                    | GET: Prometheus text          |
//!
//! where `{collection}` is `domains`, `customers` or `subscribers`
//! (subscribers also filter by `domain` and `customer_id`).
//! Errors are `{"error": "...", "field": "..."}` with 400 (bad input, the
//! field named), 401, 404, 405, 409 (duplicate or still in use), 413, 503.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ALLOW, AUTHORIZATION, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::auth::{parse_basic, Authenticator, Verdict};
use crate::metrics::Metrics;
use crate::model::{
    id_matches, list_query, merge, parse_object, CustomerInput, DomainInput, FieldError,
    SubscriberInput,
};
use crate::store::{Store, StoreError};

/// Largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;
/// Path prefix of the REST resources.
pub const PREFIX: &str = "/api/v1/";

/// Everything a request handler needs.
#[derive(Debug)]
pub struct App {
    pub store: Store,
    pub auth: Authenticator,
    pub metrics: Metrics,
    db_up: AtomicBool,
}

impl App {
    pub fn new(store: Store) -> App {
        App {
            store,
            auth: Authenticator::default(),
            metrics: Metrics::default(),
            db_up: AtomicBool::new(true),
        }
    }
}

/// A response body.
pub type Body = Full<Bytes>;

/// An error response: status, message and the field it concerns.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    message: String,
    field: Option<String>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            field: None,
        }
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: e.to_string(),
            field: Some(e.field),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::NotFound(what) => {
                ApiError::new(StatusCode::NOT_FOUND, format!("{what} not found"))
            }
            StoreError::Conflict { field, message } => ApiError {
                status: StatusCode::CONFLICT,
                message,
                field: Some(field),
            },
            StoreError::Invalid(f) => f.into(),
            StoreError::Db(e) => {
                eprintln!("web-api: database error: {e}");
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
            }
            StoreError::Connect { .. } => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
            }
        }
    }
}

fn json_response(status: StatusCode, v: &impl Serialize) -> Response<Body> {
    let body = serde_json::to_vec(v).unwrap_or_else(|_| b"{}".to_vec());
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn error_response(e: ApiError) -> Response<Body> {
    let mut v = json!({ "error": e.message });
    if let Some(f) = e.field {
        v["field"] = Value::String(f);
    }
    let mut r = json_response(e.status, &v);
    if e.status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"flexvisor\", charset=\"UTF-8\""),
        );
    }
    if e.status == StatusCode::METHOD_NOT_ALLOWED {
        let allow = if e.message.contains("item") {
            "GET, PUT, PATCH, DELETE"
        } else {
            "GET, POST"
        };
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static(allow));
    }
    r
}

/// Serves one request and records it in the metrics.
pub async fn serve(app: Arc<App>, req: Request<Incoming>) -> Response<Body> {
    let started = Instant::now();
    app.metrics.in_flight.fetch_add(1, Ordering::Relaxed);
    let resp = match route(&app, req).await {
        Ok(r) => r,
        Err(e) => error_response(e),
    };
    app.metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
    app.metrics
        .observe(resp.status().as_u16(), started.elapsed());
    resp
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Collection {
    Domains,
    Customers,
    Subscribers,
}

async fn route(app: &App, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let path = req.uri().path().trim_end_matches('/').to_owned();
    match path.as_str() {
        "/health" => return health(app, req.method()).await,
        "/metrics" => {
            if req.method() != Method::GET {
                return Err(ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "GET only"));
            }
            let mut r = Response::new(Full::new(Bytes::from(
                app.metrics.render(app.db_up.load(Ordering::Relaxed)),
            )));
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            return Ok(r);
        }
        _ => {}
    }
    let Some(rest) = path.strip_prefix(PREFIX) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no resource at {path}"),
        ));
    };
    let mut parts = rest.split('/');
    let coll = match parts.next() {
        Some("domains") => Collection::Domains,
        Some("customers") => Collection::Customers,
        Some("subscribers") => Collection::Subscribers,
        _ => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no resource at {path} (collections: domains, customers, subscribers)"),
            ))
        }
    };
    let id = match (parts.next(), parts.next()) {
        (None, _) => None,
        (Some(s), None) => match s.parse::<u64>() {
            Ok(n) if n > 0 => Some(n),
            _ => {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    format!("no resource at {path}"),
                ))
            }
        },
        _ => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no resource at {path}"),
            ))
        }
    };
    authenticate(app, &req).await?;
    let method = req.method().clone();
    let query = req.uri().query().map(str::to_owned);
    match (id, method) {
        (None, Method::GET) => list(app, coll, query.as_deref()).await,
        (None, Method::POST) => {
            let body = read_object(req).await?;
            create(app, coll, &body).await
        }
        (Some(id), Method::GET) => Ok(json_response(StatusCode::OK, &get(app, coll, id).await?)),
        (Some(id), Method::PUT) => {
            let body = read_object(req).await?;
            id_matches(&body, id)?;
            update(app, coll, id, &body).await
        }
        (Some(id), Method::PATCH) => {
            let patch = read_object(req).await?;
            id_matches(&patch, id)?;
            let current = get(app, coll, id).await?;
            let Value::Object(current) = current else {
                return Err(ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "not an object",
                ));
            };
            update(app, coll, id, &merge(current, patch)).await
        }
        (Some(id), Method::DELETE) => {
            match coll {
                Collection::Domains => app.store.delete_domain(id).await?,
                Collection::Customers => app.store.delete_customer(id).await?,
                Collection::Subscribers => app.store.delete_subscriber(id).await?,
            }
            let mut r = Response::new(Full::new(Bytes::new()));
            *r.status_mut() = StatusCode::NO_CONTENT;
            Ok(r)
        }
        (None, _) => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "collection: GET or POST",
        )),
        (Some(_), _) => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "item: GET, PUT, PATCH or DELETE",
        )),
    }
}

async fn health(app: &App, method: &Method) -> Result<Response<Body>, ApiError> {
    if method != Method::GET {
        return Err(ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "GET only"));
    }
    let ping = tokio::time::timeout(std::time::Duration::from_secs(3), app.store.ping()).await;
    let up = matches!(ping, Ok(Ok(())));
    app.db_up.store(up, Ordering::Relaxed);
    Ok(if up {
        json_response(StatusCode::OK, &json!({"status": "ok", "database": "up"}))
    } else {
        json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"status": "critical", "database": "unreachable"}),
        )
    })
}

async fn authenticate(app: &App, req: &Request<Incoming>) -> Result<(), ApiError> {
    let creds = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_basic);
    let Some(creds) = creds else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "admin credentials required (HTTP Basic)",
        ));
    };
    match app.auth.check(&app.store, &creds).await? {
        Verdict::Allowed => Ok(()),
        Verdict::Denied => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "wrong admin user or password",
        )),
    }
}

async fn read_object(req: Request<Incoming>) -> Result<Map<String, Value>, ApiError> {
    let body = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body larger than {MAX_BODY} bytes or broken"),
            )
        })?
        .to_bytes();
    Ok(parse_object(&body)?)
}

fn to_value(v: &impl Serialize) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

async fn list(
    app: &App,
    coll: Collection,
    query: Option<&str>,
) -> Result<Response<Body>, ApiError> {
    let v = match coll {
        Collection::Domains => {
            let q = list_query(query, &[])?;
            to_value(&app.store.list_domains(page(&q)).await?)
        }
        Collection::Customers => {
            let q = list_query(query, &[])?;
            to_value(&app.store.list_customers(page(&q)).await?)
        }
        Collection::Subscribers => {
            let q = list_query(query, &["domain", "customer_id"])?;
            to_value(&app.store.list_subscribers(&q).await?)
        }
    };
    Ok(json_response(StatusCode::OK, &v))
}

fn page(q: &crate::model::ListQuery) -> crate::model::Page {
    q.page.unwrap_or(crate::model::Page {
        limit: crate::model::DEFAULT_LIMIT,
        offset: 0,
    })
}

async fn get(app: &App, coll: Collection, id: u64) -> Result<Value, ApiError> {
    Ok(match coll {
        Collection::Domains => to_value(&app.store.get_domain(id).await?),
        Collection::Customers => to_value(&app.store.get_customer(id).await?),
        Collection::Subscribers => to_value(&app.store.get_subscriber(id).await?),
    })
}

async fn create(
    app: &App,
    coll: Collection,
    body: &Map<String, Value>,
) -> Result<Response<Body>, ApiError> {
    let (id, v) = match coll {
        Collection::Domains => {
            if body.contains_key("id") {
                return Err(FieldError {
                    field: "id".into(),
                    reason: "assigned by the server".into(),
                }
                .into());
            }
            let d = app
                .store
                .create_domain(&DomainInput::from_json(body)?)
                .await?;
            (d.id, to_value(&d))
        }
        Collection::Customers => {
            let c = app
                .store
                .create_customer(&CustomerInput::from_json(body)?)
                .await?;
            (c.id, to_value(&c))
        }
        Collection::Subscribers => {
            if body.contains_key("id") {
                return Err(FieldError {
                    field: "id".into(),
                    reason: "assigned by the server".into(),
                }
                .into());
            }
            let s = app
                .store
                .create_subscriber(&SubscriberInput::from_json(body, true)?)
                .await?;
            (s.id, to_value(&s))
        }
    };
    let mut r = json_response(StatusCode::CREATED, &v);
    let name = match coll {
        Collection::Domains => "domains",
        Collection::Customers => "customers",
        Collection::Subscribers => "subscribers",
    };
    if let Ok(loc) = HeaderValue::from_str(&format!("{PREFIX}{name}/{id}")) {
        r.headers_mut().insert(LOCATION, loc);
    }
    Ok(r)
}

async fn update(
    app: &App,
    coll: Collection,
    id: u64,
    body: &Map<String, Value>,
) -> Result<Response<Body>, ApiError> {
    let v = match coll {
        Collection::Domains => to_value(
            &app.store
                .update_domain(id, &DomainInput::from_json(body)?)
                .await?,
        ),
        Collection::Customers => {
            let mut c = CustomerInput::from_json(body)?;
            c.id = Some(id);
            to_value(&app.store.update_customer(id, &c).await?)
        }
        Collection::Subscribers => to_value(
            &app.store
                .update_subscriber(id, &SubscriberInput::from_json(body, false)?)
                .await?,
        ),
    };
    Ok(json_response(StatusCode::OK, &v))
}
