//! The CESQL v1.0 TCK (`cesql/cesql_tck/*.yaml` of cloudevents/spec), one test per file, as
//! Rust tables. Where sidebus differs (typed extension values: sidebus stores extensions as
//! strings) the case says so.

use super::ErrorKind::{Cast, FunctionEvaluation, Math, MissingAttribute, MissingFunction};
use super::R::{B, I, S};
use super::{run, run_parse_errors, Case};

const SOURCE_URL: &[(&str, &str)] = &[("source", "http://localhost/source")];

#[test]
fn binary_comparison_operators() {
    run(&[
        ("TRUE = FALSE", &[], B(false), None),
        ("FALSE = FALSE", &[], B(true), None),
        ("1 = 2", &[], B(false), None),
        ("2 = 2", &[], B(true), None),
        ("'abc' = '123'", &[], B(false), None),
        ("'abc' = 'abc'", &[], B(true), None),
        ("missing = 2", &[], B(false), Some(MissingAttribute)),
        ("TRUE != FALSE", &[], B(true), None),
        ("FALSE != FALSE", &[], B(false), None),
        ("1 != 2", &[], B(true), None),
        ("2 != 2", &[], B(false), None),
        ("'abc' != '123'", &[], B(true), None),
        ("'abc' != 'abc'", &[], B(false), None),
        ("missing != 2", &[], B(false), Some(MissingAttribute)),
        ("TRUE <> FALSE", &[], B(true), None),
        ("FALSE <> FALSE", &[], B(false), None),
        ("1 <> 2", &[], B(true), None),
        ("2 <> 2", &[], B(false), None),
        ("'abc' <> '123'", &[], B(true), None),
        ("'abc' <> 'abc'", &[], B(false), None),
        ("missing <> 2", &[], B(false), Some(MissingAttribute)),
        ("2 <= 2", &[], B(true), None),
        ("3 <= 2", &[], B(false), None),
        ("1 < 2", &[], B(true), None),
        ("2 < 2", &[], B(false), None),
        ("2 >= 2", &[], B(true), None),
        ("2 >= 3", &[], B(false), None),
        ("2 > 1", &[], B(true), None),
        ("2 > 2", &[], B(false), None),
        ("missing <= 2", &[], B(false), Some(MissingAttribute)),
        ("true = 'TRUE'", &[], B(false), None),
        ("'TRUE' = true", &[], B(true), None),
    ]);
}

#[test]
fn binary_logical_operators() {
    run(&[
        ("FALSE AND FALSE", &[], B(false), None),
        ("FALSE AND TRUE", &[], B(false), None),
        ("TRUE AND FALSE", &[], B(false), None),
        ("TRUE AND TRUE", &[], B(true), None),
        ("false and (1 != 1 / 0)", &[], B(false), None),
        ("true and (1 != 1 / 0)", &[], B(false), Some(Math)),
        ("FALSE OR FALSE", &[], B(false), None),
        ("FALSE OR TRUE", &[], B(true), None),
        ("TRUE OR FALSE", &[], B(true), None),
        ("TRUE OR TRUE", &[], B(true), None),
        ("true or (1 != 1 / 0)", &[], B(true), None),
        ("false or (1 != 1 / 0)", &[], B(false), Some(Math)),
        ("FALSE XOR FALSE", &[], B(false), None),
        ("FALSE XOR TRUE", &[], B(true), None),
        ("TRUE XOR FALSE", &[], B(true), None),
        ("TRUE XOR TRUE", &[], B(false), None),
    ]);
}

