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
    let (number, factor) = UNITS
        .iter()
        .find_map(|(suffix, factor)| q.strip_suffix(suffix).map(|n| (n, *factor)))
        .unwrap_or((q, 1));
    scaled(number, factor).ok_or_else(bad)
}

/// `number × factor` for a plain decimal (`1`, `1.5`, `.25`), exact, rounded up to a whole byte
/// as Kubernetes does.
fn scaled(number: &str, factor: u64) -> Option<u64> {
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if (whole.is_empty() && frac.is_empty()) || !digits(whole) || !digits(frac) || frac.len() > 18 {
        return None;
    }
    let scale = 10u128.pow(frac.len() as u32);
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let frac: u128 = if frac.is_empty() {
        0
    } else {
        frac.parse().ok()?
    };
    let total = (whole.checked_mul(scale)? + frac).checked_mul(factor as u128)?;
    u64::try_from(total.div_ceil(scale)).ok()
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
        // Decimals, exact and rounded up to a byte.
        assert_eq!(bytes("1.5Gi").unwrap(), 1_610_612_736);
        assert_eq!(bytes("0.5Mi").unwrap(), 512 << 10);
        assert_eq!(bytes(".25Ki").unwrap(), 256);
        assert_eq!(bytes("1.0000001k").unwrap(), 1001);
        for bad in ["1.5.0Gi", "-1Gi", "Gi", ".", "1e3", "99999999999999Pi"] {
            assert!(bytes(bad).is_err(), "{bad}");
        }
    }
}
