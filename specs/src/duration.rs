//! Durations as the policy writes them: a whole number and one unit, `30s`, `15m`, `24h`, `7d`.

use std::fmt;

/// A length of time in whole seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(pub u64);

impl Duration {
    pub fn seconds(self) -> u64 {
        self.0
    }

    pub fn parse(text: &str) -> Result<Duration, String> {
        let text = text.trim();
        let unit_at = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(|| {
            format!("duration `{text}` has no unit: write e.g. `24h` (s, m, h or d)")
        })?;
        let (number, unit) = text.split_at(unit_at);
        let number: u64 = number.parse().map_err(|_| {
            format!("duration `{text}` must start with a whole number, as in `24h`")
        })?;
        let scale = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ if unit.starts_with(['.', ','])
                || unit.chars().filter(char::is_ascii_alphabetic).count() > 1 =>
            {
                return Err(format!(
                    "duration `{text}`: one whole number and one unit (s, m, h or d){}",
                    whole(text).map(|w| format!(": `{w}`")).unwrap_or_default()
                ));
            }
            _ => {
                return Err(format!(
                    "duration `{text}` has unknown unit `{unit}`: use s, m, h or d"
                ));
            }
        };
        if number == 0 {
            return Err(format!("duration `{text}` must be longer than zero"));
        }
        number
            .checked_mul(scale)
            .map(Duration)
            .ok_or_else(|| format!("duration `{text}` is too long"))
    }
}

/// `1.5h` as a whole number of the largest unit that holds it (`90m`), when it is one.
fn whole(text: &str) -> Option<String> {
    let unit = text.chars().last()?;
    let scale = match unit {
        's' => 1.0,
        'm' => 60.0,
        'h' => 3600.0,
        'd' => 86_400.0,
        _ => return None,
    };
    let number: f64 = text[..text.len() - 1].replace(',', ".").parse().ok()?;
    let seconds = number * scale;
    if seconds <= 0.0 || seconds.fract() != 0.0 || seconds > 1e15 {
        return None;
    }
    Some(Duration(seconds as u64).to_string())
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        // Whole days from two days up; `24h` reads better than `1d` and is how policies say it.
        if s.is_multiple_of(86_400) && s >= 2 * 86_400 {
            write!(f, "{}d", s / 86_400)
        } else if s.is_multiple_of(3600) {
            write!(f, "{}h", s / 3600)
        } else if s.is_multiple_of(60) {
            write!(f, "{}m", s / 60)
        } else {
            write!(f, "{s}s")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_unit() {
        assert_eq!(Duration::parse("30s"), Ok(Duration(30)));
        assert_eq!(Duration::parse("15m"), Ok(Duration(900)));
        assert_eq!(Duration::parse("24h"), Ok(Duration(86_400)));
        assert_eq!(Duration::parse("7d"), Ok(Duration(604_800)));
    }

    #[test]
    fn refuses_missing_or_unknown_units_and_zero() {
        assert!(Duration::parse("24").unwrap_err().contains("no unit"));
        assert!(Duration::parse("24x").unwrap_err().contains("unknown unit"));
        assert!(
            Duration::parse("1.5h")
                .unwrap_err()
                .ends_with("(s, m, h or d): `90m`")
        );
        assert!(Duration::parse("1.5d").unwrap_err().ends_with(": `36h`"));
        assert!(
            Duration::parse("1h30m")
                .unwrap_err()
                .contains("one whole number and one unit")
        );
        assert!(
            Duration::parse("0d")
                .unwrap_err()
                .contains("longer than zero")
        );
        assert!(Duration::parse("h").unwrap_err().contains("whole number"));
    }

    #[test]
    fn displays_in_the_largest_whole_unit() {
        assert_eq!(Duration(86_400).to_string(), "24h");
        assert_eq!(Duration(30 * 86_400).to_string(), "30d");
        assert_eq!(Duration(5400).to_string(), "90m");
    }
}
