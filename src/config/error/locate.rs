//! From figment's errors to [`Problem`]s: the key as the user wrote it (not figment's
//! `default.` profile prefix, not the table around an unknown key) and the file or environment
//! variable that set it.

use figment::error::{Actual, Kind};
use figment::value::Value;
use figment::{Figment, Metadata};

use super::{ConfigError, Origin, Problem};
use crate::config::{ENV_PREFIX, ENV_SPLIT};

/// The environment provider as figment knows it, so its values can be told apart from the
/// file's and traced back to the variables that set them.
pub(in crate::config) struct EnvSource {
    /// Metadata of the `SIDEBUS_*` provider; figment compares metadata by name and source.
    pub metadata: Metadata,
    /// Names of the process's environment variables, as written.
    pub names: Vec<String>,
}

impl ConfigError {
    /// Turns every error figment reported for `figment` into a [`Problem`].
    pub(in crate::config) fn from_figment(
        error: figment::Error,
        figment: &Figment,
        env: Option<&EnvSource>,
    ) -> Self {
        let root = figment.find_value("").ok();
        ConfigError::Parse(
            error
                .into_iter()
                .map(|error| problem(error, figment, root.as_ref(), env))
                .collect(),
        )
    }
}

fn problem(
    error: figment::Error,
    figment: &Figment,
    root: Option<&Value>,
    env: Option<&EnvSource>,
) -> Problem {
    let mut path = error.path;
    let reason = match &error.kind {
        Kind::UnknownField(found, expected) => {
            if !ends_at(root, &path, found) {
                path.push(found.clone());
            }
            format!("unknown key, {}", expected_one_of(expected))
        }
        Kind::MissingField(field) => {
            path.push(field.to_string());
            "required but missing".to_string()
        }
        Kind::DuplicateField(field) => {
            path.push(field.to_string());
            "given more than once".to_string()
        }
        Kind::InvalidType(actual, expected) => {
            format!(
                "wrong type: found {}, expected {expected}",
                describe(actual)
            )
        }
        Kind::InvalidValue(actual, expected) => {
            format!(
                "invalid value: found {}, expected {expected}",
                describe(actual)
            )
        }
        Kind::InvalidLength(length, expected) => {
            format!("wrong length: found {length} items, expected {expected}")
        }
        Kind::UnknownVariant(found, expected) => {
            format!("unknown value {found:?}, {}", expected_one_of(expected))
        }
        Kind::Message(message) => message.trim_end().to_string(),
        kind => kind.to_string(),
    };
    if let Some(actual) = offending_value(&error.kind) {
        narrow(root, &mut path, &actual);
    }
    let (key, deepest, _) = walk(root, &path);
    let metadata = deepest
        .and_then(|value| figment.get_metadata(value.tag()))
        .or(error.metadata.as_ref());
    let origin = match (metadata, env) {
        (Some(metadata), Some(env)) if *metadata == env.metadata => {
            Origin::Env(env_names(&env.names, &path))
        }
        (Some(metadata), _) => metadata
            .source
            .as_ref()
            .and_then(|source| source.file_path())
            .map_or(Origin::Unnamed, |path| Origin::File(path.to_path_buf())),
        (None, _) => Origin::Unnamed,
    };
    Problem {
        key,
        origin,
        reason,
    }
}

fn expected_one_of(expected: &[&str]) -> String {
    let quoted: Vec<String> = expected.iter().map(|name| format!("`{name}`")).collect();
    match quoted.as_slice() {
        [] => "none is accepted here".to_string(),
        [one] => format!("expected {one}"),
        [a, b] => format!("expected {a} or {b}"),
        all => format!("expected one of {}", all.join(", ")),
    }
}

fn describe(actual: &Actual) -> String {
    match actual {
        Actual::Bool(b) => format!("boolean `{b}`"),
        Actual::Unsigned(n) => format!("integer `{n}`"),
        Actual::Signed(n) => format!("integer `{n}`"),
        Actual::Float(n) => format!("float `{n}`"),
        Actual::Char(c) => format!("character {c:?}"),
        Actual::Str(s) => format!("string {s:?}"),
        Actual::Seq => "an array".to_string(),
        Actual::Map => "a table".to_string(),
        Actual::Unit | Actual::Option => "an empty value".to_string(),
        other => other.to_string(),
    }
}

