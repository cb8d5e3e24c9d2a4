//! JSON Schema: draft 2020-12 unless the schema's `$schema` names another draft.

use jsonschema::error::ValidationErrorKind;
use jsonschema::{Draft, Validator};
use serde_json::Value;

use super::Failure;

mod tape;

/// A compiled JSON Schema.
#[derive(Debug)]
pub struct JsonCheck {
    /// Validates the parsed tree, naming each failure.
    validator: Validator,
    /// The same schema over the tape, for the common case: a valid event, read once.
    tape: Validator<tape::TapeJson>,
}

impl JsonCheck {
    /// Compiles a schema document. `$ref`s resolve within it only: sidebus fetches nothing
    /// while compiling (the HTTP and file resolvers of `jsonschema` are not built in).
    pub fn compile(schema: &Value) -> Result<Self, String> {
        // Without `$schema`, 2020-12; with it, the draft it names (or its own meta-schema).
        let named = schema.get("$schema").is_some();
        let mut options = jsonschema::options();
        let mut tape_options = jsonschema::options_for::<tape::TapeJson>();
        if !named {
            options = options.with_draft(Draft::Draft202012);
            tape_options = tape_options.with_draft(Draft::Draft202012);
        }
        let validator = options.build(schema).map_err(|e| e.to_string())?;
        let tape = tape_options.build(schema).map_err(|e| e.to_string())?;
        Ok(Self { validator, tape })
    }

    /// Whether a JSON text is certainly valid, read once with no tree built. `false` when it is
    /// not, or is not JSON, or names a member twice: [`check`](Self::check) on the parsed tree
    /// then decides and says why.
    pub fn accepts_text(&self, text: &[u8]) -> bool {
        tape::read(text, |root| self.tape.is_valid(root)).unwrap_or(false)
    }

    /// Every failure of `instance`, as pointers relative to it. A missing required member
    /// points at the object that lacks it, and its detail names the member.
    pub fn check(&self, instance: &Value) -> Result<(), Vec<Failure>> {
        // Valid events are the common case, and `is_valid` stops early without building errors.
        if self.validator.is_valid(instance) {
            return Ok(());
        }
        let failures: Vec<Failure> = self
            .validator
            .iter_errors(instance)
            .map(|error| {
                let detail = match error.kind() {
                    ValidationErrorKind::Required { property } => {
                        let name = property
                            .as_str()
                            .map_or_else(|| property.to_string(), str::to_string);
                        format!("`{name}` is a required member")
                    }
                    _ => error.to_string(),
                };
                Failure {
                    pointer: error.instance_path().as_str().to_string(),
                    detail,
                }
            })
            .collect();
        if failures.is_empty() {
            Ok(())
        } else {
            Err(failures)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn required_points_at_the_object_and_types_at_the_member() {
        let check = JsonCheck::compile(&json!({
            "type": "object",
            "required": ["id", "total"],
            "properties": {"total": {"type": "number"}, "lines": {"type": "array",
                "items": {"type": "object", "required": ["sku"]}}}
        }))
        .unwrap();
        let failures = check
            .check(&json!({"total": "x", "lines": [{"sku": 1}, {}]}))
            .unwrap_err();
        let mut found: Vec<_> = failures
            .iter()
            .map(|f| (f.pointer.as_str(), f.detail.as_str()))
            .collect();
        found.sort();
        assert_eq!(found[0], ("", "`id` is a required member"));
        assert_eq!(found[1].0, "/lines/1");
        assert!(found[1].1.contains("`sku`"));
        assert_eq!(found[2].0, "/total");
        assert!(check.check(&json!({"id": 1, "total": 2})).is_ok());
    }

    #[test]
    fn drafts_follow_dollar_schema() {
        let draft7 = json!({"$schema": "http://json-schema.org/draft-07/schema#",
            "items": [{"type": "string"}]});
        let check = JsonCheck::compile(&draft7).unwrap();
        assert!(check.check(&json!([1])).is_err());
        let default = json!({"prefixItems": [{"type": "string"}]});
        let check = JsonCheck::compile(&default).unwrap();
        assert!(check.check(&json!([1])).is_err());
        assert!(JsonCheck::compile(&json!({"type": 12})).is_err());
    }
}
