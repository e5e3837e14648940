//! A typed walk over a parsed TOML table that records problems instead of
//! stopping at the first one, and rejects keys nobody asked for.

use std::{path::PathBuf, time::Duration};

use toml::Value;

/// Problems found so far, each with its key path; also the warnings (worth
/// saying, not worth refusing) and the files the configuration read.
#[derive(Debug, Default)]
pub(super) struct Issues {
    problems: Vec<(String, String)>,
    pub(super) warnings: Vec<String>,
    pub(super) files: Vec<PathBuf>,
}

impl Issues {
    pub(super) fn push(&mut self, path: &str, message: String) {
        self.problems.push((path.to_string(), message));
    }

    pub(super) fn warn(&mut self, path: &str, message: String) {
        self.warnings.push(format!("{path}: {message}"));
    }

    /// Notes a file the configuration depends on (watched for reloads).
    pub(super) fn read_file(&mut self, path: PathBuf) {
        if !self.files.contains(&path) {
            self.files.push(path);
        }
    }

    pub(super) fn take_problems(&mut self) -> Vec<(String, String)> {
        std::mem::take(&mut self.problems)
    }

    fn any_under(&self, prefix: &str) -> bool {
        self.problems.iter().any(|(p, _)| p.starts_with(prefix))
    }
}

type Env<'e> = &'e dyn Fn(&str) -> Option<String>;

/// One table of the document and the keys read from it so far.
pub(super) struct Table<'a> {
    path: String,
    table: Option<&'a toml::Table>,
    read: Vec<&'static str>,
    env: Env<'a>,
}

impl<'a> Table<'a> {
    pub(super) fn root(table: &'a toml::Table, env: Env<'a>) -> Self {
        Table {
            path: String::new(),
            table: Some(table),
            read: Vec::new(),
            env,
        }
    }

    /// A section the file left out: every key reads as absent.
    pub(super) fn empty(path: &str, env: Env<'a>) -> Self {
        Table {
            path: path.to_string(),
            table: None,
            read: Vec::new(),
            env,
        }
    }