/// The scalar a value error is about, when the error carries it: enough to find the key it was
/// set under when serde could only say which table it was in.
fn offending_value(kind: &Kind) -> Option<Actual> {
    let actual = match kind {
        Kind::InvalidType(actual, _) | Kind::InvalidValue(actual, _) => actual.clone(),
        Kind::UnknownVariant(found, _) => Actual::Str(found.clone()),
        _ => return None,
    };
    matches!(
        actual,
        Actual::Bool(_)
            | Actual::Unsigned(_)
            | Actual::Signed(_)
            | Actual::Float(_)
            | Actual::Char(_)
            | Actual::Str(_)
    )
    .then_some(actual)
}

/// Serde reports errors inside an internally tagged enum (`[brokers.<name>]`, chosen by `kind`)
/// at the enum's table, not at the key. When `path` ends at a table and exactly one value under
/// it is the offending one, that value's key is the one that is wrong; otherwise the table is
/// the best that can be said.
fn narrow(root: Option<&Value>, path: &mut Vec<String>, actual: &Actual) {
    let (_, Some(table @ (Value::Dict(..) | Value::Array(..))), true) = walk(root, path) else {
        return;
    };
    let mut found = Vec::new();
    leaves_equal_to(table, actual, &mut Vec::new(), &mut found);
    if let [only] = found.as_slice() {
        path.extend(only.iter().cloned());
    }
}

fn leaves_equal_to(
    value: &Value,
    actual: &Actual,
    at: &mut Vec<String>,
    found: &mut Vec<Vec<String>>,
) {
    let children: Vec<(String, &Value)> = match value {
        Value::Dict(_, dict) => dict.iter().map(|(k, v)| (k.clone(), v)).collect(),
        Value::Array(_, items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| (i.to_string(), v))
            .collect(),
        leaf => {
            if leaf.to_actual() == *actual {
                found.push(at.clone());
            }
            return;
        }
    };
    for (key, child) in children {
        at.push(key);
        leaves_equal_to(child, actual, at, found);
        at.pop();
    }
}

/// Whether `path` already names the unknown key `found`: figment puts a key on the path when
/// serde refuses it in a plain table, but not inside a tagged enum, whose content serde reads
/// on its own.
fn ends_at(root: Option<&Value>, path: &[String], found: &str) -> bool {
    if path.last().map(String::as_str) != Some(found) {
        return false;
    }
    let mut longer = path.to_vec();
    longer.push(found.to_string());
    !walk(root, &longer).2
}

/// Follows `path` from the root: the key as the user would write it (array elements as `[i]`),
/// the deepest value that exists on the way, whose tag says which provider set it, and whether
/// the whole path exists.
fn walk<'a>(root: Option<&'a Value>, path: &[String]) -> (String, Option<&'a Value>, bool) {
    let mut key = String::new();
    let mut deepest = None;
    let mut at = root;
    for segment in path {
        let index = match at {
            Some(Value::Array(..)) => segment.parse::<usize>().ok(),
            _ => None,
        };
        at = match (at, index) {
            (Some(Value::Array(_, items)), Some(i)) => {
                key.push_str(&format!("[{i}]"));
                items.get(i)
            }
            (parent, _) => {
                if !key.is_empty() {
                    key.push('.');
                }
                key.push_str(segment);
                match parent {
                    Some(Value::Dict(_, dict)) => dict.get(segment),
                    _ => None,
                }
            }
        };
        deepest = at.or(deepest);
    }
    (key, deepest, at.is_some())
}

/// The variables that set the key at `path`: the exact one, else those under it.
fn env_names(names: &[String], path: &[String]) -> Vec<String> {
    let key = path.join(".").to_ascii_lowercase();
    if key.is_empty() {
        return Vec::new();
    }
    let exact: Vec<String> = names
        .iter()
        .filter(|name| env_key(name).is_some_and(|k| k == key))
        .cloned()
        .collect();
    if !exact.is_empty() {
        return exact;
    }
    let under = format!("{key}.");
    names
        .iter()
        .filter(|name| env_key(name).is_some_and(|k| k.starts_with(&under)))
        .cloned()
        .collect()
}

