//! The monitoring kit shipped with the binary: the Prometheus alert rules of
//! `deploy/prometheus/oclaw-rules.yml`, as a rule file or wrapped in the Prometheus Operator's
//! `PrometheusRule` resource for Kubernetes — one source for both.

/// The alert rule file, as shipped.
pub const ALERT_RULES: &str = include_str!("../../../deploy/prometheus/oclaw-rules.yml");

/// The alert rules as a `monitoring.coreos.com/v1` `PrometheusRule` in `namespace`.
pub fn prometheus_rule(namespace: &str) -> Result<String, String> {
    let rules: serde_json::Value =
        serde_saphyr::from_str(ALERT_RULES).map_err(|e| format!("alert rules: {e}"))?;
    let groups = rules
        .get("groups")
        .cloned()
        .ok_or("alert rules have no `groups`")?;
    let resource = serde_json::json!({
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "oclaw-alerts",
            "namespace": namespace,
            "labels": {"app.kubernetes.io/name": "oclaw", "app.kubernetes.io/component": "monitoring"},
        },
        "spec": {"groups": groups},
    });
    serde_saphyr::to_string(&resource).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_rule_carries_every_rule_of_the_file() {
        let rendered: serde_json::Value =
            serde_saphyr::from_str(&prometheus_rule("oclaw-system").unwrap()).unwrap();
        let file: serde_json::Value = serde_saphyr::from_str(ALERT_RULES).unwrap();
        assert_eq!(rendered["kind"], "PrometheusRule");
        assert_eq!(rendered["metadata"]["namespace"], "oclaw-system");
        assert_eq!(rendered["spec"]["groups"], file["groups"]);
        let alerts: Vec<&str> = rendered["spec"]["groups"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|g| g["rules"].as_array().unwrap())
            .map(|r| r["alert"].as_str().unwrap())
            .collect();
        assert!(alerts.contains(&"OclawQueueBacklogHigh"));
        assert_eq!(alerts.len(), ALERT_RULES.matches("- alert:").count());
    }
}
