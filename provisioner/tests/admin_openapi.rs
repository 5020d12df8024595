//! The OpenAPI document describes every API route, and every route it describes exists.

mod common;

use std::collections::BTreeSet;

use common::TestDb;
use common::admin::{AdminServer, json_of, token_options};
use reqwest::StatusCode;
use serde_json::Value;

/// The sources that declare the admin router's API routes (the page's files are not API).
const ROUTE_SOURCES: [&str; 6] = [
    include_str!("../src/admin/records.rs"),
    include_str!("../src/admin/mod.rs"),
    include_str!("../src/admin/nodes.rs"),
    include_str!("../src/admin/enrollment.rs"),
    include_str!("../src/admin/audit.rs"),
    include_str!("../src/admin/fleet.rs"),
];

const METHODS: [&str; 4] = ["get", "post", "put", "delete"];

/// (path, method) of every `.route("PATH", get(..).post(..))` and every
/// `record_routes("PATH", "KEY", COLLECTION, RECORD)` in `source`.
fn declared_routes(source: &str) -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    for declaration in source.split(".route(").skip(1) {
        // Only routes with a literal path (the helper's own `.route(path, ..)` is not one).
        let Some(path) = leading_literal(declaration) else {
            continue;
        };
        // The declaration ends where the next statement or route starts.
        let end = [";\n", "record_routes("]
            .iter()
            .filter_map(|end| declaration.find(end))
            .min()
            .unwrap_or(declaration.len());
        let body = &declaration[..end];
        insert_methods(&mut routes, path, body);
    }
    for declaration in source.split("record_routes(").skip(1) {
        // rustfmt puts each of its four arguments on a line of its own.
        let arguments: Vec<&str> = declaration.lines().skip(1).take(4).collect();
        let [path, key, collection, record] = arguments[..] else {
            continue;
        };
        let (Some(path), Some(key)) = (leading_literal(path), leading_literal(key)) else {
            continue;
        };
        insert_methods(&mut routes, path, collection);
        insert_methods(&mut routes, &format!("{path}/{{{key}}}"), record);
    }
    routes
}

/// The string literal `text` starts with (after white space), without its quotes.
fn leading_literal(text: &str) -> Option<&str> {
    text.trim_start().strip_prefix('"')?.split('"').next()
}

/// (path, method) for each of the methods `body` calls (`get(`, `post(`, ...).
fn insert_methods(routes: &mut BTreeSet<(String, String)>, path: &str, body: &str) {
    for method in METHODS {
        let call = format!("{method}(");
        let called = body.match_indices(&call).any(|(at, _)| {
            let before = body[..at].chars().last();
            !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
        });
        if called {
            routes.insert((path.to_string(), method.to_string()));
        }
    }
}

fn documented_routes(document: &Value) -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            routes.insert((path.clone(), method.clone()));
        }
    }
    routes
}

#[tokio::test]
async fn every_route_is_documented_and_every_documented_route_exists() {
    let db = TestDb::new();
    let server = AdminServer::start(&db.path(), token_options()).await;
    let (status, document) = server.client().get("/api/v1/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        document["openapi"].as_str().unwrap().starts_with("3.0"),
        "{}",
        document["openapi"]
    );

    let declared: BTreeSet<_> = ROUTE_SOURCES
        .iter()
        .flat_map(|s| declared_routes(s))
        .collect();
    assert!(
        declared.contains(&("/api/v1/nodes/{key}/logs".into(), "get".into())),
        "{declared:?}"
    );
    let documented = documented_routes(&document);
    let undocumented: Vec<_> = declared.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from openapi.json: {undocumented:?}"
    );

    // Every documented operation is routed: a missing route answers 404/405 with no JSON body,
    // while the handlers answer JSON (or metrics text) even for unknown ids.
    for (path, method) in &documented {
        let concrete = path
            .replace("{key}", "nobody")
            .replace("{id}", "nothing")
            .replace("{name}", "nothing");
        let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let response = server
            .client()
            .raw(
                method.clone(),
                &concrete,
                "application/json",
                Some("{}".into()),
            )
            .await;
        assert_ne!(
            response.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        let is_metrics = path == "/metrics";
        let status = response.status();
        if !is_metrics {
            let (_, body) = json_of(response).await;
            assert!(
                !body.is_null() || status == StatusCode::NO_CONTENT,
                "{method} {path}: {status} without a body: not routed"
            );
        }
    }

    for operation in documented
        .iter()
        .map(|(path, method)| &document["paths"][path][method])
    {
        assert!(operation["summary"].is_string(), "{operation}");
        assert!(operation["responses"]["401"].is_object(), "{operation}");
    }
}
