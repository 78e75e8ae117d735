//! Dates and times as the pages show and read them, with integer arithmetic instead
//! of chrono's strftime engine (its format-string parser and formatter), which then
//! stays out of the WASM bundle (docs/benchmarks.md, "Levers").

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Timelike, Utc};

/// `2024-05-01 14:30 UTC`.
pub fn minute_utc(t: &DateTime<Utc>) -> String {
    format!("{} UTC", minute(t, ' '))
}

/// `2024-05-01T14:30`: the value of a `datetime-local` input.
pub fn input_minute(t: &DateTime<Utc>) -> String {
    minute(t, 'T')
}

/// `14:30:05.123 UTC`.
pub fn clock_millis(t: &DateTime<Utc>) -> String {
    format!(
        "{:02}:{:02}:{:02}.{:03} UTC",
        t.hour(),
        t.minute(),
        t.second(),
        t.timestamp_subsec_millis().min(999)
    )
}

fn minute(t: &DateTime<Utc>, between: char) -> String {
    format!(
        "{:04}-{:02}-{:02}{between}{:02}:{:02}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute()
    )
}

/// `2024-05-01`, or `None`.
pub fn parse_day(raw: &str) -> Option<NaiveDate> {
    let b = raw.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = i32::try_from(digits(&b[0..4])?).ok()?;
    NaiveDate::from_ymd_opt(year, digits(&b[5..7])?, digits(&b[8..10])?)
}

/// `2024-05-01T14:30`, `2024-05-01T14:30:05` or `2024-05-01 14:30`, or `None`.
pub fn parse_minute(raw: &str) -> Option<NaiveDateTime> {
    let b = raw.as_bytes();
    let seconds = match b.len() {
        16 => 0,
        19 if b[10] == b'T' && b[16] == b':' => digits(&b[17..19])?,
        _ => return None,
    };
    if !matches!(b[10], b'T' | b' ') || b[13] != b':' {
        return None;
    }
    parse_day(&raw[..10])?.and_hms_opt(digits(&b[11..13])?, digits(&b[14..16])?, seconds)
}

/// The number an all-digit run spells, or `None`.
fn digits(run: &[u8]) -> Option<u32> {
    run.iter().try_fold(0u32, |n, &c| {
        c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(raw: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(raw)
            .expect("a valid instant")
            .to_utc()
    }

    #[test]
    fn formats_as_chrono_strftime_did() {
        for raw in [
            "2024-05-01T14:30:05.123Z",
            "1970-01-01T00:00:00Z",
            "0999-12-31T23:59:59.999999Z",
        ] {
            let t = at(raw);
            assert_eq!(minute_utc(&t), t.format("%Y-%m-%d %H:%M UTC").to_string());
            assert_eq!(input_minute(&t), t.format("%Y-%m-%dT%H:%M").to_string());
            assert_eq!(clock_millis(&t), t.format("%H:%M:%S%.3f UTC").to_string());
        }
    }

    #[test]
    fn reads_what_the_forms_send_and_nothing_else() {
        let expected = |raw| NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S").ok();
        assert_eq!(
            parse_minute("2024-05-01T14:30"),
            expected("2024-05-01T14:30:00")
        );
        assert_eq!(
            parse_minute("2024-05-01 14:30"),
            expected("2024-05-01T14:30:00")
        );
        assert_eq!(
            parse_minute("2024-05-01T14:30:59"),
            expected("2024-05-01T14:30:59")
        );
        for bad in [
            "",
            "2024-05-01",
            "2024-05-01T14:3",
            "2024-05-01 14:30:59",
            "2024-13-01T14:30",
            "2024-02-30T14:30",
            "2024-05-01T24:00",
            "2024-05-01T14:60",
            "2024-05-01T14:30:60",
            "2024-05-01x14:30",
            "+024-05-01T14:30",
            "2024-05-01T14:30Z",
        ] {
            assert_eq!(parse_minute(bad), None, "{bad:?}");
        }
        assert_eq!(
            parse_day("2015-03-23"),
            NaiveDate::from_ymd_opt(2015, 3, 23)
        );
        for bad in [
            "2015-3-23",
            "2015-03-32",
            "20150323",
            "2015-03-23 ",
            "-015-03-23",
        ] {
            assert_eq!(parse_day(bad), None, "{bad:?}");
        }
    }
}
