//! The contract and the code agree: every route served is in `openapi/ledger-v1.json` and every
//! path and method there is served.

mod ledger_support;

use std::collections::BTreeSet;

use ledger_sim::http::ROUTES;
use ledger_support::Ledger;
use serde_json::{json, Value};

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "patch", "head", "options", "trace",
];

fn contract() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/ledger-v1.json");
    let text = std::fs::read_to_string(path).expect("openapi/ledger-v1.json is readable");
    serde_json::from_str(&text).expect("openapi/ledger-v1.json is JSON")
}

fn documented() -> BTreeSet<(String, String)> {
    let doc = contract();
    let mut routes = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            if METHODS.contains(&method.as_str()) {
                routes.insert((method.clone(), path.clone()));
            }
        }
    }
    routes
}

#[test]
fn every_route_is_documented_and_every_documented_route_is_served() {
    let served: BTreeSet<_> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    let documented = documented();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty(),
        "served but not in the contract: {undocumented:?}"
    );
    assert!(
        unserved.is_empty(),
        "in the contract but not served: {unserved:?}"
    );
}

#[test]
fn contract_is_openapi_3_with_resolvable_schema_references() {
    let doc = contract();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.0"));
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    let text = doc.to_string();
    for reference in text.split("\"#/components/schemas/").skip(1) {
        let name = reference.split('"').next().unwrap();
        assert!(schemas.contains_key(name), "dangling $ref {name}");
    }
    for (method, path) in documented() {
        let op = &doc["paths"][&path][&method];
        assert!(
            op["operationId"].is_string(),
            "{method} {path} has no operationId"
        );
        assert!(
            op["responses"].as_object().is_some_and(|r| !r.is_empty()),
            "{method} {path}"
        );
    }
    assert_eq!(
        schemas["HoldRequest"]["properties"]["currency"]["pattern"],
        "^[A-Z]{3}$"
    );
}

/// `ROUTES` is what the router serves: each entry answers with something other than the
/// router's own "no such route" / "method not allowed".
#[tokio::test]
async fn routes_table_matches_the_router() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::start(dir.path()).await;
    for (method, path) in ROUTES {
        let url = format!(
            "{}{}",
            ledger.base,
            path.replace("{hold_id}", "hold-0")
                .replace("{account}", "alice")
        );
        let request = match *method {
            "get" => ledger.client.get(&url),
            "post" => ledger.client.post(&url).json(&json!({})),
            "put" => ledger.client.put(&url).json(&json!({})),
            other => panic!("unexpected method {other}"),
        };
        let response = request.send().await.unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert!(
            body["error"] != "not_found" && body["error"] != "method_not_allowed",
            "{method} {path}: {status} {body}"
        );
    }
    let missing = ledger.get("/v1/nothing").await;
    assert_eq!(missing.body["error"], "not_found");
    let wrong_method = ledger
        .client
        .delete(format!("{}/v1/holds", ledger.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        wrong_method.status(),
        reqwest::StatusCode::METHOD_NOT_ALLOWED
    );
    ledger.put("/admin/faults", json!({})).await;
    ledger.finish().await;
}