/// The key an environment variable sets, as the `SIDEBUS_*` provider reads it: prefix matched
/// without regard to case, `__` for nesting, lowercase.
fn env_key(name: &str) -> Option<String> {
    let name = name.trim();
    let prefix = name.get(..ENV_PREFIX.len())?;
    if !prefix.eq_ignore_ascii_case(ENV_PREFIX) {
        return None;
    }
    Some(
        name[ENV_PREFIX.len()..]
            .replace(ENV_SPLIT, ".")
            .to_ascii_lowercase(),
    )
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use figment::providers::{Format, Toml};
    use figment::Provider;

    use super::*;
    use crate::config::{with_file, RawConfig};

    fn file(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join("bad.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    /// What loading `figment` reports, rendered; `env` stands in for the environment provider.
    fn refusal(figment: Figment, env: Option<&EnvSource>) -> String {
        let error = figment.extract::<RawConfig>().unwrap_err();
        ConfigError::from_figment(error, &figment, env).to_string()
    }

    fn from_file(text: &str) -> (String, PathBuf, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let path = file(dir.path(), text);
        let message = refusal(with_file(Toml::file_exact(&path)), None);
        (message, path, dir)
    }

    #[test]
    fn an_unknown_key_is_named_with_its_file_and_the_accepted_keys() {
        let (message, path, _dir) =
            from_file("[brokers.k]\nkind = \"kafka\"\nbootstrap = \"127.0.0.1:9092\"\n");
        assert_eq!(
            message,
            format!(
                "invalid configuration: `brokers.k.bootstrap` in {}: unknown key, expected one \
                 of `bootstrap_servers`, `create_topics`, `options`, `spool`, `topic_prefix`",
                path.display()
            )
        );
    }

    #[test]
    fn a_value_of_the_wrong_type_is_named_with_what_was_expected() {
        let (message, path, _dir) = from_file("listen = 5\n");
        assert_eq!(
            message,
            format!(
                "invalid configuration: `listen` in {}: wrong type: found integer `5`, expected \
                 a string",
                path.display()
            )
        );
        let (message, path, _dir) = from_file("limits = { max_body = \"lots\" }\n");
        assert_eq!(
            message,
            format!(
                "invalid configuration: `limits.max_body` in {}: invalid value: found string \
                 \"lots\", expected parsable string",
                path.display()
            )
        );
    }

    #[test]
    fn text_without_a_file_names_only_the_key() {
        let message = RawConfig::from_toml("lisen = 1\n").unwrap_err().to_string();
        assert!(
            message.starts_with("invalid configuration: `lisen`: unknown key, expected one of"),
            "{message}"
        );
    }

    #[test]
    fn a_value_inside_a_broker_is_named_by_its_own_key() {
        let cases = [
            (
                "[brokers.k]\nkind = \"kafka\"\nbootstrap_servers = 5\n",
                "`brokers.k.bootstrap_servers`: wrong type: found integer `5`, expected a string",
            ),
            (
                "[brokers.k]\nkind = \"redis\"\n",
                "`brokers.k.kind`: unknown value \"redis\", expected one of `memory`, `kafka`, \
                 `nats`, `amqp`",
            ),
            (
                "[brokers.k]\nurl = \"nats://x\"\n",
                "`brokers.k.kind`: required but missing",
            ),
            (
                "[brokers.k]\nkind = \"kafka\"\nbootstrap_servers = \"x\"\n\
                 create_topics = { partitions = 3, replication_factor = \"3\" }\n",
                "`brokers.k.create_topics.replication_factor`: wrong type: found string \"3\", \
                 expected i32",
            ),
        ];
        for (toml, expected) in cases {
            let message = RawConfig::from_toml(toml).unwrap_err().to_string();
            assert_eq!(
                message,
                format!("invalid configuration: {expected}"),
                "{toml}"
            );
        }
    }

    #[test]
    fn an_unknown_key_named_like_its_table_is_named_in_full() {
        let message = RawConfig::from_toml(
            "[brokers.url]\nkind = \"nats\"\nurl = \"nats://x\"\nuser = \"u\"\nurl2 = 1\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            message.starts_with("invalid configuration: `brokers.url.url2`: unknown key"),
            "{message}"
        );
        let message =
            RawConfig::from_toml("[brokers.url2]\nkind = \"nats\"\nurl = \"nats://x\"\nurl2 = 1\n")
                .unwrap_err()
                .to_string();
        assert!(
            message.starts_with("invalid configuration: `brokers.url2.url2`: unknown key"),
            "{message}"
        );
    }

    #[test]
    fn a_value_that_cannot_be_told_apart_leaves_its_table_named() {
        let message = RawConfig::from_toml(
            "[brokers.k]\nkind = \"kafka\"\nbootstrap_servers = 5\n\
             create_topics = { partitions = 5, replication_factor = 1 }\n",
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            message,
            "invalid configuration: `brokers.k`: wrong type: found integer `5`, expected a string"
        );
    }

    #[test]
    fn array_elements_are_named_by_index() {
        let message = RawConfig::from_toml(
            "[brokers.a]\nkind = \"memory\"\n[[subscriptions]]\nname = \"s\"\nbroker = \"a\"\n\
             topic = \"t\"\nendpoint = \"http://x\"\nordering = \"sideways\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            message.starts_with(
                "invalid configuration: `subscriptions[0].ordering`: unknown value \"sideways\""
            ),
            "{message}"
        );
    }

    #[test]
    fn a_key_set_in_the_environment_names_the_variable_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(
            dir.path(),
            "[brokers.k]\nkind = \"kafka\"\nbootstrap_servers = \"127.0.0.1:9092\"\n",
        );
        let env_like = || Toml::string("[brokers.k]\nbootstrap = \"x\"\n");
        let env = EnvSource {
            metadata: env_like().metadata(),
            names: vec![
                "PATH".into(),
                "SIDEBUS_CONFIG".into(),
                "Sidebus_Brokers__K__Bootstrap".into(),
            ],
        };
        let message = refusal(
            with_file(Toml::file_exact(&path)).merge(env_like()),
            Some(&env),
        );
        assert_eq!(
            message,
            "invalid configuration: `brokers.k.bootstrap` in environment variable \
             Sidebus_Brokers__K__Bootstrap: unknown key, expected one of `bootstrap_servers`, \
             `create_topics`, `options`, `spool`, `topic_prefix`"
        );
    }

    #[test]
    fn a_key_in_the_file_is_blamed_on_the_file_when_the_environment_adds_to_its_table() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(
            dir.path(),
            "[brokers.k]\nkind = \"kafka\"\nbootstrap = \"127.0.0.1:9092\"\n",
        );
        let env_like = || Toml::string("[brokers.k]\nbootstrap_servers = \"x\"\n");
        let env = EnvSource {
            metadata: env_like().metadata(),
            names: vec!["SIDEBUS_BROKERS__K__BOOTSTRAP_SERVERS".into()],
        };
        let message = refusal(
            with_file(Toml::file_exact(&path)).merge(env_like()),
            Some(&env),
        );
        assert!(
            message.starts_with(&format!(
                "invalid configuration: `brokers.k.bootstrap` in {}: unknown key",
                path.display()
            )),
            "{message}"
        );
    }

    #[test]
    fn a_syntax_error_names_the_file() {
        let (message, path, _dir) = from_file("listen = [\n");
        assert!(
            message.starts_with(&format!(
                "invalid configuration: {}: TOML parse error at line 1",
                path.display()
            )),
            "{message}"
        );
    }

    #[test]
    fn every_error_figment_reports_is_a_problem_of_its_own() {
        let error = figment::Error::from("first").chain(figment::Error::from("second"));
        let error = ConfigError::from_figment(error, &Figment::new(), None);
        assert_eq!(
            error.to_string(),
            "invalid configuration: second\ninvalid configuration: first"
        );
    }

    #[test]
    fn environment_origins_are_named_by_how_many_variables_match() {
        let names: Vec<String> = [
            "SIDEBUS_BROKERS__K__KIND",
            "SIDEBUS_BROKERS__K__URL",
            "SIDEBUS_BROKERS__KK__URL",
        ]
        .map(String::from)
        .into();
        let path = |p: &str| p.split('.').map(String::from).collect::<Vec<_>>();
        assert_eq!(
            env_names(&names, &path("brokers.k.url")),
            ["SIDEBUS_BROKERS__K__URL"]
        );
        let under = Origin::Env(env_names(&names, &path("brokers.k")));
        assert_eq!(
            under.to_string(),
            "environment variables SIDEBUS_BROKERS__K__KIND, SIDEBUS_BROKERS__K__URL"
        );
        assert_eq!(
            Origin::Env(env_names(&names, &path("listen"))).to_string(),
            "SIDEBUS_* environment variables"
        );
    }
}
