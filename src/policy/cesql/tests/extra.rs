//! Beyond the TCK: precedence, the error rules at their edges, sidebus's interpretations,
//! parse error positions and the nesting bound.

use super::super::parser::{MAX_DEPTH, MAX_NESTING};
use super::ErrorKind::{Cast, FunctionEvaluation, Math, MissingAttribute, MissingFunction};
use super::R::{B, I, S};
use super::{event, parse, run, run_parse_errors};
use crate::policy::cesql::{ErrorKind, EvalError, Value};

#[test]
fn precedence_and_associativity() {
    run(&[
        ("1 + 2 * 3", &[], I(7), None),
        ("10 - 4 - 3", &[], I(3), None),
        ("100 / 10 / 5", &[], I(2), None),
        ("7 % 4 * 2", &[], I(6), None),
        ("1 + 2 = 3", &[], B(true), None),
        ("1 < 2 = TRUE", &[], B(true), None),
        ("TRUE OR TRUE AND FALSE", &[], B(false), None),
        ("TRUE OR (TRUE AND FALSE)", &[], B(true), None),
        ("FALSE AND FALSE OR TRUE", &[], B(true), None),
        ("TRUE XOR TRUE XOR TRUE", &[], B(true), None),
        ("NOT FALSE AND FALSE", &[], B(false), None),
        ("NOT 'a' LIKE 'a'", &[], B(false), Some(Cast)),
        ("'x' LIKE 'x' = TRUE", &[], B(true), None),
        ("1 + 1 IN (1, 2)", &[], I(2), None),
        ("2 IN (2) LIKE 'tr%'", &[], B(true), None),
        ("-2 * -3", &[], I(6), None),
        ("4-1", &[], I(3), None),
        ("4 -1", &[], I(3), None),
        ("- 5", &[], I(-5), None),
        ("-(2 + 3)", &[], I(-5), None),
        ("NOT NOT TRUE", &[], B(true), None),
        ("type NOT IN ('a', 'b')", &[], B(true), None),
        ("type NOT LIKE 'my%'", &[], B(false), None),
        (
            "EXISTS subject OR EXISTS time",
            &[("time", "t")],
            B(true),
            None,
        ),
    ]);
}

#[test]
fn integers_are_32_bit() {
    run(&[
        ("2147483647", &[], I(i32::MAX), None),
        ("-2147483648", &[], I(i32::MIN), None),
        ("+7", &[], I(7), None),
        ("007", &[], I(7), None),
        ("2147483647 + 1", &[], I(0), Some(Math)),
        ("-2147483648 - 1", &[], I(0), Some(Math)),
        ("65536 * 65536", &[], I(0), Some(Math)),
        ("-2147483648 / -1", &[], I(0), Some(Math)),
        ("-2147483648 % -1", &[], I(0), None),
        ("-(-2147483648)", &[], I(0), Some(Math)),
        ("-7 / 2", &[], I(-3), None),
        ("-7 % 2", &[], I(-1), None),
        ("7 % -2", &[], I(1), None),
        ("n + 1", &[("n", "2147483647")], I(0), Some(Math)),
    ]);
}

#[test]
fn first_error_wins_and_operands_fail_to_zero() {
    run(&[
        ("a = b", &[], B(false), Some(MissingAttribute)),
        ("1 / 0 + missing", &[], I(0), Some(Math)),
        ("'x' + 1", &[], I(1), Some(Cast)),
        ("INT('x') + 1", &[], I(0), Some(Cast)),
        ("LENGTH(missing)", &[], I(0), Some(MissingAttribute)),
        ("UPPER(missing)", &[], S(""), Some(MissingAttribute)),
        ("missing IN (1)", &[], B(false), Some(MissingAttribute)),
        ("1 IN (missing, 1)", &[], B(false), Some(MissingAttribute)),
        ("1 IN (1, missing)", &[], B(true), None),
        ("1 IN ('x', 1)", &[], B(true), Some(Cast)),
        ("1 NOT IN ('x')", &[], B(true), Some(Cast)),
        (
            "missing LIKE '%' OR TRUE",
            &[],
            B(false),
            Some(MissingAttribute),
        ),
        ("TRUE OR missing", &[], B(true), None),
        ("FALSE AND missing", &[], B(false), None),
        ("missing XOR TRUE", &[], B(false), Some(MissingAttribute)),
        ("NOT (1 / 0 = 0)", &[], B(false), Some(Math)),
        ("1 AND TRUE", &[], B(false), Some(Cast)),
        ("'yes' OR FALSE", &[], B(false), Some(Cast)),
        ("1 = TRUE", &[], B(false), Some(Cast)),
        ("'abc' < 1", &[], B(true), Some(Cast)),
        ("flag AND TRUE", &[("flag", "TRUE")], B(true), None),
    ]);
}

