//! Integers as JSON Schema counts them: `3` and `3.0` are the same integer, so an API that
//! publishes `"type": "integer"` accepts both (clients that write every number as a float are
//! common); `3.5` is refused.

use serde::{Deserialize, Deserializer};

#[derive(Deserialize)]
#[serde(untagged)]
enum Number {
    Int(i64),
    Big(u64),
    Float(f64),
}

fn whole(n: Number) -> Option<i128> {
    match n {
        Number::Int(i) => Some(i as i128),
        Number::Big(u) => Some(u as i128),
        Number::Float(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15 => {
            Some(f as i128)
        }
        Number::Float(_) => None,
    }
}

/// `#[serde(default, deserialize_with = "oclaw_core::integral::option")]` on an `Option<int>`.
pub fn option<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i128>,
{
    let Some(n) = Option::<Number>::deserialize(d)? else {
        return Ok(None);
    };
    let n = whole(n).ok_or_else(|| serde::de::Error::custom("expected a whole number"))?;
    T::try_from(n)
        .map(Some)
        .map_err(|_| serde::de::Error::custom(format!("{n} is out of range")))
}

/// The whole number of a JSON number, if it is one (`5`, `5.0`).
pub fn of_f64(f: f64) -> Option<u64> {
    (f.is_finite() && f >= 0.0 && f.fract() == 0.0 && f < 9.0e15).then_some(f as u64)
}

#[cfg(test)]
mod tests {
    #[derive(serde::Deserialize, Debug)]
    struct T {
        #[serde(default, deserialize_with = "super::option")]
        n: Option<u32>,
    }

    #[test]
    fn whole_floats_are_integers() {
        let n = |json: &str| serde_json::from_str::<T>(json).map(|t| t.n);
        assert_eq!(n(r#"{"n": 3}"#).unwrap(), Some(3));
        assert_eq!(n(r#"{"n": 177.0}"#).unwrap(), Some(177));
        assert_eq!(n(r#"{"n": null}"#).unwrap(), None);
        assert_eq!(n("{}").unwrap(), None);
        assert!(n(r#"{"n": 3.5}"#).is_err());
        assert!(n(r#"{"n": -1}"#).is_err());
        assert!(n(r#"{"n": 1e300}"#).is_err());
        assert!(n(r#"{"n": "3"}"#).is_err());
    }
}