#[test]
fn binary_math_operators() {
    run(&[
        ("4 * 2 + 4 / 2", &[], I(10), None),
        ("4 * (2 + 4) / 2", &[], I(12), None),
        ("5 / 3", &[], I(1), None),
        ("5 / 0", &[], I(0), Some(Math)),
        ("5 % 2", &[], I(1), None),
        ("5 % 0", &[], I(0), Some(Math)),
        ("missing / 0", &[], I(0), Some(MissingAttribute)),
        ("missing % 0", &[], I(0), Some(MissingAttribute)),
        ("4 + 1", &[], I(5), None),
        ("-4 + 1", &[], I(-3), None),
        ("-4 + -1", &[], I(-5), None),
        ("4 + -1", &[], I(3), None),
        ("4 - 1", &[], I(3), None),
        ("-4 - 1", &[], I(-5), None),
        ("'5' + 3", &[], I(8), None),
        ("5 + '3'", &[], I(8), None),
        ("'5' + '3'", &[], I(8), None),
        ("5 + TRUE", &[], I(6), None),
    ]);
}

#[test]
fn case_sensitivity() {
    run(&[
        ("TRUE", &[], B(true), None),
        ("true", &[], B(true), None),
        ("tRuE", &[], B(true), None),
        ("FALSE", &[], B(false), None),
        ("false", &[], B(false), None),
        ("FaLsE", &[], B(false), None),
        ("'aBcD'", &[], S("aBcD"), None),
    ]);
}

#[test]
fn casting_functions() {
    run(&[
        ("INT('1')", &[], I(1), None),
        ("INT('-1')", &[], I(-1), None),
        ("INT(1)", &[], I(1), None),
        ("INT(-1)", &[], I(-1), None),
        ("INT(TRUE)", &[], I(1), None),
        ("INT(FALSE)", &[], I(0), None),
        ("INT('ABC')", &[], I(0), Some(Cast)),
        ("BOOL('TRUE')", &[], B(true), None),
        ("BOOL(\"false\")", &[], B(false), None),
        ("BOOL(TRUE)", &[], B(true), None),
        ("BOOL(FALSE)", &[], B(false), None),
        ("BOOL('ABC')", &[], B(false), Some(Cast)),
        ("BOOL(1)", &[], B(true), None),
        ("BOOL(0)", &[], B(false), None),
        ("BOOL(100)", &[], B(true), None),
        ("BOOL(-50)", &[], B(true), None),
        ("STRING(TRUE)", &[], S("true"), None),
        ("STRING(FALSE)", &[], S("false"), None),
        ("STRING(1)", &[], S("1"), None),
        ("STRING(-1)", &[], S("-1"), None),
        ("STRING(\"abc\")", &[], S("abc"), None),
    ]);
}

#[test]
fn context_attributes_access() {
    run(&[
        ("id", &[("id", "myId")], S("myId"), None),
        ("subject", &[("subject", "mySubject")], S("mySubject"), None),
        ("subject", &[], B(false), Some(MissingAttribute)),
        // The TCK's typed extensions (`mybool: true`, `myint: 10`) are strings in sidebus.
        ("mybool", &[("mybool", "true")], S("true"), None),
        ("myint", &[("myint", "10")], S("10"), None),
        (
            "myext",
            &[("myext", "my extension")],
            S("my extension"),
            None,
        ),
        ("source", SOURCE_URL, S("http://localhost/source"), None),
        (
            "time",
            &[("time", "2018-04-26T14:48:09+02:00")],
            S("2018-04-26T14:48:09+02:00"),
            None,
        ),
    ]);
}

#[test]
fn exists_expression() {
    run(&[
        (
            "EXISTS specversion AND EXISTS id AND EXISTS type AND EXISTS SOURCE",
            &[],
            B(true),
            None,
        ),
        (
            "EXISTS time",
            &[("time", "2018-04-26T14:48:09+02:00")],
            B(true),
            None,
        ),
        ("EXISTS time", &[], B(false), None),
        ("NOT EXISTS time", &[], B(true), None),
        ("EXISTS myext", &[("myext", "my value")], B(true), None),
        ("EXISTS myext", &[], B(false), None),
        ("NOT EXISTS myext", &[], B(true), None),
    ]);
}