#[test]
fn functions_beyond_the_tck() {
    run(&[
        ("LENGTH('héllo')", &[], I(5), None),
        ("UPPER('straße')", &[], S("STRASSE"), None),
        ("LOWER('ÀB')", &[], S("àb"), None),
        ("TRIM('\u{2003} x \t')", &[], S("x"), None),
        ("CONCAT(1, TRUE, 'x')", &[], S("1truex"), None),
        ("CONCAT_WS('-', 1, 2)", &[], S("1-2"), None),
        ("concat_ws('', 'a', 'b')", &[], S("ab"), None),
        ("SUBSTRING('abcdef', 6)", &[], S("f"), None),
        ("SUBSTRING('abcdef', -6)", &[], S("abcdef"), None),
        ("SUBSTRING('abcdef', 2, 0)", &[], S(""), None),
        (
            "SUBSTRING('abcdef', 2, -1)",
            &[],
            S(""),
            Some(FunctionEvaluation),
        ),
        ("SUBSTRING('abcdef', 'x')", &[], S(""), Some(Cast)),
        ("LEFT('abc', 0)", &[], S(""), None),
        ("RIGHT('héllo', 3)", &[], S("llo"), None),
        ("ABS('-5')", &[], I(5), None),
        ("ABS('x')", &[], I(0), Some(Cast)),
        ("IS_INT('12')", &[], B(true), None),
        ("IS_INT('-12')", &[], B(true), None),
        ("IS_INT('1.5')", &[], B(false), None),
        ("IS_INT(7)", &[], B(true), None),
        ("IS_INT(TRUE)", &[], B(false), None),
        ("IS_BOOL('False')", &[], B(true), None),
        ("IS_BOOL('no')", &[], B(false), None),
        ("IS_BOOL(1)", &[], B(false), None),
        (
            "is_int(seq) AND INT(seq) > 3",
            &[("seq", "5")],
            B(true),
            None,
        ),
        ("NOPE()", &[], B(false), Some(MissingFunction)),
        ("LENGTH('a', 'b')", &[], B(false), Some(MissingFunction)),
        ("SUBSTRING('a')", &[], B(false), Some(MissingFunction)),
        (
            "ABS(missing) OR NOPE(1)",
            &[],
            B(false),
            Some(MissingAttribute),
        ),
        ("LENGTH(NOPE())", &[], I(0), Some(MissingFunction)),
        ("ABS (-3)", &[], I(3), None),
    ]);
}

