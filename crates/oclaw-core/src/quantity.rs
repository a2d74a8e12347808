//! Kubernetes resource quantities as the cluster file writes them: CPU in cores or millicores
//! (`2`, `0.5`, `2000m`), memory and storage in bytes with a binary or decimal suffix (`4Gi`,
//! `512Mi`, `1G`).

/// Millicores of a CPU quantity.
pub fn cpu_millis(q: &str) -> Result<u64, String> {
    let q = q.trim();
    let bad = || format!("`{q}` is not a CPU quantity (examples: 2, 0.5, 2000m)");
    if let Some(m) = q.strip_suffix('m') {
        return m.parse::<u64>().map_err(|_| bad());
    }
    let cores: f64 = q.parse().map_err(|_| bad())?;
    if !(cores.is_finite() && cores >= 0.0) {
        return Err(bad());
    }
    Ok((cores * 1000.0).round() as u64)
}

/// Bytes of a memory or storage quantity.
pub fn bytes(q: &str) -> Result<u64, String> {
    let q = q.trim();
    let bad = || format!("`{q}` is not a byte quantity (examples: 4Gi, 512Mi, 100G)");
    const UNITS: &[(&str, u64)] = &[
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("Ti", 1 << 40),
        ("Pi", 1 << 50),
        ("k", 1_000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
        ("T", 1_000_000_000_000),
        ("P", 1_000_000_000_000_000),
    ];
    for (suffix, factor) in UNITS {
        if let Some(n) = q.strip_suffix(suffix) {
            let n: u64 = n.parse().map_err(|_| bad())?;
            return n.checked_mul(*factor).ok_or_else(bad);
        }
    }
    q.parse().map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(cpu_millis("2000m").unwrap(), 2000);
        assert_eq!(cpu_millis("4").unwrap(), 4000);
        assert_eq!(cpu_millis("0.5").unwrap(), 500);
        assert!(cpu_millis("two").is_err());
        assert!(cpu_millis("-1").is_err());
        assert_eq!(bytes("4Gi").unwrap(), 4 << 30);
        assert_eq!(bytes("100G").unwrap(), 100_000_000_000);
        assert_eq!(bytes("1024").unwrap(), 1024);
        assert!(bytes("4GB").is_err());
    }
}