#[test]
fn in_expression() {
    let source_and_ext: &[(&str, &str)] = &[
        ("source", "http://localhost/source"),
        ("myext", "http://localhost/source"),
    ];
    run(&[
        ("123 IN (1, 2, 3, 12, 13, 23, 123)", &[], B(true), None),
        ("123 NOT IN (1, 2, 3, 12, 13, 23, 123)", &[], B(false), None),
        ("'abc' IN ('abc', \"bcd\")", &[], B(true), None),
        ("'aaa' IN ('abc', \"bcd\")", &[], B(false), None),
        ("TRUE IN (TRUE, FALSE)", &[], B(true), None),
        ("TRUE IN (FALSE)", &[], B(false), None),
        ("source IN (myext, 'abc')", source_and_ext, B(true), None),
        ("source IN (source)", source_and_ext, B(true), None),
        (
            "source IN (id, \"http://localhost/source\")",
            source_and_ext,
            B(true),
            None,
        ),
        ("source IN (id, 'xyz')", SOURCE_URL, B(false), None),
        ("'true' IN (TRUE, 'false')", &[], B(true), None),
        ("'true' IN ('TRUE', 'false')", &[], B(false), None),
        ("TRUE IN ('true', 'false')", &[], B(true), None),
        ("'TRUE' IN (TRUE, 'false')", &[], B(false), None),
        ("1 IN ('1', '2')", &[], B(true), None),
        ("'1' IN (1, 2)", &[], B(true), None),
    ]);
}

#[test]
fn integer_builtin_functions() {
    run(&[
        ("ABS(10)", &[], I(10), None),
        ("ABS(-10)", &[], I(10), None),
        ("ABS(0)", &[], I(0), None),
        ("ABS(-2147483648)", &[], I(2147483647), Some(Math)),
    ]);
}

#[test]
fn like_expression() {
    let cases: &[Case] = &[
        ("'abc' LIKE 'abc'", &[], B(true), None),
        (r"'ab\c' LIKE 'ab\c'", &[], B(true), None),
        ("'abc' NOT LIKE 'abc'", &[], B(false), None),
        ("'abc' LIKE 'a%b%c'", &[], B(true), None),
        ("'azbc' LIKE 'a%b%c'", &[], B(true), None),
        ("'azzzbzzzc' LIKE 'a%b%c'", &[], B(true), None),
        ("'a%b%c' LIKE 'a%b%c'", &[], B(true), None),
        ("'ac' LIKE 'abc'", &[], B(false), None),
        ("'' LIKE 'abc'", &[], B(false), None),
        ("'.ab.cde.' LIKE '.%.%.'", &[], B(true), None),
        ("'ab.cde' LIKE '.%.%.'", &[], B(false), None),
        ("'abc' LIKE 'a_b_c'", &[], B(false), None),
        ("'a_b_c' LIKE 'a_b_c'", &[], B(true), None),
        ("'abzc' LIKE 'a_b_c'", &[], B(false), None),
        ("'azbc' LIKE 'a_b_c'", &[], B(false), None),
        ("'azbzc' LIKE 'a_b_c'", &[], B(true), None),
        ("'.a.b.' LIKE '._._.'", &[], B(true), None),
        ("'abcd.' LIKE '._._.'", &[], B(false), None),
        (r"'a_b_c' LIKE 'a\_b\_c'", &[], B(true), None),
        (r"'a_b_c' NOT LIKE 'a\_b\_c'", &[], B(false), None),
        (r"'azbzc' LIKE 'a\_b\_c'", &[], B(false), None),
        (r"'abc' LIKE 'a\_b\_c'", &[], B(false), None),
        (r"'abc' LIKE 'a\%b\%c'", &[], B(false), None),
        (r"'a%b%c' LIKE 'a\%b\%c'", &[], B(true), None),
        (r"'azbzc' LIKE 'a\%b\%c'", &[], B(false), None),
        (r"'abc' LIKE 'a\%b\%c'", &[], B(false), None),
        (
            r"myext LIKE 'abc%123\%456\_d_f'",
            &[("myext", "abc123123%456_dzf")],
            B(true),
            None,
        ),
        (
            r"myext NOT LIKE 'abc%123\%456\_d_f'",
            &[("myext", "abc123123%456_dzf")],
            B(false),
            None,
        ),
        ("234 LIKE '23_'", &[], B(true), None),
        ("2344 LIKE '23%'", &[], B(true), None),
        ("2344 LIKE '23_'", &[], B(false), None),
        ("TRUE LIKE 'tr%'", &[], B(true), None),
        ("TRUE LIKE '%ue'", &[], B(true), None),
        ("FALSE LIKE 'tr%'", &[], B(false), None),
        ("FALSE LIKE 'fal%'", &[], B(true), None),
        (
            "missing LIKE 'missing'",
            &[],
            B(false),
            Some(MissingAttribute),
        ),
    ];
    run(cases);
    run_parse_errors(&[("x LIKE 123", 8)]);
}

