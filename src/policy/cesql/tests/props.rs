//! Property tests: no input makes the parser panic, every expression the grammar produces
//! parses, and evaluating anything that parses never panics.

use proptest::prelude::*;

use super::{event, parse};
use crate::policy::cesql::Value;

/// Tokens of the language, and some that are not, to glue into token soups.
const TOKENS: &[&str] = &[
    "(",
    ")",
    ",",
    " ",
    "+",
    "-",
    "*",
    "/",
    "%",
    "=",
    "!=",
    "<>",
    "<",
    "<=",
    ">",
    ">=",
    "AND",
    "or",
    "XoR",
    "NOT",
    "LIKE",
    "IN",
    "EXISTS",
    "TRUE",
    "false",
    "0",
    "1",
    "-2147483648",
    "2147483647",
    "'a%b_'",
    "\"x\\\"\"",
    "'\\'",
    "'",
    "id",
    "subject",
    "missing",
    "Ext1",
    "LENGTH(",
    "CONCAT_WS(",
    "SUBSTRING(",
    "LEFT(",
    "ABS(",
    "INT(",
    "BOOL(",
    "IS_INT(",
    "NOPE(",
    "é",
    "\\",
    "_",
    "#",
];

/// `text` as a single-quoted literal.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
}

fn leaf() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i32>().prop_map(|i| i.to_string()),
        any::<bool>().prop_map(|b| b.to_string()),
        "[a-zA-Z0-9 %_'\"\\\\é]{0,8}".prop_map(|s| quote(&s)),
        prop::sample::select(vec![
            "id", "source", "type", "subject", "time", "ext", "missing"
        ])
        .prop_map(str::to_owned),
        prop::sample::select(vec!["id", "subject", "ext", "missing"])
            .prop_map(|a| format!("EXISTS {a}")),
    ]
}

fn expression() -> impl Strategy<Value = String> {
    leaf().prop_recursive(5, 48, 4, |inner| {
        let ops = vec![
            "*", "/", "%", "+", "-", "=", "!=", "<>", "<", "<=", ">", ">=", "AND", "OR", "XOR",
        ];
        let functions = vec![
            ("LENGTH", 1),
            ("CONCAT", 3),
            ("CONCAT_WS", 3),
            ("LOWER", 1),
            ("UPPER", 1),
            ("TRIM", 1),
            ("LEFT", 2),
            ("RIGHT", 2),
            ("SUBSTRING", 2),
            ("SUBSTRING", 3),
            ("ABS", 1),
            ("INT", 1),
            ("BOOL", 1),
            ("STRING", 1),
            ("IS_INT", 1),
            ("IS_BOOL", 1),
            ("NOPE", 2),
        ];
        prop_oneof![
            (inner.clone(), prop::sample::select(ops), inner.clone())
                .prop_map(|(l, op, r)| format!("{l} {op} {r}")),
            inner.clone().prop_map(|x| format!("NOT {x}")),
            inner.clone().prop_map(|x| format!("-({x})")),
            inner.clone().prop_map(|x| format!("({x})")),
            (inner.clone(), "[a-z%_\\\\]{0,6}", any::<bool>()).prop_map(|(x, p, not)| {
                format!("{x} {}LIKE {}", if not { "NOT " } else { "" }, quote(&p))
            }),
            (
                inner.clone(),
                prop::collection::vec(inner.clone(), 1..4),
                any::<bool>()
            )
                .prop_map(|(x, set, not)| {
                    format!(
                        "{x} {}IN ({})",
                        if not { "NOT " } else { "" },
                        set.join(", ")
                    )
                }),
            (
                prop::sample::select(functions),
                prop::collection::vec(inner, 3)
            )
                .prop_map(|((name, arity), args)| format!("{name}({})", args[..arity].join(", "))),
        ]
    })
}

fn evaluate_everywhere(text: &str) {
    let Ok(expression) = parse(text) else {
        return;
    };
    for attributes in [
        &[][..],
        &[
            ("subject", "sub"),
            ("time", "2026-01-01T00:00:00Z"),
            ("ext", "12"),
        ][..],
        &[("ext", "true"), ("subject", "")][..],
    ] {
        let event = event(attributes);
        let (value, error) = expression.evaluate(&event);
        let matches = value == Value::Boolean(true) && error.is_none();
        assert_eq!(expression.matches(&event), matches, "{text}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,64}") {
        match parse(&text) {
            Ok(_) => evaluate_everywhere(&text),
            Err(e) => prop_assert!(e.position >= 1 && e.position <= text.chars().count() + 1),
        }
    }

    #[test]
    fn token_soups_never_panic(tokens in prop::collection::vec(prop::sample::select(TOKENS), 0..24)) {
        let text = tokens.join(" ");
        evaluate_everywhere(&text);
        evaluate_everywhere(&tokens.concat());
    }

    #[test]
    fn grammar_expressions_parse_and_evaluate(text in expression()) {
        prop_assert!(parse(&text).is_ok(), "{text}: {:?}", parse(&text).err());
        evaluate_everywhere(&text);
    }
}
