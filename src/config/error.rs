//! How a refused configuration is reported: one line per problem, naming the key as the user
//! wrote it, where it was set (the file, or the environment variable by its own name) and what
//! would have been accepted.

mod locate;

use std::fmt;
use std::path::PathBuf;

pub(super) use locate::EnvSource;

/// Why a configuration could not be used.
///
/// The message is the whole story and there is no [`source`](std::error::Error::source): an
/// error chain printed around it (`anyhow`'s `Caused by:`) shows each problem once.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or the environment did not parse into the expected shape; figment can report
    /// more than one problem, each is printed on its own line.
    #[error("{}", lines(.0))]
    Parse(Vec<Problem>),
    /// A value parsed but is not usable.
    #[error("invalid configuration: `{key}`: {reason}")]
    Invalid {
        /// Dotted path of the offending key, e.g. `brokers.events.bootstrap_servers`.
        key: String,
        /// What is wrong and what would be accepted.
        reason: String,
    },
    /// The file given by `--config` or `SIDEBUS_CONFIG` is not there; without this check a
    /// mistyped path would silently run on defaults.
    #[error(
        "invalid configuration: config file {} does not exist (--config or SIDEBUS_CONFIG)",
        .0.display()
    )]
    Missing(PathBuf),
}

/// One thing figment refused, in the user's terms rather than figment's (no profile name, the
/// key that is wrong rather than its table).
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// Dotted key path, e.g. `brokers.k.bootstrap` or `subscriptions[0].ordering`; empty when
    /// the problem is the source as a whole (a TOML syntax error, an unreadable file).
    pub key: String,
    /// Where the key was set.
    pub origin: Origin,
    /// What is wrong and what would be accepted.
    pub reason: String,
}

/// Where a refused value came from, so the user knows what to edit.
#[derive(Debug, Clone, PartialEq)]
pub enum Origin {
    /// The configuration file, by the path it was given as.
    File(PathBuf),
    /// `SIDEBUS_*` environment variables, by the names they were set under: the one that set the
    /// key, or every one under it when the key is a table; none when none could be matched.
    Env(Vec<String>),
    /// Text given to [`RawConfig::from_toml`](super::RawConfig::from_toml) or the built-in
    /// defaults: nothing the user could look up.
    Unnamed,
}

fn lines(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(Problem::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid configuration: ")?;
        match (self.key.is_empty(), &self.origin) {
            (true, Origin::Unnamed) => {}
            (true, origin) => write!(f, "{origin}: ")?,
            (false, Origin::Unnamed) => write!(f, "`{}`: ", self.key)?,
            (false, origin) => write!(f, "`{}` in {origin}: ", self.key)?,
        }
        f.write_str(&self.reason)
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File(path) => write!(f, "{}", path.display()),
            Origin::Env(names) => match names.as_slice() {
                [] => write!(f, "{}* environment variables", super::ENV_PREFIX),
                [name] => write!(f, "environment variable {name}"),
                names => write!(f, "environment variables {}", names.join(", ")),
            },
            Origin::Unnamed => f.write_str("an unnamed source"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(key: &str, origin: Origin) -> Problem {
        Problem {
            key: key.into(),
            origin,
            reason: "what is wrong".into(),
        }
    }

    #[test]
    fn a_problem_names_what_it_knows_of_key_and_origin() {
        let file = || Origin::File("conf/bad.toml".into());
        let cases = [
            (problem("a.b", file()), "`a.b` in conf/bad.toml: "),
            (
                problem("a.b", Origin::Env(vec!["SIDEBUS_A__B".into()])),
                "`a.b` in environment variable SIDEBUS_A__B: ",
            ),
            (problem("a.b", Origin::Unnamed), "`a.b`: "),
            (problem("", file()), "conf/bad.toml: "),
            (problem("", Origin::Unnamed), ""),
        ];
        for (problem, named) in cases {
            assert_eq!(
                problem.to_string(),
                format!("invalid configuration: {named}what is wrong")
            );
        }
    }

    #[test]
    fn each_problem_is_one_line_and_nothing_is_repeated_as_a_source() {
        let error = ConfigError::Parse(vec![
            problem("a", Origin::Unnamed),
            problem("b", Origin::Unnamed),
        ]);
        assert_eq!(
            error.to_string(),
            "invalid configuration: `a`: what is wrong\ninvalid configuration: `b`: what is wrong"
        );
        assert!(std::error::Error::source(&error).is_none());
        let missing = ConfigError::Missing("nope.toml".into());
        assert_eq!(
            missing.to_string(),
            "invalid configuration: config file nope.toml does not exist (--config or \
             SIDEBUS_CONFIG)"
        );
        assert!(std::error::Error::source(&missing).is_none());
    }
}
