//! Numbers for people: thousands separators, money from cents, percentages.

/// `1234567` → `"1,234,567"`.
pub fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// Cents as money: `1234567` → `"12,345.67"`, `-5` → `"-0.05"`.
pub fn money(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let c = cents.unsigned_abs();
    format!(
        "{sign}{}.{:02}",
        thousands(i64::try_from(c / 100).unwrap_or(i64::MAX)),
        c % 100
    )
}

/// A percentage with one decimal, or a dash when there is none.
pub fn pct(value: Option<f64>) -> String {
    value.map_or("–".to_owned(), |p| format!("{p:.1}%"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_people_write_them() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(-1_234_567), "-1,234,567");
        assert_eq!(money(1_234_567), "12,345.67");
        assert_eq!(money(-5), "-0.05");
        assert_eq!(pct(Some(12.345)), "12.3%");
        assert_eq!(pct(None), "–");
    }
}
