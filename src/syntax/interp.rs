//! `${VAR}` and `${VAR:-default}` interpolation in strings.

/// Why a string could not be interpolated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InterpError {
    /// `${NAME}` with NAME unset and no default.
    Unset(String),
    /// `${` without its `}`, or an empty or malformed name.
    Malformed(String),
}

/// Replace every `${NAME}` / `${NAME:-default}` in `s`, looking names up with
/// `lookup`. `\$` stands for a literal dollar sign. Defaults may themselves
/// contain `${...}`.
pub fn interpolate(
    s: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, InterpError> {
    interpolate_depth(s, lookup, 0)
}

fn interpolate_depth(
    s: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    depth: usize,
) -> Result<String, InterpError> {
    if depth > 8 {
        return Err(InterpError::Malformed("defaults nested too deep".into()));
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(['$', '\\']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix("\\$") {
            out.push('$');
            rest = after;
            continue;
        }
        if tail.starts_with('\\') {
            out.push('\\');
            rest = &tail[1..];
            continue;
        }
        let Some(body_start) = tail.strip_prefix("${") else {
            out.push('$');
            rest = &tail[1..];
            continue;
        };
        // Find the matching `}` (defaults may nest `${...}`).
        let mut level = 1usize;
        let mut end = None;
        let bytes = body_start.as_bytes();
        let mut j = 0;
        while j < bytes.len() {
            if bytes[j] == b'$' && bytes.get(j + 1) == Some(&b'{') {
                level += 1;
                j += 2;
                continue;
            }
            if bytes[j] == b'}' {
                level -= 1;
                if level == 0 {
                    end = Some(j);
                    break;
                }
            }
            j += 1;
        }
        let Some(end) = end else {
            return Err(InterpError::Malformed("`${` without a closing `}`".into()));
        };
        let body = &body_start[..end];
        let (name, default) = match body.find(":-") {
            Some(k) => (&body[..k], Some(&body[k + 2..])),
            None => (body, None),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(InterpError::Malformed(format!(
                "`${{{body}}}` is not a variable reference"
            )));
        }
        match lookup(name).filter(|v| !v.is_empty() || default.is_none()) {
            Some(v) => out.push_str(&v),
            None => match default {
                Some(d) => out.push_str(&interpolate_depth(d, lookup, depth + 1)?),
                None => return Err(InterpError::Unset(name.to_string())),
            },
        }
        rest = &body_start[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(k: &str) -> Option<String> {
        match k {
            "ROOT" => Some("/data".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn forms() {
        assert_eq!(interpolate("${ROOT}/x", &env).unwrap(), "/data/x");
        assert_eq!(interpolate("${NOPE:-../d}/x", &env).unwrap(), "../d/x");
        assert_eq!(interpolate("${EMPTY:-dflt}", &env).unwrap(), "dflt");
        assert_eq!(interpolate("${NOPE:-${ROOT}}", &env).unwrap(), "/data");
        assert_eq!(interpolate("a\\$b $x", &env).unwrap(), "a$b $x");
        assert_eq!(
            interpolate("${NOPE}", &env),
            Err(InterpError::Unset("NOPE".into()))
        );
        assert!(interpolate("${ROOT", &env).is_err());
        assert!(interpolate("${a b}", &env).is_err());
    }
}
