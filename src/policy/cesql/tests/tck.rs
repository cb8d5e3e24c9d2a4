//! The CESQL v1.0 TCK (`cesql/cesql_tck/*.yaml` of cloudevents/spec), one test per file, as
//! Rust tables. Where sidebus differs (typed extension values: sidebus stores extensions as
//! strings) the case says so.

use super::ErrorKind::{Cast, Math, MissingAttribute};
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
fn sub_expression() {
    run(&[
        ("(TRUE)", &[], B(true), None),
        ("4 * (2 + 3)", &[], I(20), None),
        ("(2 + 3) * 4", &[], I(20), None),
    ]);
}
