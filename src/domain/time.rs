//! Time on the wire: every time is stored as UTC without an offset and leaves the service as
//! RFC 3339 with `Z` (a time without an offset is read as local time by JavaScript). Query
//! parameters take RFC 3339 with any offset, or a date (midnight UTC).

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};

/// A stored time as it goes out: the same instant, marked UTC.
pub fn utc(t: NaiveDateTime) -> DateTime<Utc> {
    t.and_utc()
}

/// A time filter: RFC 3339 with an offset (`2026-11-01T09:00:00Z`, `2026-11-01T10:00:00+01:00`)
/// or a date (`2026-11-01`, midnight UTC); as stored (UTC, no offset).
pub fn parse_instant(v: &str) -> Result<NaiveDateTime, String> {
    let v = v.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Ok(t.naive_utc());
    }
    NaiveDate::parse_from_str(v, "%Y-%m-%d").map(|d| d.and_time(NaiveTime::MIN)).map_err(|_| {
        format!("must be an RFC 3339 time such as 2026-11-01T09:00:00Z or a date such as 2026-11-01 (got {v:?})")
    })
}

/// Audit snapshots written before times carried `Z` hold `2026-11-22T10:00:00.123456`: give
/// such strings their `Z`, so old and new events read alike.
pub fn mark_legacy_times_utc(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(s)
            if s.len() >= 19
                && s.as_bytes().get(10) == Some(&b'T')
                && NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").is_ok() =>
        {
            s.push('Z');
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(mark_legacy_times_utc),
        serde_json::Value::Object(fields) => fields.values_mut().for_each(mark_legacy_times_utc),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_go_out_with_z_and_come_in_with_any_offset() {
        let t = parse_instant("2026-11-01T10:00:00.250+01:00").unwrap();
        assert_eq!(serde_json::to_value(utc(t)).unwrap(), "2026-11-01T09:00:00.250Z");
        assert_eq!(parse_instant("2026-11-01").unwrap().to_string(), "2026-11-01 00:00:00");
        assert!(parse_instant("2026-11-01T09:00:00").is_err(), "no offset is ambiguous");
        let mut v = serde_json::json!({"a": "2026-11-22T10:00:00.123456", "b": ["2026-11-22T10:00:00"], "c": "x"});
        mark_legacy_times_utc(&mut v);
        assert_eq!(v, serde_json::json!({"a": "2026-11-22T10:00:00.123456Z", "b": ["2026-11-22T10:00:00Z"], "c": "x"}));
    }
}