#[test]
fn literals() {
    run(&[
        ("TRUE", &[], B(true), None),
        ("FALSE", &[], B(false), None),
        ("0", &[], I(0), None),
        ("1", &[], I(1), None),
        ("'abc'", &[], S("abc"), None),
        ("\"abc\"", &[], S("abc"), None),
        ("'aBc'", &[], S("aBc"), None),
        ("\"AbC\"", &[], S("AbC"), None),
        (r#"'a"b\'c'"#, &[], S("a\"b'c"), None),
        (r#""a'b\"c""#, &[], S("a'b\"c"), None),
    ]);
}

#[test]
fn negate_operator() {
    run(&[
        ("-10", &[], I(-10), None),
        ("--10", &[], I(10), None),
        ("-'10'", &[], I(-10), None),
        ("--'10'", &[], I(10), None),
        ("-TRUE", &[], I(-1), None),
        ("-missing", &[], I(0), Some(MissingAttribute)),
    ]);
}

#[test]
fn not_operator() {
    run(&[
        ("NOT TRUE", &[], B(false), None),
        ("NOT FALSE", &[], B(true), None),
        ("NOT 'TRUE'", &[], B(false), None),
        ("NOT 'FALSE'", &[], B(true), None),
        ("NOT 10", &[], B(true), Some(Cast)),
        ("NOT missing", &[], B(false), Some(MissingAttribute)),
    ]);
}

#[test]
fn parse_errors() {
    run_parse_errors(&[("ABC(", 5)]);
}

#[test]
fn spec_examples() {
    let hops: &[(&str, &str)] = &[("hop", "5"), ("ttl", "10")];
    let logic =
        "(firstname = 'Francesco' AND lastname = 'Guardiani') OR subject = 'Francesco Guardiani'";
    run(&[
        (
            "int(hop) < int(ttl) and int(hop) < 1000",
            hops,
            B(true),
            None,
        ),
        (
            "INT(hop) < INT(ttl) AND INT(hop) < 1000",
            hops,
            B(true),
            None,
        ),
        ("hop < ttl", hops, B(true), None),
        ("sequence = 5", &[("sequence", "5")], B(true), None),
        ("sequence = 5", &[("sequence", "6")], B(false), None),
        (
            "firstname = 'Francesco' OR subject = 'Francesco'",
            &[("subject", "Francesco"), ("firstname", "Doug")],
            B(true),
            None,
        ),
        (
            "firstname = 'Francesco' OR subject = 'Francesco'",
            &[("firstname", "Francesco"), ("subject", "Doug")],
            B(true),
            None,
        ),
        (
            logic,
            &[
                ("subject", "Doug"),
                ("firstname", "Francesco"),
                ("lastname", "Guardiani"),
            ],
            B(true),
            None,
        ),
        (
            logic,
            &[
                ("subject", "Francesco Guardiani"),
                ("firstname", "Doug"),
                ("lastname", "Davis"),
            ],
            B(true),
            None,
        ),
        (
            "EXISTS subject",
            &[("subject", "Francesco Guardiani")],
            B(true),
            None,
        ),
        (
            "true AND (missing = \"\")",
            &[],
            B(false),
            Some(MissingAttribute),
        ),
        ("missing * 5", &[], I(0), Some(MissingAttribute)),
        ("1 / missing", &[], I(0), Some(MissingAttribute)),
    ]);
}

#[test]
fn string_builtin_functions() {
    run(&[
        ("LENGTH('abc')", &[], I(3), None),
        ("LENGTH('')", &[], I(0), None),
        ("LENGTH('2')", &[], I(1), None),
        ("LENGTH(TRUE)", &[], I(4), None),
        ("CONCAT('a', 'b', 'c')", &[], S("abc"), None),
        ("CONCAT()", &[], S(""), None),
        ("CONCAT('a')", &[], S("a"), None),
        ("CONCAT_WS(',', 'a', 'b', 'c')", &[], S("a,b,c"), None),
        ("CONCAT_WS(',')", &[], S(""), None),
        ("CONCAT_WS(',', 'a')", &[], S("a"), None),
        ("CONCAT_WS()", &[], B(false), Some(MissingFunction)),
        ("LOWER('ABC')", &[], S("abc"), None),
        ("LOWER('AbC')", &[], S("abc"), None),
        ("LOWER('abc')", &[], S("abc"), None),
        ("UPPER('ABC')", &[], S("ABC"), None),
        ("UPPER('AbC')", &[], S("ABC"), None),
        ("UPPER('abc')", &[], S("ABC"), None),
        ("TRIM('   a b c   ')", &[], S("a b c"), None),
        ("TRIM('   a b c')", &[], S("a b c"), None),
        ("TRIM('a b c   ')", &[], S("a b c"), None),
        ("TRIM('a b c')", &[], S("a b c"), None),
        ("LEFT('abc', 2)", &[], S("ab"), None),
        ("LEFT('abc', 10)", &[], S("abc"), None),
        ("LEFT('', 0)", &[], S(""), None),
        ("LEFT('abc', -2)", &[], S("abc"), Some(FunctionEvaluation)),
        ("RIGHT('abc', 2)", &[], S("bc"), None),
        ("RIGHT('abc', 10)", &[], S("abc"), None),
        ("RIGHT('', 0)", &[], S(""), None),
        ("RIGHT('abc', -2)", &[], S("abc"), Some(FunctionEvaluation)),
        ("SUBSTRING('abcdef', 1)", &[], S("abcdef"), None),
        ("SUBSTRING('abcdef', 2)", &[], S("bcdef"), None),
        ("SUBSTRING('Quadratically', 5)", &[], S("ratically"), None),
        ("SUBSTRING('Sakila', -3)", &[], S("ila"), None),
        ("SUBSTRING('abcdef', 1, 6)", &[], S("abcdef"), None),
        ("SUBSTRING('abcdef', 2, 4)", &[], S("bcde"), None),
        ("SUBSTRING('Sakila', -5, 3)", &[], S("aki"), None),
        ("SUBSTRING('Quadratically', 0)", &[], S(""), None),
        ("SUBSTRING('Quadratically', 0, 1)", &[], S(""), None),
        (
            "SUBSTRING('abcdef', 10)",
            &[],
            S(""),
            Some(FunctionEvaluation),
        ),
        (
            "SUBSTRING('abcdef', -10)",
            &[],
            S(""),
            Some(FunctionEvaluation),
        ),
        (
            "SUBSTRING('abcdef', 10, 10)",
            &[],
            S(""),
            Some(FunctionEvaluation),
        ),
        (
            "SUBSTRING('abcdef', -10, 10)",
            &[],
            S(""),
            Some(FunctionEvaluation),
        ),
    ]);
}

#[test]
fn sub_expression() {
    run(&[
        ("(TRUE)", &[], B(true), None),
        ("4 * (2 + 3)", &[], I(20), None),
        ("(2 + 3) * 4", &[], I(20), None),
    ]);
}

#[test]
fn subscriptions_api_recreations() {
    let dnf = "(id = 'myId' AND type LIKE '%.success') OR (id = 'notmyId' AND source LIKE 'http://%' AND type LIKE '%.warning')";
    let cnf = "(id = 'myId' OR type LIKE '%.success') AND (id = 'notmyId' OR source LIKE 'https://%' OR type LIKE '%.warning')";
    let cnf5 = "(id = 'myId' OR type LIKE '%.success') AND (id = 'notmyId' OR source LIKE 'https://%' OR type LIKE '%.warning') AND (myext = 'customext')";
    let http = ("source", "http://localhost.localdomain");
    run(&[
        (
            "source LIKE 'https://%'",
            &[("source", "https://example.com")],
            B(true),
            None,
        ),
        (
            "source LIKE 'https://%'",
            &[("source", "http://example.com")],
            B(false),
            None,
        ),
        (
            "myext LIKE 'custom%'",
            &[("myext", "customext")],
            B(true),
            None,
        ),
        (
            "myext LIKE 'custom%'",
            &[],
            B(false),
            Some(MissingAttribute),
        ),
        (
            "type like '%.error'",
            &[("type", "com.github.error")],
            B(true),
            None,
        ),
        (
            "type like '%.error'",
            &[("type", "com.github.success")],
            B(false),
            None,
        ),
        (
            "myext LIKE '%ext'",
            &[("myext", "customext")],
            B(true),
            None,
        ),
        ("myext LIKE '%ext'", &[], B(false), Some(MissingAttribute)),
        ("id = 'myId'", &[("id", "myId")], B(true), None),
        ("id = 'myId'", &[("id", "notmyId")], B(false), None),
        (
            "myext = 'customext'",
            &[("myext", "customext")],
            B(true),
            None,
        ),
        ("myext = 'customext'", &[], B(false), Some(MissingAttribute)),
        (
            "id LIKE 'my%' AND source LIKE '%.ca'",
            &[("id", "myId"), ("source", "http://www.some-website.ca")],
            B(true),
            None,
        ),
        (
            "id LIKE 'my%' AND source LIKE '%.ca'",
            &[("id", "myId"), ("source", "http://www.some-website.com")],
            B(false),
            None,
        ),
        (
            "myext LIKE 'custom%' AND type LIKE '%.error'",
            &[("myext", "customext"), ("type", "com.github.error")],
            B(true),
            None,
        ),
        (
            "type LIKE 'example.%' AND myext LIKE 'custom%'",
            &[("type", "example.event.type")],
            B(false),
            Some(MissingAttribute),
        ),
        (
            "id LIKE 'my%' OR source LIKE '%.ca'",
            &[("id", "myId"), ("source", "http://www.some-website.ca")],
            B(true),
            None,
        ),
        (
            "id LIKE 'my%' OR source LIKE '%.ca'",
            &[("id", "myId"), ("source", "http://www.some-website.com")],
            B(true),
            None,
        ),
        (
            "id LIKE 'my%' OR source LIKE '%.ca'",
            &[("id", "notmyId"), ("source", "http://www.some-website.ca")],
            B(true),
            None,
        ),
        (
            "id LIKE 'my%' OR source LIKE '%.ca'",
            &[("id", "notmyId"), ("source", "http://www.some-website.com")],
            B(false),
            None,
        ),
        (
            dnf,
            &[("id", "myId"), ("type", "example.event.success")],
            B(true),
            None,
        ),
        (
            dnf,
            &[("id", "notmyId"), ("type", "example.event.warning"), http],
            B(true),
            None,
        ),
        (
            dnf,
            &[
                ("id", "notmyId"),
                ("type", "example.event.warning"),
                ("source", "https://localhost.localdomain"),
            ],
            B(false),
            None,
        ),
        (
            cnf,
            &[("id", "myId"), ("type", "example.event.warning"), http],
            B(true),
            None,
        ),
        (
            cnf,
            &[("id", "notmyId"), ("type", "example.event.success"), http],
            B(true),
            None,
        ),
        (
            cnf,
            &[("id", "notmyId"), ("type", "example.event.warning"), http],
            B(false),
            None,
        ),
        (
            cnf,
            &[("id", "myId"), ("type", "example.event.success"), http],
            B(false),
            None,
        ),
        (
            cnf5,
            &[("id", "myId"), ("type", "example.event.warning"), http],
            B(false),
            Some(MissingAttribute),
        ),
    ]);
}
