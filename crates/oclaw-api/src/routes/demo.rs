//! Demo data served by every node so the example bots work offline: a small product catalogue
//! with the defects a data-cleaning bot is meant to remove (zero prices, duplicates, blanks).

use axum::Json;
use serde_json::{json, Value};

pub async fn catalog() -> Json<Value> {
    Json(json!({
        "source": "oclaw demo catalogue",
        "items": [
            {"sku": "A-100", "name": "Desk lamp", "price": 24.5, "currency": "EUR"},
            {"sku": "A-101", "name": "  Office chair ", "price": 129.0, "currency": "EUR"},
            {"sku": "A-100", "name": "Desk lamp", "price": 24.5, "currency": "EUR"},
            {"sku": "A-102", "name": "Monitor arm", "price": 0, "currency": "EUR"},
            {"sku": "A-103", "name": "USB hub", "price": 19.99, "currency": "EUR"},
            {"sku": "A-104", "name": "", "price": 5.0, "currency": "EUR"},
            {"sku": "A-105", "name": "Headset", "price": -1, "currency": "EUR"}
        ]
    }))
}
