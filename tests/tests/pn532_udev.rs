//! Syntax and content of udev/99-encoder-bridge.rules (Debian 12's udevadm has no `verify`):
//! every rule line is a list of `KEY[{attr}] OP "value"` pairs udev knows, and each supported
//! adapter gets the group, the `ModemManager` opt-out and a stable link.

use encoder_tests::workspace;

const KEYS: [&str; 14] = [
    "ACTION",
    "SUBSYSTEM",
    "SUBSYSTEMS",
    "DRIVER",
    "DRIVERS",
    "ATTR",
    "ATTRS",
    "ENV",
    "GROUP",
    "MODE",
    "SYMLINK",
    "GOTO",
    "LABEL",
    "KERNEL",
];

/// One `KEY{attribute}OP"value"` term of a rule: (key, attribute, operator, value).
type Term = (String, Option<String>, String, String);

/// Splits one rule line into its terms.
fn parse(line: &str) -> Result<Vec<Term>, String> {
    let mut out = vec![];
    let mut rest = line.trim();
    while !rest.is_empty() {
        let key_end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .ok_or("no operator")?;
        let (key, mut tail) = rest.split_at(key_end);
        let mut attr = None;
        if let Some(t) = tail.strip_prefix('{') {
            let close = t.find('}').ok_or("unclosed {")?;
            attr = Some(t[..close].to_owned());
            tail = &t[close + 1..];
        }
        let op = ["==", "!=", "+=", "-=", ":=", "="]
            .into_iter()
            .find(|op| tail.starts_with(op))
            .ok_or_else(|| format!("bad operator after {key}"))?;
        tail = tail[op.len()..]
            .strip_prefix('"')
            .ok_or("value not quoted")?;
        let close = tail.find('"').ok_or("unclosed value")?;
        out.push((
            key.to_owned(),
            attr,
            op.to_owned(),
            tail[..close].to_owned(),
        ));
        rest = tail[close + 1..].trim_start();
        if let Some(r) = rest.strip_prefix(',') {
            rest = r.trim_start();
        } else if !rest.is_empty() {
            return Err(format!("missing comma before {rest:?}"));
        }
    }
    Ok(out)
}

#[test]
fn rules_parse_and_cover_the_three_adapters() {
    let text = std::fs::read_to_string(workspace().join("udev/99-encoder-bridge.rules"))
        .expect("rules file");
    let mut rules = vec![];
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let rule = parse(line).unwrap_or_else(|e| panic!("line {}: {e}: {line}", n + 1));
        for (key, attr, op, _) in &rule {
            assert!(
                KEYS.contains(&key.as_str()),
                "line {}: unknown key {key}",
                n + 1
            );
            assert_eq!(
                attr.is_some(),
                matches!(key.as_str(), "ATTR" | "ATTRS" | "ENV"),
                "line {}: {key}",
                n + 1
            );
            if matches!(key.as_str(), "GROUP" | "MODE" | "GOTO" | "LABEL") {
                assert_eq!(op, "=", "line {}: {key} is an assignment", n + 1);
            }
        }
        rules.push(rule);
    }
    let has =
        |rule: &[(String, Option<String>, String, String)], k: &str, a: Option<&str>, v: &str| {
            rule.iter()
                .any(|(key, attr, _, value)| key == k && attr.as_deref() == a && value.contains(v))
        };
    // GOTO targets exist.
    for rule in &rules {
        for (key, _, _, value) in rule {
            if key == "GOTO" {
                assert!(
                    rules.iter().any(|r| has(r, "LABEL", None, value)),
                    "no LABEL {value}"
                );
            }
        }
    }
    for (vendor, product, link) in [
        ("1a86", "7523", "ID_PATH_TAG"),
        ("0403", "6001", "ID_SERIAL_SHORT"),
        ("10c4", "ea60", "ID_SERIAL_SHORT"),
    ] {
        let rule = rules
            .iter()
            .find(|r| {
                has(r, "ATTRS", Some("idVendor"), vendor)
                    && has(r, "ATTRS", Some("idProduct"), product)
            })
            .unwrap_or_else(|| panic!("no rule for {vendor}:{product}"));
        assert!(
            has(rule, "GROUP", None, "encoder-bridge"),
            "{vendor}:{product} group"
        );
        assert!(
            has(rule, "ENV", Some("ID_MM_DEVICE_IGNORE"), "1"),
            "{vendor}:{product} MM"
        );
        assert!(
            has(rule, "SYMLINK", None, link),
            "{vendor}:{product} link by {link}"
        );
    }
    assert!(
        rules
            .iter()
            .any(|r| has(r, "DRIVER", None, "ftdi_sio")
                && has(r, "ATTR", Some("latency_timer"), "1")),
        "FTDI latency timer"
    );
}
