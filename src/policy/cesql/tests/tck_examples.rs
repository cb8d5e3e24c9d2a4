//! The CESQL v1.0 TCK, continued: the string functions, the specification's examples and the
//! Subscriptions API recreations.

use super::run;
use super::ErrorKind::{FunctionEvaluation, MissingAttribute, MissingFunction};
use super::R::{B, I, S};

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