#[test]
fn attributes_and_literals() {
    run(&[
        ("specversion", &[], S("1.0"), None),
        ("Type", &[], S("myType"), None),
        (
            "EXISTS DataContentType",
            &[("datacontenttype", "text/plain")],
            B(true),
            None,
        ),
        ("dataschema = 'x'", &[("dataschema", "x")], B(true), None),
        ("ext1 = 'v'", &[("ext1", "v")], B(true), None),
        ("1ext = 'v'", &[("1ext", "v")], B(true), None),
        ("'it''s'", &[], S("it's"), None),
        ("\"say \"\"hi\"\"\"", &[], S("say \"hi\""), None),
        ("''", &[], S(""), None),
        (r"'a\\b'", &[], S(r"a\b"), None),
        (r"'a\\'", &[], S(r"a\"), None),
        (r"'a\\%' LIKE 'a\\%'", &[], B(false), None),
        (r"'a%' LIKE 'a\\%'", &[], B(true), None),
        (r"'a\nb'", &[], S(r"a\nb"), None),
        ("'héllo wörld'", &[], S("héllo wörld"), None),
        ("\t TRUE \r\n", &[], B(true), None),
    ]);
}

#[test]
fn parse_errors_point_at_the_offending_character() {
    run_parse_errors(&[
        ("", 1),
        ("   ", 4),
        ("(", 2),
        ("(1", 3),
        ("1 +", 4),
        ("1 2", 3),
        ("TRUE AND", 9),
        ("AND", 1),
        ("x LIKE y", 8),
        ("x NOT 'a'", 7),
        ("EXISTS 'a'", 8),
        ("EXISTS", 7),
        ("x IN ()", 7),
        ("x IN 1", 6),
        ("x IN (1,", 9),
        ("x IN (1 2)", 9),
        ("'abc", 1),
        ("é = 'é'", 1),
        ("'é' = é", 7),
        ("my_ext = 1", 1),
        ("2147483648", 1),
        ("-2147483649", 1),
        ("+ 1", 1),
        ("1 == 1", 4),
        ("a.b", 2),
        ("LOWER('a'", 10),
        (")", 1),
        ("1 # 2", 3),
    ]);
    let e = parse("1 +").unwrap_err();
    assert_eq!(
        e.to_string(),
        "at position 4: expected an operand, found the end of the expression"
    );
    let e = parse("x LIKE 123").unwrap_err();
    assert_eq!(
        e.message,
        "expected a string literal pattern after LIKE, found `123`"
    );
    let e = parse("1 2").unwrap_err();
    assert_eq!(
        e.message,
        "expected an operator or the end of the expression, found `2`"
    );
}

#[test]
fn nesting_is_bounded() {
    let deep = |n: usize| format!("{}1{}", "(".repeat(n), ")".repeat(n));
    assert!(parse(&deep(MAX_NESTING - 1)).is_ok());
    assert!(parse(&deep(MAX_NESTING)).is_err());
    assert!(parse(&deep(100_000)).is_err());
    let chain = |n: usize| vec!["TRUE"; n].join(" AND ");
    let long = parse(&chain(MAX_DEPTH)).expect("parses");
    assert!(long.matches(&event(&[])));
    assert!(parse(&chain(MAX_DEPTH + 1)).is_err());
    assert!(parse(&chain(10_000)).is_err());
    assert!(parse(&"NOT ".repeat(10_000)).is_err());
    assert!(parse(&"-".repeat(10_000)).is_err());
    let wide = format!("1 IN ({})", vec!["2"; 10_000].join(", "));
    assert!(parse(&wide).is_ok());
}

#[test]
fn public_api_shapes() {
    let expression = parse("LEFT(subject, 3) = 'abc'").expect("parses");
    assert_eq!(expression.as_str(), "LEFT(subject, 3) = 'abc'");
    assert_eq!(expression.to_string(), expression.as_str());
    assert_eq!(
        expression,
        parse("LEFT(subject, 3) = 'abc'").expect("parses")
    );
    let (value, error) = expression.evaluate(&event(&[]));
    assert_eq!(value, Value::Boolean(false));
    let error = error.expect("subject is missing");
    assert_eq!(
        serde_json::to_value(&error).expect("serializes"),
        serde_json::json!({"kind": "missingAttribute", "detail": "the event has no attribute `subject`"})
    );
    let kinds = [
        (ErrorKind::Parse, "parse"),
        (ErrorKind::Math, "math"),
        (ErrorKind::Cast, "cast"),
        (ErrorKind::MissingAttribute, "missingAttribute"),
        (ErrorKind::MissingFunction, "missingFunction"),
        (ErrorKind::FunctionEvaluation, "functionEvaluation"),
        (ErrorKind::Generic, "generic"),
    ];
    for (kind, name) in kinds {
        assert_eq!(serde_json::to_value(kind).expect("serializes"), name);
        assert_eq!(kind.to_string(), name);
    }
    for (value, json) in [
        (Value::Integer(-3), serde_json::json!(-3)),
        (Value::String("a".into()), serde_json::json!("a")),
        (Value::Boolean(true), serde_json::json!(true)),
    ] {
        assert_eq!(serde_json::to_value(&value).expect("serializes"), json);
    }
    let error = EvalError {
        kind: ErrorKind::Math,
        detail: "`/` by zero".into(),
    };
    assert_eq!(error.to_string(), "math: `/` by zero");
    fn shareable<T: Clone + std::fmt::Debug + Send + Sync>() {}
    shareable::<super::super::Expression>();
}

#[test]
fn matches_only_true_without_error() {
    let e = event(&[("flag", "true")]);
    assert!(parse("flag = TRUE").expect("parses").matches(&e));
    assert!(!parse("1").expect("parses").matches(&e));
    assert!(!parse("'true'").expect("parses").matches(&e));
    assert!(!parse("NOT 10").expect("parses").matches(&e));
    assert!(parse("TRUE OR missing")
        .expect("parses")
        .matches(&event(&[])));
}
