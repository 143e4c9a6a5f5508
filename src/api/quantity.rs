//! Kubernetes resource quantities ("100m", "1.5Gi", "2e3") as exact numbers.
//! k8s: staging/src/k8s.io/apimachinery/pkg/api/resource/quantity.go

/// The quantity in thousandths of a unit (millicores for cpu, millibytes for memory), rounded
/// up as Kubernetes' MilliValue does. `None` when the text is not a quantity.
pub fn parse(s: &str) -> Option<i128> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    let (negative, digits) = match number.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, number.strip_prefix('+').unwrap_or(number)),
    };
    if digits.is_empty()
        || digits == "."
        || digits.matches('.').count() > 1
        || digits.contains(['+', '-'])
    {
        return None;
    }
    let (int_part, frac_part) = digits.split_once('.').unwrap_or((digits, ""));
    // value = mantissa / 10^frac_len
    let mut mantissa: i128 = 0;
    for b in int_part.bytes().chain(frac_part.bytes()) {
        mantissa = mantissa
            .checked_mul(10)?
            .checked_add(i128::from(b - b'0'))?;
    }
    let frac_len = frac_part.len() as i32;
    // (multiplier numerator, power of ten) for the suffix
    let (mul, pow10): (i128, i32) = match suffix {
        "" => (1, 0),
        "n" => (1, -9),
        "u" => (1, -6),
        "m" => (1, -3),
        "k" => (1, 3),
        "M" => (1, 6),
        "G" => (1, 9),
        "T" => (1, 12),
        "P" => (1, 15),
        "E" => (1, 18),
        "Ki" => (1 << 10, 0),
        "Mi" => (1 << 20, 0),
        "Gi" => (1 << 30, 0),
        "Ti" => (1 << 40, 0),
        "Pi" => (1 << 50, 0),
        "Ei" => (1 << 60, 0),
        e if e.starts_with(['e', 'E']) => (1, e[1..].parse::<i32>().ok()?),
        _ => return None,
    };
    // milli-units: mantissa * mul * 10^(pow10 + 3 - frac_len), rounded up
    let exp = pow10 + 3 - frac_len;
    let base = mantissa.checked_mul(mul)?;
    let value = if exp >= 0 {
        base.checked_mul(10i128.checked_pow(exp as u32)?)?
    } else {
        let div = 10i128.checked_pow((-exp) as u32)?;
        (base + div - 1) / div
    };
    Some(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn quantities() {
        let cases: &[(&str, Option<i128>)] = &[
            ("1", Some(1000)),
            ("100m", Some(100)),
            ("0.5", Some(500)),
            ("1.5", Some(1500)),
            ("2k", Some(2_000_000)),
            ("1Ki", Some(1_024_000)),
            ("1.5Gi", Some(1_610_612_736_000)),
            ("128Mi", Some(134_217_728_000)),
            ("1e3", Some(1_000_000)),
            ("1n", Some(1)), // rounded up to one milli-unit
            ("-1", Some(-1000)),
            ("", None),
            ("abc", None),
            ("1.2.3", None),
            ("1Qi", None),
            ("5 m", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text), *want, "{text}");
        }
    }
}
