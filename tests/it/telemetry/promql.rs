//! Just enough PromQL lexing to list the metric names an expression reads: strings, label
//! matchers (`{...}`), ranges (`[...]`), numbers and durations are skipped, and so are function
//! and aggregation names (followed by `(`), keywords, and the label lists of `by`, `without`,
//! `on`, `ignoring`, `group_left` and `group_right`.

use std::collections::BTreeSet;

const KEYWORDS: &[&str] = &["and", "or", "unless", "bool", "offset", "inf", "nan", "atan2"];
const LABEL_LIST_KEYWORDS: &[&str] = &["by", "without", "on", "ignoring", "group_left", "group_right"];

pub fn metric_names(expr: &str) -> BTreeSet<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' | '`' => i = skip_string(&chars, i),
            '{' => i = skip_until(&chars, i, '}'),
            '[' => i = skip_until(&chars, i, ']'),
            '$' => {
                // A Grafana variable such as $__rate_interval outside a range.
                i += 1;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
            }
            c if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) => {
                // A number or a duration (1e6, 0.99, 1d, 30m).
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':') {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let mut j = i;
                while j < chars.len() && chars[j].is_whitespace() {
                    j += 1;
                }
                // `sum by (...) (...)`: an aggregation whose grouping comes first.
                let rest: String = chars[j..].iter().take(8).collect();
                let grouped = rest.starts_with("by ") || rest.starts_with("by(") || rest.starts_with("without");
                let called = chars.get(j) == Some(&'(') || grouped;
                if LABEL_LIST_KEYWORDS.contains(&word.as_str()) {
                    if called {
                        i = skip_until(&chars, j, ')');
                    }
                } else if !called && !KEYWORDS.contains(&word.as_str()) {
                    names.insert(word);
                }
            }
            _ => i += 1,
        }
    }
    names
}

fn skip_string(chars: &[char], start: usize) -> usize {
    let quote = chars[start];
    let mut i = start + 1;
    while i < chars.len() && chars[i] != quote {
        if chars[i] == '\\' {
            i += 1;
        }
        i += 1;
    }
    i + 1
}

/// Skips past the `close` that ends the group opened at `start`, ignoring quoted text.
fn skip_until(chars: &[char], start: usize, close: char) -> usize {
    let mut i = start + 1;
    while i < chars.len() && chars[i] != close {
        if chars[i] == '"' || chars[i] == '\'' {
            i = skip_string(chars, i);
        } else {
            i += 1;
        }
    }
    i + 1
}

#[test]
fn lists_only_metric_names() {
    let names = |e: &str| metric_names(e).into_iter().collect::<Vec<_>>();
    assert_eq!(
        names(
            r#"histogram_quantile(0.99, sum by (queue, le) (rate(conveyor_job_end_to_end_seconds_bucket{queue=~"$queue", x="a}b"}[$__rate_interval])))"#
        ),
        ["conveyor_job_end_to_end_seconds_bucket"]
    );
    assert_eq!(
        names("a:b:rate5m < 0.8 * (a:b:rate5m offset 1d) and on (queue) up == 0 or on () vector(0)"),
        ["a:b:rate5m", "up"]
    );
    assert_eq!(names("deriv(x[1h]) * 3600 > 50 * 1024 * 1024 / 1e6"), ["x"]);
    assert_eq!(names(r#"count(ALERTS{alertstate="firing"}) or vector(0)"#), ["ALERTS"]);
    assert_eq!(names("sum without (instance) (y) / ignoring (le) group_left (a, b) z"), ["y", "z"]);
}