    /// How `${VAR}`s (and overrides) are looked up.
    pub(super) fn env(&self) -> Env<'a> {
        self.env
    }

    /// The full path of `key` in this table.
    pub(super) fn path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// True when the file sets `key` (whether or not its value is usable).
    pub(super) fn contains(&self, key: &str) -> bool {
        self.table.is_some_and(|t| t.contains_key(key))
    }

    /// A plain string value, read without marking the key as used (it is
    /// read again, properly, later).
    pub(super) fn peek_string(&self, key: &str) -> Option<String> {
        self.table
            .and_then(|t| t.get(key))
            .and_then(Value::as_str)
            .map(str::to_string)
    }

    fn get(&mut self, key: &'static str) -> Option<&'a Value> {
        self.read.push(key);
        self.table.and_then(|t| t.get(key))
    }

    fn wrong_type(&self, key: &str, want: &str, got: &Value, issues: &mut Issues) {
        issues.push(
            &self.path(key),
            format!("expected {want}, found {}", got.type_str()),
        );
    }

    /// A string, with `${VAR}` expanded.
    pub(super) fn string(&mut self, key: &'static str, issues: &mut Issues) -> Option<String> {
        match self.get(key)? {
            Value::String(s) => expand(s, self.env)
                .map_err(|var| {
                    issues.push(
                        &self.path(key),
                        format!("environment variable {var} is not set (used as ${{{var}}})"),
                    )
                })
                .ok(),
            other => {
                self.wrong_type(key, "a string", other, issues);
                None
            }
        }
    }

    pub(super) fn bool(&mut self, key: &'static str, issues: &mut Issues) -> Option<bool> {
        match self.get(key)? {
            Value::Boolean(b) => Some(*b),
            other => {
                self.wrong_type(key, "true or false", other, issues);
                None
            }
        }
    }

    /// A non-negative integer.
    pub(super) fn integer(&mut self, key: &'static str, issues: &mut Issues) -> Option<u64> {
        match self.get(key)? {
            Value::Integer(i) if *i >= 0 => Some(*i as u64),
            Value::Integer(_) => {
                issues.push(&self.path(key), "must not be negative".into());
                None
            }
            other => {
                self.wrong_type(key, "an integer", other, issues);
                None
            }
        }
    }

    /// The integer at `key` (`default` when absent), within `range`: one
    /// outside is reported and the nearest bound used, so later checks
    /// still see a usable value.
    pub(super) fn integer_in(
        &mut self,
        key: &'static str,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
        issues: &mut Issues,
    ) -> u64 {
        let v = self.integer(key, issues).unwrap_or(default);
        if !range.contains(&v) {
            issues.push(
                &self.path(key),
                format!("{v} is out of range: {} to {}", range.start(), range.end()),
            );
        }
        v.clamp(*range.start(), *range.end())
    }

    /// A number (integers accepted).
    pub(super) fn float(&mut self, key: &'static str, issues: &mut Issues) -> Option<f64> {
        match self.get(key)? {
            Value::Float(f) => Some(*f),
            Value::Integer(i) => Some(*i as f64),
            other => {
                self.wrong_type(key, "a number", other, issues);
                None
            }
        }
    }

    /// A duration: `"500ms"`, `"30s"`, `"2m"`, `"1h"`, or whole seconds.
    pub(super) fn duration(&mut self, key: &'static str, issues: &mut Issues) -> Option<Duration> {
        let d = match self.get(key)? {
            Value::Integer(i) if *i >= 0 => Ok(Duration::from_secs(*i as u64)),
            Value::String(s) => parse_duration(s),
            other => {
                self.wrong_type(key, "a duration such as \"30s\"", other, issues);
                return None;
            }
        };
        d.map_err(|m| issues.push(&self.path(key), m)).ok()
    }

    /// An array of strings (each `${VAR}`-expanded).
    pub(super) fn strings(
        &mut self,
        key: &'static str,
        issues: &mut Issues,
    ) -> Option<Vec<String>> {
        let path = self.path(key);
        let env = self.env;
        match self.get(key)? {
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, v) in items.iter().enumerate() {
                    match v {
                        Value::String(s) => match expand(s, env) {
                            Ok(s) => out.push(s),
                            Err(var) => issues.push(
                                &format!("{path}[{i}]"),
                                format!("environment variable {var} is not set"),
                            ),
                        },
                        other => issues.push(
                            &format!("{path}[{i}]"),
                            format!("expected a string, found {}", other.type_str()),
                        ),
                    }
                }
                Some(out)
            }
            other => {
                self.wrong_type(key, "an array of strings", other, issues);
                None
            }
        }
    }

    /// A sub-table (`[key]`).
    pub(super) fn table(&mut self, key: &'static str, issues: &mut Issues) -> Option<Table<'a>> {
        match self.get(key)? {
            Value::Table(t) => Some(Table {
                path: self.path(key),
                table: Some(t),
                read: Vec::new(),
                env: self.env,
            }),
            other => {
                self.wrong_type(key, "a table", other, issues);
                None
            }
        }
    }

    /// Every key and value of this table (for free-form maps such as
    /// metadata); marks them all as read.
    pub(super) fn entries(&self) -> Vec<(&'a str, &'a Value)> {
        self.table
            .map(|t| t.iter().map(|(k, v)| (k.as_str(), v)).collect())
            .unwrap_or_default()
    }

    /// The sub-tables of `[key]` by name (`[key.NAME]`), sorted by name.
    pub(super) fn named_tables(
        &mut self,
        key: &'static str,
        issues: &mut Issues,
    ) -> Vec<(String, Table<'a>)> {
        let Some(parent) = self.table(key, issues) else {
            return Vec::new();
        };
        let Some(t) = parent.table else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (name, v) in t {
            match v {
                Value::Table(inner) => out.push((
                    name.clone(),
                    Table {
                        path: parent.path(&quote_key(name)),
                        table: Some(inner),
                        read: Vec::new(),
                        env: self.env,
                    },
                )),
                other => issues.push(
                    &parent.path(&quote_key(name)),
                    format!("expected a table, found {}", other.type_str()),
                ),
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// An array of tables (`[[key]]`).
    pub(super) fn array_of_tables(
        &mut self,
        key: &'static str,
        issues: &mut Issues,
    ) -> Vec<Table<'a>> {
        let path = self.path(key);
        let env = self.env;
        match self.get(key) {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .filter_map(|(i, v)| match v {
                    Value::Table(t) => Some(Table {
                        path: format!("{path}[{i}]"),
                        table: Some(t),
                        read: Vec::new(),
                        env,
                    }),
                    other => {
                        issues.push(
                            &format!("{path}[{i}]"),
                            format!("expected a table, found {}", other.type_str()),
                        );
                        None
                    }
                })
                .collect(),
            Some(other) => {
                self.wrong_type(key, "an array of tables ([[…]])", other, issues);
                Vec::new()
            }
        }
    }

    /// True when a problem was already reported under `<this>.keys`, so
    /// follow-on complaints (an active key that failed to load) stay quiet.
    pub(super) fn has_key_issues(&self, issues: &Issues) -> bool {
        issues.any_under(&self.path("keys"))
    }

    /// Reports every key of this table that nothing read.
    pub(super) fn finish(&self, issues: &mut Issues) {
        let Some(table) = self.table else { return };
        for key in table.keys() {
            if !self.read.contains(&key.as_str()) {
                let known = self.read.join(", ");
                issues.push(
                    &self.path(key),
                    format!("unknown key (known here: {known})"),
                );
            }
        }
    }
}

/// A key as written in a TOML path: bare when it can be, quoted otherwise.
fn quote_key(k: &str) -> String {
    if !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        k.to_string()
    } else {
        format!("{k:?}")
    }
}

/// Expands `${VAR}`; `$${` stands for a literal `${`. Returns the name of the
/// first variable that is not set.
pub(super) fn expand(s: &str, env: Env<'_>) -> Result<String, String> {
    if !s.contains('$') {
        return Ok(s.to_string());
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(lit) = after.strip_prefix("${") {
            out.push_str("${");
            rest = lit;
        } else if let Some(body) = after.strip_prefix('{') {
            match body.find('}') {
                Some(end) => {
                    let var = &body[..end];
                    out.push_str(&env(var).ok_or_else(|| var.to_string())?);
                    rest = &body[end + 1..];
                }
                None => {
                    out.push_str("${");
                    rest = body;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Parses `"500ms"`, `"30s"`, `"2m"`, `"1h"`.
pub(super) fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a duration; write e.g. \"30s\", \"500ms\", \"2m\""))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" | "" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        _ => Err(format!("{s:?}: unknown unit {unit:?}; use ms, s, m or h")),
    }
}
